/**
 * A record write the disk refuses (here: the temp directory is gone, as on a disk that went read-only or
 * full) must neither crash the process nor make a message the upstream already accepted due again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
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

describe('queue record writes refused by the disk', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps "delivered" in memory, retries the record write, and never makes the message due again', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-record-'));
    const failures: string[] = [];
    const persisted: string[] = [];
    const queue = await Queue.open({
      dataDir,
      events: new GatewayEventBus(),
      onPersistError: (id) => failures.push(id),
      onPersisted: (id) => persisted.push(id),
    });
    const message = await queue.accept(INPUT, Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]));
    expect(queue.lease(message.id)).toBe(true);

    await rm(join(dataDir, 'tmp'), { recursive: true });
    await queue.markDelivered(message.id, { upstream: 'gmail', response: '250 OK' });
    expect(failures).toEqual([message.id]);
    expect(queue.get(message.id)?.state).toBe('delivered');
    expect(queue.due(Date.now() + 86_400_000)).toEqual([]);

    await mkdir(join(dataDir, 'tmp'));
    await waitFor(() => persisted.includes(message.id), { timeoutMs: 10_000, what: 'the record to be written after the disk recovered' });
    const onDisk = JSON.parse(await readFile(join(dataDir, 'queue', `${message.id}.json`), 'utf8'));
    expect(onDisk.state).toBe('delivered');
  });

  it('reports other refused writes to the caller only: no unhandled rejection, memory unchanged', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-record-'));
    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    const message = await queue.accept(INPUT, Readable.from([Buffer.from('Subject: x\r\n\r\nbody\r\n')]));
    queue.lease(message.id);
    await rm(join(dataDir, 'tmp'), { recursive: true });
    await expect(queue.markDeferred(message.id, { message: '421 try later' }, Date.now() + 60_000)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(queue.get(message.id)?.state).not.toBe('deferred');
    // Give a stray rejection the chance to surface; vitest fails the run on an unhandled one.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await queue.flush();
  });
});
