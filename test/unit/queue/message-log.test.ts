/**
 * The message log against a seeded store: each filter gives exactly the matching messages, `total` is
 * exact, the cursor pages stably while messages arrive, and every filter's plan uses an index.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, parseTimeBound, type QueuedMessage } from '../../../src/queue/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { newQueueId } from '../../../src/shared/ids.js';

const NOW = Date.parse('2026-12-01T15:00:00Z');
const DEVICES = ['copier-2f', 'copier-3f', 'reception'];

function seedMessage(i: number): QueuedMessage {
  const at = NOW - (200 - i) * 60_000; // one a minute, oldest first
  const state = (['delivered', 'failed', 'deferred', 'partly-failed'] as const)[i % 4];
  return {
    id: newQueueId(at),
    state,
    device: DEVICES[i % 3],
    upstream: i % 2 === 0 ? 'gmail-a' : 'gmail-b',
    envelope: { mailFrom: 'scanner@example.org', rcptTo: [i % 5 === 0 ? 'Boss@Example.org' : 'desk@example.org'], bodyType: '7bit', smtpUtf8: false },
    recipients: [],
    size: 100,
    sha256: '',
    has8bit: false,
    headers: { subject: i % 7 === 0 ? `Invoice ${i} from ACME` : `Scan ${i}`, hasDate: true },
    client: { address: '10.0.0.1', sessionId: `s${i}` },
    receivedAt: at,
    updatedAt: at,
    attempts: 1,
    nextAttemptAt: state === 'deferred' ? NOW + 60_000 : undefined,
    deliveredAt: state === 'delivered' || state === 'partly-failed' ? at + 1000 : undefined,
    failedAt: state === 'failed' ? at + 1000 : undefined,
  };
}

describe('message log filters on a seeded store', () => {
  let dataDir: string;
  let queue: Queue;
  let all: QueuedMessage[];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-log-'));
    queue = await Queue.open({ dataDir, events: new GatewayEventBus(), now: () => NOW });
    all = Array.from({ length: 200 }, (_, i) => seedMessage(i));
    queue.database.transaction(() => {
      for (const m of all) queue.insertRow(m, false);
    });
  });
  afterEach(async () => {
    await queue.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const newestFirst = (ms: QueuedMessage[]) => [...ms].sort((a, b) => b.receivedAt - a.receivedAt).map((m) => m.id);
  const ids = (filter: Parameters<Queue['list']>[0]) => {
    const result = queue.list({ ...filter, limit: 500 });
    expect(result.total).toBe(result.items.length);
    return result.items.map((m) => m.id);
  };

  it.each([
    ['device', { device: 'copier-3f' }, (m: QueuedMessage) => m.device === 'copier-3f'],
    ['upstream', { upstream: 'gmail-b' }, (m: QueuedMessage) => m.upstream === 'gmail-b'],
    [
      'state (repeatable)',
      { state: ['failed', 'partly-failed'] as QueuedMessage['state'][] },
      (m: QueuedMessage) => m.state === 'failed' || m.state === 'partly-failed',
    ],
    ['recipient (exact, any case)', { recipient: 'boss@EXAMPLE.org' }, (m: QueuedMessage) => m.envelope.rcptTo[0] === 'Boss@Example.org'],
    ['subject (substring, any case)', { subject: 'invoice' }, (m: QueuedMessage) => /invoice/i.test(m.headers.subject ?? '')],
    ['since', { since: NOW - 30 * 60_000 }, (m: QueuedMessage) => m.receivedAt >= NOW - 30 * 60_000],
    ['until', { until: NOW - 150 * 60_000 }, (m: QueuedMessage) => m.receivedAt <= NOW - 150 * 60_000],
  ] as const)('%s', (_name, filter, matches) => {
    const expected = newestFirst(all.filter(matches));
    expect(expected.length).toBeGreaterThan(0);
    expect(ids(filter)).toEqual(expected);
    const plan = queue.log.explainList(filter).join(' | ');
    expect(plan, plan).toMatch(/USING (COVERING )?INDEX|VIRTUAL TABLE INDEX|USING INTEGER PRIMARY KEY/);
    expect(plan).not.toMatch(/\bSCAN m\b(?! USING)/);
  });

  it('combines filters, and total stays exact with a small page', () => {
    const expected = newestFirst(all.filter((m) => m.device === 'copier-2f' && m.upstream === 'gmail-a' && m.state === 'delivered'));
    const page = queue.list({ device: 'copier-2f', upstream: 'gmail-a', state: 'delivered', limit: 3 });
    expect(page.total).toBe(expected.length);
    expect(page.items.map((m) => m.id)).toEqual(expected.slice(0, 3));
  });

  it('pages with a cursor that stays stable while messages arrive', () => {
    const first = queue.list({ limit: 50 });
    expect(first.nextCursor).toBeDefined();
    // a new message arrives between the pages: offset paging would shift, the cursor does not
    queue.database.transaction(() => queue.insertRow({ ...seedMessage(0), id: newQueueId(NOW + 1000), receivedAt: NOW + 1000 }, false));
    const second = queue.list({ limit: 50, cursor: first.nextCursor });
    expect(second.items.map((m) => m.id)).toEqual(newestFirst(all).slice(50, 100));
  });

  it('refuses a subject of fewer than 3 characters and a cursor it did not give out', () => {
    expect(() => queue.list({ subject: 'ab' })).toThrow(/at least 3/);
    expect(() => queue.list({ cursor: 'bogus' })).toThrow(/cursor/);
  });
});

describe('since / until grammar', () => {
  it('reads ISO 8601, a time of day in the gateway time zone, and relative ages', () => {
    expect(parseTimeBound('2026-12-01T10:30:00Z', NOW, 'UTC')).toBe(Date.parse('2026-12-01T10:30:00Z'));
    expect(parseTimeBound('10:32', NOW, 'UTC')).toBe(Date.parse('2026-12-01T10:32:00Z'));
    expect(parseTimeBound('10:32', NOW, 'Europe/Berlin')).toBe(Date.parse('2026-12-01T09:32:00Z'));
    expect(parseTimeBound('10:32', NOW, 'America/New_York')).toBe(Date.parse('2026-12-01T15:32:00Z'));
    expect(parseTimeBound('2h', NOW, 'UTC')).toBe(NOW - 7_200_000);
    expect(parseTimeBound('30m', NOW, 'UTC')).toBe(NOW - 1_800_000);
    expect(parseTimeBound('3d', NOW, 'UTC')).toBe(NOW - 3 * 86_400_000);
    expect(() => parseTimeBound('yesterday', NOW, 'UTC')).toThrow(/not a time/);
  });
});
