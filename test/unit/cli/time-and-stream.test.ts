/** The CLI's time filters, its server-sent-event reader and the watch line format (pure functions). */
import { describe, expect, it } from 'vitest';
import { EventStreamParser, type ServerSentEvent } from '../../../src/cli/client.js';
import { parseTimeFilter } from '../../../src/cli/time.js';
import { formatDelivery, formatStep } from '../../../src/cli/watch.js';

describe('parseTimeFilter', () => {
  const now = new Date(2026, 11, 1, 14, 5, 30); // local time

  it('reads HH:MM as today, relative spans as that long ago, day names as midnight', () => {
    expect(parseTimeFilter('10:30', now)).toBe(new Date(2026, 11, 1, 10, 30).toISOString());
    expect(parseTimeFilter('today 9:05', now)).toBe(new Date(2026, 11, 1, 9, 5).toISOString());
    expect(parseTimeFilter('2h', now)).toBe(new Date(now.getTime() - 7_200_000).toISOString());
    expect(parseTimeFilter('30m', now)).toBe(new Date(now.getTime() - 1_800_000).toISOString());
    expect(parseTimeFilter('3d', now)).toBe(new Date(now.getTime() - 3 * 86_400_000).toISOString());
    expect(parseTimeFilter('today', now)).toBe(new Date(2026, 11, 1).toISOString());
    expect(parseTimeFilter('yesterday', now)).toBe(new Date(2026, 10, 30).toISOString());
  });

  it('takes ISO dates (local midnight) and date-times (with or without an offset)', () => {
    expect(parseTimeFilter('2026-11-28', now)).toBe(new Date(2026, 10, 28).toISOString());
    expect(parseTimeFilter('2026-11-28T10:32:00Z', now)).toBe('2026-11-28T10:32:00.000Z');
    expect(parseTimeFilter('2026-11-28 10:32', now)).toBe(new Date(2026, 10, 28, 10, 32).toISOString());
  });

  it('refuses what it cannot read, saying which forms work', () => {
    for (const bad of ['25:00', '10:61', 'last tuesday', '2026-02-30', '2h ago', '']) {
      expect(() => parseTimeFilter(bad, now), bad).toThrow(/HH:MM|time of day/);
    }
  });
});

describe('EventStreamParser', () => {
  it('yields events split anywhere across chunks, skips comments, joins data lines', () => {
    const events: ServerSentEvent[] = [];
    const parser = new EventStreamParser((e) => events.push(e));
    const text = ': hello\n\nevent: step\ndata: {"a":1}\n\nevent: ping\ndata: {}\r\n\r\ndata: one\ndata: two\n\n';
    for (const ch of text) parser.push(ch);
    expect(events).toEqual([
      { event: 'step', data: '{"a":1}' },
      { event: 'ping', data: '{}' },
      { event: 'message', data: 'one\ntwo' },
    ]);
  });
});

describe('watch lines', () => {
  it('show a failing step with its problem and fix under it, and a delivery with the reply', () => {
    const at = new Date().toISOString();
    const line = formatStep({
      sessionId: 'smtp-0000-ab12cd34',
      protocol: 'smtp',
      remoteAddress: '192.168.1.50',
      step: 'auth',
      ok: false,
      detail: 'AUTH LOGIN as scaner-2f',
      reason: 'unknown-user',
      at,
      explanation: { problem: 'the login name is unknown', fix: 'it must be exactly scanner-2f' },
    });
    const [head, problem, fix] = line.trimEnd().split('\n');
    expect(head).toMatch(/^\d\d:\d\d:\d\d {2}smtp ab12cd34 {2}FAIL {2}auth {7}AUTH LOGIN as scaner-2f \[unknown-user\]$/);
    expect(problem.trim()).toBe('problem: the login name is unknown');
    expect(fix.trim()).toBe('fix:     it must be exactly scanner-2f');
    expect(problem.indexOf('problem')).toBe(head.indexOf('AUTH'));
    expect(formatDelivery({ id: 'abc', device: 'd', outcome: 'delivered', upstream: 'gmail', reply: '250 2.0.0 OK', at })).toMatch(
      /upstream {5}ok {4}delivered {2}message abc via gmail: 250 2\.0\.0 OK\n$/,
    );
  });
});
