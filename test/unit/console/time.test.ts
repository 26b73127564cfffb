import { describe, expect, it } from 'vitest';
import { parseWhen } from '../../../src/console/public/time.js';

const now = new Date(2026, 11, 1, 12, 0, 0);
/** A local wall-clock time (the console reads times in the browser's zone). */
const local = (month: number, day: number, hours: number, minutes: number) => new Date(2026, month, day, hours, minutes, 0).toISOString();

describe('console time words', () => {
  it.each([
    ['10:30', local(11, 1, 10, 30)],
    ['today 10:30', local(11, 1, 10, 30)],
    ['Yesterday 9:15', local(10, 30, 9, 15)],
    ['today', local(11, 1, 0, 0)],
    ['last 2 hours', local(11, 1, 10, 0)],
    ['last hour', local(11, 1, 11, 0)],
    ['30 minutes ago', local(11, 1, 11, 30)],
    ['2h', local(11, 1, 10, 0)],
    ['3d', local(10, 28, 12, 0)],
    ['2026-12-01 09:00', local(11, 1, 9, 0)],
  ])('reads "%s" as an absolute time', (text, expected) => {
    expect(parseWhen(text, now).date?.toISOString()).toBe(expected);
  });

  it('takes full ISO times as they are and an empty field as no limit', () => {
    expect(parseWhen('2026-12-01T09:00:00Z', now).date?.toISOString()).toBe('2026-12-01T09:00:00.000Z');
    expect(parseWhen('  ', now)).toEqual({});
  });

  it('answers words it does not know with an example of what works', () => {
    expect(parseWhen('banana', now).error).toMatch(/"today 10:30"/);
    expect(parseWhen('25:00', now).error).toMatch(/hours go to 23/);
    expect(parseWhen('hours', now).error).toBeDefined();
  });
});
