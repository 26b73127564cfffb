import { describe, expect, it } from 'vitest';
import { Pacing } from '../../../src/delivery/pacing.js';

const MINUTE = 60_000;

describe('Pacing', () => {
  it('lets everything through when no limit is set', () => {
    const pacing = new Pacing();
    for (let i = 0; i < 1000; i++) pacing.record(5);
    expect(pacing.nextAllowedAt(5)).toBe(5);
  });

  it('per minute: the next start waits until the oldest send in the window is a minute old', () => {
    const pacing = new Pacing(3);
    pacing.record(0);
    pacing.record(10_000);
    expect(pacing.nextAllowedAt(20_000)).toBe(20_000);
    pacing.record(20_000);
    expect(pacing.nextAllowedAt(30_000)).toBe(MINUTE);
    expect(pacing.nextAllowedAt(MINUTE)).toBe(MINUTE);
    pacing.record(MINUTE);
    expect(pacing.nextAllowedAt(MINUTE + 1)).toBe(MINUTE + 10_000);
  });

  it('per day: the daily cap holds even when the minute window is free', () => {
    const pacing = new Pacing(100, 2);
    pacing.record(0);
    pacing.record(5 * MINUTE);
    expect(pacing.nextAllowedAt(60 * MINUTE)).toBe(24 * 60 * MINUTE);
    expect(pacing.usage(60 * MINUTE)).toEqual({ lastMinute: 0, lastDay: 2 });
    expect(pacing.nextAllowedAt(24 * 60 * MINUTE + 1)).toBe(24 * 60 * MINUTE + 1);
  });
});
