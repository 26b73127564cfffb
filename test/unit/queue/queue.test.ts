/**
 * Queue on a real temp directory and a real store database: accept is durable and complete (body file +
 * row committed with synchronous=FULL), refusals leave nothing, claims own their message until one
 * outcome, and start-up recovery reads only what is in flight and quarantines, never deletes.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readSync, readlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { IllegalTransitionError, Queue, findHeaderEnd, parseHeaderBlock, type AcceptInput } from '../../../src/queue/index.js';
import { StoreDatabase } from '../../../src/store/database.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { MessageTooLargeError, SpoolError } from '../../../src/shared/errors.js';
import { newQueueId } from '../../../src/shared/ids.js';
import { sha256 } from '../../kit/inbound-scope.js';

/** What a descriptor of this process points at now (undefined once it is closed). */
const fdTarget = (fd: number) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
};

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

const body = (text: string) => Readable.from([Buffer.from(text)]);

describe('Queue', () => {
  let dataDir: string;
  let events: GatewayEventBus;
  let opened: Queue[];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-queue-'));
    events = new GatewayEventBus();
    opened = [];
  });
  afterEach(async () => {
    for (const queue of opened) await queue.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const open = async () => {
    const queue = await Queue.open({ dataDir, events });
    opened.push(queue);
    return queue;
  };
  /** Simulates a crash: the previous queue's database is closed without anything else happening. */
  const restart = async () => {
    for (const queue of opened.splice(0)) await queue.close();
    return open();
  };
  const spool = async () => (await readdir(join(dataDir, 'queue'))).sort();

  describe('accept', () => {
    it('resolves with the body on disk and the row committed and its WAL fdatasynced, and emits message.queued', async () => {
      const queue = await open();
      const queued: Array<{ id: string; sessionId: string; subject?: string; acceptMs: number }> = [];
      events.on('message.queued', (e) => queued.push(e));
      const data = Buffer.from(
        `From: scanner@berkeley.edu\r\nSubject: Scan\r\nMessage-ID: <m1@printer>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n${'x'.repeat(50_000)}\r\n`,
      );
      const syncsBefore = queue.database.commitStats.walSyncs;
      const message = await queue.accept(input(), chunked(data));

      // The commit itself does not fsync (SQLite's synchronous=OFF); the accept waited for a WAL fdatasync.
      expect(queue.database.synchronous()).toBe(0);
      expect(queue.database.commitStats.walSyncs).toBe(syncsBefore + 1);
      expect(queued).toEqual([
        {
          id: message.id,
          device: 'warren-2f-scanner',
          size: data.length,
          upstream: 'gmail-warren',
          sessionId: 'a1b2c3d4e5f6',
          subject: 'Scan',
          acceptMs: expect.any(Number),
        },
      ]);
      expect(queued[0].acceptMs).toBeGreaterThan(0);
      expect(sha256(await (await import('node:fs/promises')).readFile(queue.bodyPath(message.id)))).toBe(sha256(data));
      const row = queue.database.get<{ doc: string; state: string }>('SELECT doc, state FROM messages WHERE id = ?', message.id);
      expect(row?.state).toBe('queued');
      expect(JSON.parse(row?.doc ?? '{}')).toMatchObject({
        id: message.id,
        device: 'warren-2f-scanner',
        upstream: 'gmail-warren',
        size: data.length,
        sha256: sha256(data),
        envelope: { mailFrom: 'scanner@berkeley.edu', rcptTo: ['ops@example.org', 'dean@berkeley.edu'] },
        client: { address: '10.20.5.17', authMethod: 'PLAIN' },
        headers: { from: 'scanner@berkeley.edu', subject: 'Scan', messageId: '<m1@printer>', hasDate: true },
        recipients: [
          { address: 'ops@example.org', state: 'pending' },
          { address: 'dean@berkeley.edu', state: 'pending' },
        ],
        attempts: 0,
      });
      expect(await spool()).toEqual([`${message.id}.eml`]);
    });

    it('stores bodies of many batches byte for byte, chunked unevenly, several at once (reused batch buffers)', async () => {
      const queue = await open();
      // 1.3 MB: five 256 KiB batches and a short last one. Three bodies at once take buffers from the same
      // pool, and a fourth after them gets the returned ones.
      const pattern = (seed: number) => Buffer.from(Array.from({ length: 1_300_000 }, (_, i) => (i * 31 + seed) % 251));
      const bodies = [1, 2, 3].map(pattern);
      const chunkSizes = [65_536, 1, 4_099, 262_144, 300_000];
      const uneven = (data: Buffer) => {
        const source = new PassThrough();
        let at = 0;
        for (let n = 0; at < data.length; n++) {
          const size = chunkSizes[n % chunkSizes.length];
          source.write(data.subarray(at, at + size));
          at += size;
        }
        source.end();
        return source;
      };
      const accepted = await Promise.all(bodies.map((data) => queue.accept(input({ maxSize: 2_000_000 }), uneven(data))));
      const later = pattern(4);
      accepted.push(await queue.accept(input({ maxSize: 2_000_000 }), uneven(later)));
      bodies.push(later);
      for (const [index, message] of accepted.entries()) {
        const stored = await readFile(queue.bodyPath(message.id));
        expect(stored.equals(bodies[index]), `body ${index + 1}`).toBe(true);
        expect(message.sha256).toBe(sha256(bodies[index]));
      }
    });

    it('keeps the data directory 0700 and every file in it 0600, whatever the umask', async () => {
      const previous = process.umask(0o000);
      try {
        const queue = await open();
        const message = await queue.accept(input(), body('Subject: private\r\n\r\nx\r\n'));
        expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
        expect((await stat(join(dataDir, 'queue'))).mode & 0o777).toBe(0o700);
        expect((await stat(queue.bodyPath(message.id))).mode & 0o777).toBe(0o600);
        for (const name of await readdir(dataDir)) {
          const info = await stat(join(dataDir, name));
          if (info.isFile()) expect({ name, mode: info.mode & 0o777 }).toEqual({ name, mode: 0o600 });
        }
      } finally {
        process.umask(previous);
      }
    });

    it('shares one durable commit between concurrent accepts (group commit)', async () => {
      const queue = await open();
      const before = { ...queue.database.commitStats };
      await Promise.all(Array.from({ length: 20 }, (_, i) => queue.accept(input(), body(`Subject: ${i}\r\n\r\nx\r\n`))));
      const durable = queue.database.commitStats.durableBatches - before.durableBatches;
      expect(durable).toBeGreaterThanOrEqual(1);
      expect(durable).toBeLessThan(20);
    });

    it('stores a held message out of the due list', async () => {
      const queue = await open();
      const message = await queue.accept(input({ upstream: undefined, hold: { code: 'no-upstream', reason: 'no upstream' } }), body('x\r\n'));
      expect(message.state).toBe('held');
      expect(message.held).toMatchObject({ code: 'no-upstream', owner: 'system' });
      expect(queue.due()).toEqual([]);
    });

    it('refuses a body over maxSize with MessageTooLargeError and keeps nothing', async () => {
      const queue = await open();
      await expect(queue.accept(input({ maxSize: 10_000 }), chunked(Buffer.alloc(10_001, 0x61)))).rejects.toBeInstanceOf(MessageTooLargeError);
      expect(await spool()).toEqual([]);
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
      expect(await spool()).toEqual([]);
    });
  });

  describe('claims', () => {
    it('hands out a due message once; its outcome is recorded with the attempt and the reply', async () => {
      const queue = await open();
      const message = await queue.accept(input(), body('Subject: a\r\n\r\nhello\r\n'));
      const [claim, ...rest] = queue.claimDue();
      expect(rest).toEqual([]);
      expect(claim.message).toMatchObject({ id: message.id, state: 'delivering' });
      expect(queue.claimDue()).toEqual([]);
      expect((await claim.readHead(12))?.toString()).toBe('Subject: a\r\n');
      // The SMTP thread reads the body through the claim's open file, by position.
      const fd = await claim.bodyDescriptor();
      const tail = Buffer.alloc(7);
      expect(readSync(fd, tail, 0, 7, 14)).toBe(7);
      expect(tail.toString()).toBe('hello\r\n');
      const bodyFile = readlinkSync(`/proc/self/fd/${fd}`);
      expect(bodyFile).toMatch(new RegExp(`${message.id}\\.eml$`));
      await claim.delivered({ upstream: 'gmail-warren', reply: '250 2.0.0 OK abc' });
      // ... and the claim closes that file once the outcome is in (the number may be reused, not the file).
      await vi.waitFor(() => expect(fdTarget(fd)).not.toBe(bodyFile), { timeout: 2_000 });
      expect(queue.require(message.id)).toMatchObject({ state: 'delivered', attempts: 1, upstreamResponse: '250 2.0.0 OK abc' });
      expect(queue.attempts(message.id)).toEqual([{ at: expect.any(Number), upstream: 'gmail-warren', outcome: 'delivered', reply: '250 2.0.0 OK abc' }]);
      // a second outcome on the same claim is refused
      await expect(claim.failed({ reason: 'x' })).rejects.toThrow(/already has its outcome/);
    });

    it('makes a message with some recipients refused for good partly-failed', async () => {
      const queue = await open();
      const message = await queue.accept(input(), body('x\r\n'));
      const [claim] = queue.claimDue();
      await claim.saveRecipients([{ address: 'dean@berkeley.edu', state: 'failed', response: '550 no such user', at: Date.now() }]);
      await claim.delivered({ upstream: 'gmail-warren', reply: '250 OK' });
      expect(queue.require(message.id).state).toBe('partly-failed');
    });

    it('does not count a quota pause as an attempt', async () => {
      const queue = await open();
      const message = await queue.accept(input(), body('x\r\n'));
      const [claim] = queue.claimDue();
      await claim.deferred({ upstream: 'gmail-warren', error: { message: 'daily quota' }, nextAttemptAt: Date.now() + 60_000, paused: true });
      expect(queue.require(message.id)).toMatchObject({ state: 'deferred', attempts: 0 });
      expect(queue.attempts(message.id).map((a) => a.outcome)).toEqual(['paused']);
    });

    it('throws on an illegal transition (a delivered message cannot be retried or held)', async () => {
      const queue = await open();
      const message = await queue.accept(input(), body('x\r\n'));
      const [claim] = queue.claimDue();
      await claim.delivered({ upstream: 'gmail-warren' });
      await expect(queue.retryNow(message.id)).rejects.toBeInstanceOf(IllegalTransitionError);
      await expect(queue.hold(message.id)).rejects.toBeInstanceOf(IllegalTransitionError);
      await expect(queue.release(message.id)).rejects.toThrow(/not held/);
    });

    it('an admin hold is released only by an operator, not by start-up or a reload', async () => {
      const queue = await open();
      const message = await queue.accept(input(), body('x\r\n'));
      await queue.hold(message.id, 'check with finance');
      expect(await queue.releaseHolds('start-up', () => true)).toBe(0);
      expect(await queue.releaseHolds('config-reloaded', () => true)).toBe(0);
      expect(queue.require(message.id)).toMatchObject({ state: 'held', held: { code: 'admin', owner: 'admin', note: 'check with finance' } });
      await queue.release(message.id);
      expect(queue.require(message.id).state).toBe('queued');
    });
  });

  describe('recovery at open', () => {
    it('with openRowsLater, takes new accepts before the old open rows are read, and mixes none of them up', async () => {
      const first = await open();
      const old = [];
      for (let i = 0; i < 3; i++) old.push(await first.accept(input(), body(`Subject: old ${i}\r\n\r\nx\r\n`)));
      for (const queue of opened.splice(0)) await queue.close();

      const queue = await Queue.open({ dataDir, events, openRowsLater: true });
      opened.push(queue);
      const quarantined: string[] = [];
      events.on('message.quarantined', ({ id }) => quarantined.push(id));
      // Accepted while the previous run's rows are still unread (SMTP already listens in the gateway).
      const fresh = await queue.accept(input(), body('Subject: new\r\n\r\nx\r\n'));
      expect([...queue.openMessages()].map((m) => m.id)).toEqual([fresh.id]);
      await queue.loadOpenRows();
      expect([...queue.openMessages()].map((m) => m.id).sort()).toEqual([...old.map((m) => m.id), fresh.id].sort());
      expect(queue.get(fresh.id)?.state).toBe('queued');
      expect(quarantined).toEqual([]);
      expect(queue.stats().counts.quarantined).toBe(0);
    });

    it('removes unfinished transfers, keeps rows and their bodies, reads only open messages into memory', async () => {
      const first = await open();
      const kept = await first.accept(input(), body('Subject: kept\r\n\r\nkept\r\n'));
      const held = await first.accept(input({ hold: { code: 'no-upstream', reason: 'r' } }), body('held\r\n'));
      const done = await first.accept(input(), body('done\r\n'));
      await first
        .claimDue()
        .find((c) => c.message.id === done.id)
        ?.delivered({ upstream: 'gmail-warren' });
      first.claimDue().forEach((c) => c.release());
      await writeFile(join(dataDir, 'queue', `${newQueueId()}.part`), 'half a body');

      const second = await restart();
      expect(await spool()).toEqual([`${kept.id}.eml`, `${held.id}.eml`, `${done.id}.eml`].sort());
      expect(second.require(kept.id)).toMatchObject({ state: 'queued', size: kept.size, sha256: kept.sha256, device: 'warren-2f-scanner' });
      expect(second.require(held.id)).toMatchObject({ state: 'held', held: { code: 'no-upstream' } });
      expect(second.require(done.id).state).toBe('delivered');
      expect([...second.openMessages()].map((m) => m.id).sort()).toEqual([kept.id, held.id].sort());
      expect(second.due().map((m) => m.id)).toEqual([kept.id]);
    });

    it('quarantines a body without a row, with its reason, and never deletes it', async () => {
      await open();
      const orphan = newQueueId();
      await writeFile(join(dataDir, 'queue', `${orphan}.eml`), 'Subject: maybe acknowledged\r\n\r\nx\r\n');
      const queue = await restart();
      expect(queue.require(orphan)).toMatchObject({ state: 'quarantined', quarantine: { reason: 'its body was found without a record' } });
      expect(queue.stats().counts.quarantined).toBe(1);
      expect(await spool()).toEqual([`${orphan}.eml`]);
      // retention never removes it; a second start does not quarantine it twice
      await queue.sweep(0, 0);
      const again = await restart();
      expect(again.stats().counts.quarantined).toBe(1);
      expect(await spool()).toEqual([`${orphan}.eml`]);
    });

    it('quarantines a row whose body is missing and a row that cannot be read, keeping both rows', async () => {
      const first = await open();
      const missing = await first.accept(input(), body('x\r\n'));
      const corrupt = await first.accept(input(), body('y\r\n'));
      await rm(first.bodyPath(missing.id));
      first.database.transaction(() => first.database.prepare("UPDATE messages SET doc = '{not json' WHERE id = ?").run(corrupt.id));
      const second = await restart();
      expect(second.require(missing.id)).toMatchObject({ state: 'quarantined', quarantine: { reason: 'its body file is missing from the spool' } });
      expect(second.require(corrupt.id).state).toBe('quarantined');
      expect(second.require(corrupt.id).quarantine?.reason).toMatch(/cannot be read/);
      expect(await spool()).toEqual([`${corrupt.id}.eml`]);
      expect(second.list({ state: 'quarantined' }).total).toBe(2);
    });

    it('finishes a rename that did not survive (row committed, body still under its temp name)', async () => {
      const first = await open();
      const message = await first.accept(input(), body('Subject: r\r\n\r\nrenamed\r\n'));
      await rename(first.bodyPath(message.id), first.partPath(message.id));
      const second = await restart();
      expect(second.require(message.id).state).toBe('queued');
      expect(await spool()).toEqual([`${message.id}.eml`]);
    });

    it('keeps state changes across a restart; a claim cut by the crash is due again', async () => {
      const first = await open();
      const a = await first.accept(input(), body('a\r\n'));
      const b = await first.accept(input(), body('b\r\n'));
      const c = await first.accept(input(), body('c\r\n'));
      const claims = new Map(first.claimDue().map((claim) => [claim.message.id, claim]));
      await claims.get(a.id)?.delivered({ upstream: 'gmail-warren', reply: '250 2.0.0 OK' });
      const later = Date.now() + 60_000;
      await claims.get(b.id)?.deferred({ error: { message: 'try later', code: 'ESOCKET' }, nextAttemptAt: later, upstream: 'gmail-warren' });
      // c stays claimed (delivering) at the crash

      const second = await restart();
      expect(second.require(a.id)).toMatchObject({ state: 'delivered', recipients: [{ state: 'delivered' }, { state: 'delivered' }] });
      expect(second.require(b.id)).toMatchObject({ state: 'deferred', nextAttemptAt: later, lastError: { message: 'try later' }, attempts: 1 });
      expect(second.require(c.id).state).toBe('queued');
      expect(second.due().map((m) => m.id)).toEqual([c.id]);
    });

    it('opens the database in WAL mode at the current schema version', async () => {
      const queue = await open();
      expect(queue.database.get<{ journal_mode: string }>('PRAGMA journal_mode')?.journal_mode).toBe('wal');
      expect(queue.database.schemaVersion).toBeGreaterThanOrEqual(1);
      const reopened = StoreDatabase.open(join(dataDir, 'store.db'));
      expect(reopened.schemaVersion).toBe(queue.database.schemaVersion);
      reopened.close();
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
