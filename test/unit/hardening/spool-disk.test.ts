/**
 * Disk trouble at the queue level, with real filesystem conditions a test can create without privileges
 * (no fs mocks): a file-size limit on a child process (RLIMIT_FSIZE: a short write, then EFBIG), the spool
 * directory replaced by a file (ENOTDIR), a body path that is a directory (EISDIR on the rename of
 * `queue/<id>.part` to `queue/<id>.eml`). Each must
 * end in a SpoolError (the printer hears 4xx), never in an acknowledged, truncated body, and leave no
 * partial file behind. The privileged variants (a full tmpfs, a read-only remount) are in
 * test/integration/hardening-disk.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { Queue, type AcceptInput } from '../../../src/queue/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { SpoolError } from '../../../src/shared/errors.js';
import { waitFor } from '../../kit/gateway.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./spool-child.ts', import.meta.url));

/** prlimit (util-linux) sets RLIMIT_FSIZE on the child; lowering a limit needs no privileges. */
const prlimitMissing = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
})();

const input = (): AcceptInput => ({
  device: 'scanner',
  envelope: { mailFrom: 'a@example.org', rcptTo: ['b@example.org'], bodyType: '7bit', smtpUtf8: false },
  client: { address: '127.0.0.1', sessionId: 'unit' },
  maxSize: 10_000_000,
});

describe('queue.accept under disk trouble (real filesystem conditions, no privileges)', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-hardening-spool-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  /** Bodies in the spool (`<id>.eml`) and bodies still being written (`<id>.part`). */
  const entries = async () => {
    const names = (await readdir(join(dataDir, 'queue')).catch(() => [] as string[])).sort();
    return { queue: names.filter((n) => !n.endsWith('.part')), part: names.filter((n) => n.endsWith('.part')) };
  };
  /** The message ids the store database holds, as a restarted gateway would see them. */
  const storedIds = async () => {
    const reopened = await Queue.open({ dataDir, events: new GatewayEventBus() });
    try {
      return reopened
        .list()
        .items.map((m) => m.id)
        .sort();
    } finally {
      await reopened.close();
    }
  };

  it.skipIf(prlimitMissing !== undefined)(
    `file-size limit hit mid-body (RLIMIT_FSIZE): refused with a SpoolError, nothing truncated is kept, smaller bodies still go${prlimitMissing ? ` (skipped: prlimit unavailable: ${prlimitMissing})` : ''}`,
    async () => {
      const limit = 200 * 1024;
      // 200 KB fits. 250 KB is written as one final batch that the limit cuts short: the kernel reports a
      // short write, not an error, so only a writer that checks the count notices the missing bytes.
      // 300 KB and 1 MB: a first 256 KiB batch is cut short, the next write fails with EFBIG.
      const sizes = [200_000, 250_000, 300_000, 1_000_000, 100_000];
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          'prlimit',
          [`--fsize=${limit}`, process.execPath, '--import', 'tsx', CHILD, dataDir, ...sizes.map(String)],
          { cwd: ROOT, timeout: 60_000 },
          (err, out, errOut) => {
            if (err) reject(new Error(`${err.message}\n${errOut}`));
            else resolve(out);
          },
        );
      });
      const results = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { ok: boolean; id?: string; size?: number; code?: string; cause?: string });
      expect(results).toHaveLength(sizes.length);
      expect(results[0]).toMatchObject({ ok: true, size: 200_000 });
      for (const refused of results.slice(1, 4)) expect(refused).toMatchObject({ ok: false, code: 'SCANRELAY_SPOOL_WRITE', cause: 'EFBIG' });
      expect(results[4]).toMatchObject({ ok: true, size: 100_000 });

      // Exactly the two acknowledged messages are on disk, complete, and in the database; no part is left.
      const acknowledged = [results[0].id!, results[4].id!];
      expect(await entries()).toEqual({ queue: acknowledged.map((id) => `${id}.eml`).sort(), part: [] });
      expect(await storedIds()).toEqual([...acknowledged].sort());
      for (const [index, id] of acknowledged.entries()) {
        expect((await stat(join(dataDir, 'queue', `${id}.eml`))).size).toBe(index === 0 ? 200_000 : 100_000);
      }
    },
  );

  it('spool directory replaced by a file (ENOTDIR at the part file): SpoolError, the DATA stream is drained, nothing kept', async () => {
    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    await rm(join(dataDir, 'queue'), { recursive: true });
    await writeFile(join(dataDir, 'queue'), 'not a directory');
    const body = new PassThrough();
    const accepted = queue.accept(input(), body);
    body.end(Buffer.alloc(100_000, 'x'));
    const err = await accepted.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ code: 'SCANRELAY_SPOOL_WRITE', cause: { code: 'ENOTDIR' } });
    // The client's data must still be read to its end, so the session can answer 451 and go on.
    await waitFor(() => body.readableEnded, { what: 'DATA stream drained' });
    expect(queue.stats().counts.queued).toBe(0);
    await queue.close();
    await rm(join(dataDir, 'queue'));
    expect(await storedIds()).toEqual([]);
  });

  it('body path is a directory (EISDIR on rename of the part): refused, the part is removed, no row is written', async () => {
    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    const body = new PassThrough();
    const accepted = queue.accept(input(), body);
    body.write(Buffer.alloc(10_000, 'y'));
    // The part file names the id; occupy that id's body path with a directory before the body ends.
    const partName = await waitFor(async () => (await readdir(join(dataDir, 'queue'))).find((n) => n.endsWith('.part')), { what: 'part file' });
    const id = partName.slice(0, -'.part'.length);
    await mkdir(join(dataDir, 'queue', `${id}.eml`));
    body.end(Buffer.alloc(10_000, 'z'));
    const err = await accepted.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).code).toMatch(/^SCANRELAY_SPOOL_/);
    expect(await entries()).toEqual({ queue: [`${id}.eml`], part: [] });
    expect(queue.get(id)).toBeUndefined();

    // Once the obstacle is gone the same queue accepts again, and a restart finds only that message.
    await rm(join(dataDir, 'queue', `${id}.eml`), { recursive: true });
    const ok = new PassThrough();
    const next = queue.accept(input(), ok);
    ok.end('Subject: after\r\n\r\nfine\r\n');
    const message = await next;
    const reopened = await Queue.open({ dataDir, events: new GatewayEventBus() });
    expect(reopened.list().items.map((m) => m.id)).toEqual([message.id]);
    expect(await readFile(reopened.bodyPath(message.id), 'utf8')).toBe('Subject: after\r\n\r\nfine\r\n');
  });

  it('queue directory replaced by a file mid-body (rename fails ENOTDIR): refused, nothing kept', async () => {
    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    const body = new PassThrough();
    const accepted = queue.accept(input(), body);
    body.write(Buffer.alloc(10_000, 'q'));
    await waitFor(async () => (await readdir(join(dataDir, 'queue'))).find((n) => n.endsWith('.part')), { what: 'part file' });
    await rm(join(dataDir, 'queue'), { recursive: true });
    await writeFile(join(dataDir, 'queue'), 'not a directory');
    body.end(Buffer.alloc(40_000, 'q'));
    const err = await accepted.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SpoolError);
    expect(err).toMatchObject({ code: 'SCANRELAY_SPOOL_WRITE', cause: { code: 'ENOTDIR' } });
    expect(queue.list().items).toEqual([]);
    await queue.close();
    await rm(join(dataDir, 'queue'));
    expect(await storedIds()).toEqual([]);
  });
});
