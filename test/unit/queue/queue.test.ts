/**
 * Queue on a real temp directory: accept is durable and complete, refusals leave nothing, and start-up
 * recovery reconciles the journal with the spool directory.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { Queue, findHeaderEnd, parseHeaderBlock, type AcceptInput } from '../../../src/queue/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { MessageTooLargeError, SpoolError } from '../../../src/shared/errors.js';
import { newQueueId } from '../../../src/shared/ids.js';
import { sha256 } from '../../kit/inbound-scope.js';

const input = (extra: Partial<AcceptInput> = {}): AcceptInput => ({
  device: 'warren-2f-scanner',
  upstream: 'gmail-warren',
  envelope: { mailFrom: 'scanner@berkeley.edu', rcptTo: ['ops@example.org', 'dean@berkeley.edu'], bodyType: '7bit', smtpUtf8: false },
  client: { address: '10.20.5.17', heloName: 'npif65e56', sessionId: 'a1b2c3d4e5f6', authMethod: 'PLAIN' },
  maxSize: 1_000_000,
  ...extra,
});

/** A body delivered in several chunks, as a socket would. */
function chunked(data: Buffer, size = 7_000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

describe('Queue', () => {
  let dataDir: string;
  let events: GatewayEventBus;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-queue-'));
    events = new GatewayEventBus();
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const open = () => Queue.open({ dataDir, events });
  const entries = async () => ({ queue: (await readdir(join(dataDir, 'queue'))).sort(), tmp: (await readdir(join(dataDir, 'tmp'))).sort() });

  describe('accept', () => {
    it('resolves with body and record on disk, and emits message.queued', async () => {
      const queue = await open();
      const queued: string[] = [];
      events.on('message.queued', ({ id }) => queued.push(id));
      const body = Buffer.from(
        `From: scanner@berkeley.edu\r\nSubject: Scan\r\nMessage-ID: <m1@printer>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n${'x'.repeat(50_000)}\r\n`,
      );
      const message = await queue.accept(input(), chunked(body));

      expect(queued).toEqual([message.id]);
      expect(await readFile(queue.bodyPath(message.id))).toEqual(body);
      const record = JSON.parse(await readFile(join(dataDir, 'queue', `${message.id}.json`), 'utf8'));
      expect(record).toMatchObject({
        id: message.id,
        state: 'queued',
        device: 'warren-2f-scanner',
        upstream: 'gmail-warren',
        size: body.length,
        sha256: sha256(body),
        envelope: { mailFrom: 'scanner@berkeley.edu', rcptTo: ['ops@example.org', 'dean@berkeley.edu'] },
        client: { address: '10.20.5.17', authMethod: 'PLAIN' },
        headers: { from: 'scanner@berkeley.edu', subject: 'Scan', messageId: '<m1@printer>', hasDate: true },
        recipients: [
          { address: 'ops@example.org', state: 'pending' },
          { address: 'dean@berkeley.edu', state: 'pending' },
        ],
        attempts: 0,
      });
      expect(record.receivedAt).toBe(message.receivedAt);
      expect(await entries()).toEqual({ queue: [`${message.id}.eml`, `${message.id}.json`], tmp: [] });
    });

    it('stores a held message out of the due list', async () => {
      const queue = await open();
      const message = await queue.accept(
        input({ upstream: undefined, hold: { code: 'no-upstream', reason: 'no upstream' } }),
        Readable.from([Buffer.from('x\r\n')]),
      );
      expect(message.state).toBe('held');
      expect(queue.due()).toEqual([]);
    });

    it('refuses a body over maxSize with MessageTooLargeError and keeps nothing', async () => {
      const queue = await open();
      await expect(queue.accept(input({ maxSize: 10_000 }), chunked(Buffer.alloc(10_001, 0x61)))).rejects.toBeInstanceOf(MessageTooLargeError);
      expect(await entries()).toEqual({ queue: [], tmp: [] });
      expect(queue.list().total).toBe(0);
      // exactly at the limit is fine
      await expect(queue.accept(input({ maxSize: 10_000 }), chunked(Buffer.alloc(10_000, 0x61)))).resolves.toMatchObject({ size: 10_000 });
    });

    it('reads an oversized body to its end (so SMTP can answer 552 and go on)', async () => {
      const queue = await open();
      const source = chunked(Buffer.alloc(100_000, 0x62), 1000);
      await expect(queue.accept(input({ maxSize: 5_000 }), source)).rejects.toBeInstanceOf(MessageTooLargeError);
      expect(source.readableEnded).toBe(true);
    });

    it('keeps nothing when the body stream fails half-way (client gone)', async () => {
      const queue = await open();
      const source = new PassThrough();
      const accepted = queue.accept(input(), source);
      source.write(Buffer.alloc(300_000, 0x63));
      setImmediate(() => source.destroy(Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' })));
      const error = await accepted.catch((err: unknown) => err);
      expect(error).toBeInstanceOf(SpoolError);
      expect((error as SpoolError).code).toBe('SCANRELAY_SPOOL_ABORTED');
      expect(await entries()).toEqual({ queue: [], tmp: [] });
    });
  });

  describe('recovery at open', () => {
    it('removes temp leftovers and bodies without a record, keeps records and their bodies', async () => {
      const first = await open();
      const kept = await first.accept(input(), Readable.from([Buffer.from('Subject: kept\r\n\r\nkept\r\n')]));
      const held = await first.accept(input({ hold: { code: 'no-upstream', reason: 'r' } }), Readable.from([Buffer.from('held\r\n')]));

      // What a crash can leave: a half-written body, a half-written record, a body renamed without its record.
      const orphan = newQueueId();
      await writeFile(join(dataDir, 'tmp', `${newQueueId()}.eml`), 'half a body');
      await writeFile(join(dataDir, 'tmp', `.${kept.id}.json.0a1b2c3d.tmp`), '{"id":');
      await writeFile(join(dataDir, 'queue', `${orphan}.eml`), 'never acknowledged');

      const second = await open();
      expect(await entries()).toEqual({ queue: [`${kept.id}.eml`, `${kept.id}.json`, `${held.id}.eml`, `${held.id}.json`].sort(), tmp: [] });
      expect(second.get(orphan)).toBeUndefined();
      expect(second.require(kept.id)).toMatchObject({ state: 'queued', size: kept.size, sha256: kept.sha256, device: 'warren-2f-scanner' });
      expect(second.require(held.id)).toMatchObject({ state: 'held', held: { code: 'no-upstream' } });
      expect(second.due().map((m) => m.id)).toEqual([kept.id]);
    });

    it('marks a record whose body is missing as failed, durably', async () => {
      const first = await open();
      const message = await first.accept(input(), Readable.from([Buffer.from('x\r\n')]));
      await rm(first.bodyPath(message.id));
      const second = await open();
      expect(second.require(message.id)).toMatchObject({ state: 'failed', failReason: 'spool file missing at start-up' });
      const record = JSON.parse(await readFile(join(dataDir, 'queue', `${message.id}.json`), 'utf8'));
      expect(record.state).toBe('failed');
    });

    it('sets aside an unreadable record instead of failing to start', async () => {
      await open();
      const id = newQueueId();
      await writeFile(join(dataDir, 'queue', `${id}.json`), 'not json');
      const queue = await open();
      expect(queue.get(id)).toBeUndefined();
      expect((await entries()).queue).toEqual([`${id}.json.corrupt`]);
    });

    it('keeps state changes across a restart', async () => {
      const first = await open();
      const a = await first.accept(input(), Readable.from([Buffer.from('a\r\n')]));
      const b = await first.accept(input(), Readable.from([Buffer.from('b\r\n')]));
      const c = await first.accept(input(), Readable.from([Buffer.from('c\r\n')]));
      expect(first.lease(a.id)).toBe(true);
      await first.markDelivered(a.id, { upstream: 'gmail-warren', response: '250 2.0.0 OK' });
      const later = Date.now() + 60_000;
      expect(first.lease(b.id)).toBe(true);
      await first.markDeferred(b.id, { message: 'try later', code: 'ESOCKET' }, later);
      expect(first.lease(c.id)).toBe(true); // leased (delivering) at the crash: due again after restart

      const second = await open();
      expect(second.require(a.id)).toMatchObject({ state: 'delivered', recipients: [{ state: 'delivered' }, { state: 'delivered' }] });
      expect(second.require(b.id)).toMatchObject({ state: 'deferred', nextAttemptAt: later, lastError: { message: 'try later' } });
      expect(second.require(c.id).state).toBe('queued');
      expect(second.due().map((m) => m.id)).toEqual([c.id]);
    });
  });
});

describe('header sniffing helpers', () => {
  it('finds the end of the header block with CRLF, bare LF, or none at all', () => {
    expect(findHeaderEnd(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody'))).toBe(14);
    expect(findHeaderEnd(Buffer.from('A: 1\nB: 2\n\nbody'))).toBe(11);
    expect(findHeaderEnd(Buffer.from('\r\nbody'))).toBe(2);
    expect(findHeaderEnd(Buffer.from('A: 1\r\nno end yet'))).toBe(-1);
  });

  it('unfolds continuation lines and lower-cases names', () => {
    expect(parseHeaderBlock('Subject: a\r\n  long one\r\nFROM: x@y\r\n\r\nBody: no\r\n')).toEqual([
      ['subject', 'a long one'],
      ['from', 'x@y'],
    ]);
  });
});
