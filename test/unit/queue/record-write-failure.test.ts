/**
 * A row write the database refuses (here: a temp trigger raises, as a full or read-only disk would) must
 * neither crash the process nor make a message the upstream already accepted due again. Memory takes
 * the outcome at once; the write is retried until it lands.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Queue, type AcceptInput } from '../../../src/queue/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { waitFor } from '../../kit/gateway.js';

const INPUT: AcceptInput = {
  device: 'scanner',
  upstream: 'gmail',
  maxSize: 1_000_000,
  envelope: { mailFrom: 'a@example.org', rcptTo: ['b@example.org'], bodyType: '7bit', smtpUtf8: false },
  client: { address: '127.0.0.1', sessionId: 's1' },
};

const REFUSE = "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON messages BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END";
const ALLOW = 'DROP TRIGGER temp.refuse';

describe('queue row writes refused by the database', () => {
  let dataDir: string | undefined;
  let queue: Queue | undefined;
  afterEach(async () => {
    await queue?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const rowState = (q: Queue, id: string) => q.database.get<{ state: string }>('SELECT state FROM messages WHERE id = ?', id)?.state;

  it('keeps "delivered" in memory, retries the write, and never makes the message due again', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-record-'));
    const failures: string[] = [];
    const persisted: string[] = [];
    queue = await Queue.open({ dataDir, events: new GatewayEventBus(), onPersistError: (id) => failures.push(id), onPersisted: (id) => persisted.push(id) });
    const message = await queue.accept(INPUT, Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]));
    const [claim] = queue.claimDue();
    expect(claim.message.id).toBe(message.id);

    queue.database.exec(REFUSE);
    await claim.delivered({ upstream: 'gmail', reply: '250 OK' });
    expect(failures).toEqual([message.id]);
    expect(queue.get(message.id)?.state).toBe('delivered');
    expect(rowState(queue, message.id)).toBe('queued');
    expect(queue.due(Date.now() + 86_400_000)).toEqual([]);
    expect(queue.claimDue(Date.now() + 86_400_000)).toEqual([]);

    queue.database.exec(ALLOW);
    await waitFor(() => persisted.includes(message.id), { timeoutMs: 10_000, what: 'the row to be written after the disk recovered' });
    expect(rowState(queue, message.id)).toBe('delivered');
    expect(queue.attempts(message.id).map((a) => a.outcome)).toEqual(['delivered']);
  });

  it('keeps any other refused outcome in memory too, with no unhandled rejection, and writes it at shutdown', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-record-'));
    queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    const message = await queue.accept(INPUT, Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]));
    const [claim] = queue.claimDue();
    queue.database.exec(REFUSE);
    const later = Date.now() + 60_000;
    await claim.deferred({ upstream: 'gmail', error: { message: '421 try later' }, nextAttemptAt: later });
    expect(queue.get(message.id)).toMatchObject({ state: 'deferred', nextAttemptAt: later });
    expect(queue.due()).toEqual([]);
    queue.database.exec(ALLOW);
    await queue.flush();
    expect(rowState(queue, message.id)).toBe('deferred');
  });
});
