/**
 * Disk trouble with real filesystems: the spool full (a small tmpfs mounted on the data directory and
 * filled), space running out in the middle of a body, the spool read-only (remount ro), the queue
 * directory immutable (chattr +i), and a file-size limit on a child-process gateway (prlimit). Every
 * time the printer must hear 452/451, nothing partial may stay in the spool, the gateway keeps serving,
 * and it accepts again once the trouble is gone.
 *
 * Mounting needs CAP_SYS_ADMIN (root here; often not in CI): without it those tests are skipped with
 * the reason in their name. The prlimit variant needs no privileges, and the same code paths are also
 * covered at the queue level in test/unit/hardening/spool-disk.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { open, readdir, rm, stat, statfs, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { RawSmtpClient } from '../kit/raw-smtp.js';
import { authenticatedClient, dataPayload, deviceTransport, queueIdOf, scannerDevice, SCANNER_PASSWORD, spoolEntries } from '../kit/inbound-scope.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Why a privileged tool cannot be used here (undefined: it can). */
function probe(run: (dir: string) => void): string | undefined {
  const dir = execFileSync('mktemp', ['-d', '/tmp/scanrelay-probe-XXXXXX']).toString().trim();
  try {
    run(dir);
    return undefined;
  } catch (err) {
    return ((err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message).split('\n')[0];
  } finally {
    try {
      execFileSync('rmdir', [dir], { stdio: 'ignore' });
    } catch {
      // still mounted after a half-failed probe: leave it rather than fail the collection
    }
  }
}

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });

const mountUnavailable = probe((dir) => {
  sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir);
  sh('umount', dir);
});
const chattrUnavailable =
  mountUnavailable ??
  probe((dir) => {
    sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir);
    try {
      sh('chattr', '+i', dir);
      sh('chattr', '-i', dir);
    } finally {
      sh('umount', dir);
    }
  });
const prlimitUnavailable = probe(() => sh('prlimit', '--version'));

const skipNote = (reason: string | undefined, what: string) => (reason ? ` (skipped: ${what}: ${reason})` : '');

/** One message over a raw session that is already authenticated; returns the reply to the final dot. */
async function sendOne(client: RawSmtpClient, body: Buffer) {
  expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
  expect((await client.command('RCPT TO:<ops@example.org>')).code).toBe(250);
  expect((await client.command('DATA')).code).toBe(354);
  client.write(dataPayload(body));
  return client.read(20_000);
}

const scan = (bytes: number, tag: string) =>
  Buffer.from(`${`Subject: ${tag}\r\n\r\n${'S'.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 80)).slice(0, bytes)}\r\n`, 'latin1');

describe.skipIf(mountUnavailable !== undefined)(`spool on a small tmpfs${skipNote(mountUnavailable, 'mounting a tmpfs needs CAP_SYS_ADMIN')}`, () => {
  let dir: string | undefined;
  let gw: TestGateway | undefined;
  const clients: RawSmtpClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await gw?.stop();
    gw = undefined;
    if (dir) {
      for (const undo of [
        ['chattr', '-i', join(dir, 'queue')],
        ['umount', join(dir, 'queue')],
        ['mount', '-o', 'remount,rw', dir],
        ['umount', dir],
      ]) {
        try {
          sh(undo[0], ...undo.slice(1));
        } catch {
          // not applied in this test
        }
      }
      await rm(dir, { recursive: true, force: true });
      dir = undefined;
    }
  });

  async function start(sizeMb = 8): Promise<TestGateway> {
    dir = await makeTempDir('scanrelay-tmpfs-');
    sh('mount', '-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir);
    gw = await startTestGateway({ devices: [scannerDevice()] }, { dataDir: dir });
    return gw;
  }

  async function session(): Promise<RawSmtpClient> {
    const client = await authenticatedClient(gw!.smtpPort);
    clients.push(client);
    return client;
  }

  const freeBytes = async () => {
    const fs = await statfs(dir!);
    return fs.bavail * fs.bsize;
  };

  /** Fills the filesystem with one file, then gives back `leave` bytes (tmpfs frees truncated pages). */
  async function fill(leave = 0): Promise<string> {
    const filler = join(dir!, 'filler.bin');
    const handle = await open(filler, 'w');
    const block = Buffer.alloc(256 * 1024, 0x5a);
    try {
      for (;;) {
        const { bytesWritten } = await handle.write(block);
        if (bytesWritten < block.length) break;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    } finally {
      await handle.close();
    }
    if (leave > 0) await truncate(filler, (await stat(filler)).size - leave);
    return filler;
  }

  /** The gateway still answers a new client normally and reports itself alive. */
  async function stillServing(): Promise<void> {
    const { client, greeting } = await RawSmtpClient.open(gw!.smtpPort);
    clients.push(client);
    expect(greeting.code).toBe(220);
    expect((await client.command('EHLO after.trouble')).code).toBe(250);
    expect((await gw!.gateway.admin!.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  }

  it('spool full: 452 at the end of DATA, nothing partial kept, the session goes on, accepted again once space is freed', async () => {
    const g = await start();
    const client = await session();
    const filler = await fill();
    expect(await freeBytes()).toBeLessThan(4096 * 2);

    const refused = await sendOne(client, scan(100_000, 'full'));
    expect(refused.code).toBe(452);
    expect(refused.text).toMatch(/4\.3\.1 Insufficient system storage/);
    expect(await spoolEntries(g.dataDir)).toEqual({ queue: [], part: [] });
    expect(g.logs.some((l) => l.includes('"smtp.data.refused"') && l.includes('SCANRELAY_SPOOL_DISK_FULL'))).toBe(true);
    expect((await client.command('NOOP')).code).toBe(250);
    await stillServing();

    await unlink(filler);
    const accepted = await sendOne(client, scan(100_000, 'after'));
    expect(accepted.code).toBe(250);
    const message = g.gateway.queue.require(queueIdOf(accepted.text));
    expect((await stat(g.gateway.queue.bodyPath(message.id))).size).toBe(message.size);
    expect(message.headers.subject).toBe('after');
  });

  it('space runs out in the middle of a body or at the record: 452, no truncated body is acknowledged, nothing left', async () => {
    const g = await start();
    const client = await session();
    // 64 KiB free for a 200 KB body: the body's one write is cut short by the kernel (no error yet).
    const filler = await fill(64 * 1024);
    const cut = await sendOne(client, scan(200_000, 'cut short'));
    expect(cut.code).toBe(452);
    expect(await spoolEntries(g.dataDir)).toEqual({ queue: [], part: [] });

    // Room for exactly the body's pages: the body fits, its record does not.
    await unlink(filler);
    const body = scan(40 * 1024 - 2, 'no room for the record');
    expect(body.length % 4096).toBe(0);
    await fill(body.length);
    const noRecord = await sendOne(client, body);
    expect(noRecord.code).toBe(452);
    expect(await spoolEntries(g.dataDir)).toEqual({ queue: [], part: [] });
    expect(g.gateway.queue.stats().counts.queued).toBe(0);
    await stillServing();
  });

  it('spool read-only (read-only bind mount): 451, /readyz says not ready, nothing kept; accepted again once writable', async () => {
    const g = await start();
    const client = await session();
    // The spool directory alone goes read-only: the whole filesystem cannot be remounted ro while the
    // store database is open for writing on it (EBUSY), and a spool that is read-only is the fault here.
    const spool = join(dir!, 'queue');
    sh('mount', '--bind', spool, spool);
    sh('mount', '-o', 'remount,bind,ro', spool);
    const refused = await sendOne(client, scan(20_000, 'read-only'));
    expect(refused.code).toBe(451);
    expect(refused.text).toMatch(/4\.3\.0 Temporary local problem/);
    const ready = await g.gateway.admin!.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ status: 'not-ready', checks: { store: false } });
    expect(g.gateway.queue.list().total).toBe(0);
    await stillServing();

    sh('umount', spool);
    expect((await g.gateway.admin!.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const accepted = await sendOne(client, scan(20_000, 'writable again'));
    expect(accepted.code).toBe(250);
    const id = queueIdOf(accepted.text);
    expect(await spoolEntries(g.dataDir)).toEqual({ queue: [`${id}.eml`], part: [] });
    expect(g.gateway.queue.list().items.map((m) => m.id)).toEqual([id]);
  });

  it.skipIf(chattrUnavailable !== undefined)(
    `queue directory immutable (chattr +i): the body cannot be moved in, 451, the temp body is removed${skipNote(chattrUnavailable, 'chattr +i needs CAP_LINUX_IMMUTABLE')}`,
    async () => {
      const g = await start();
      const client = await session();
      sh('chattr', '+i', join(dir!, 'queue'));
      const refused = await sendOne(client, scan(30_000, 'immutable'));
      expect(refused.code).toBe(451);
      expect(await spoolEntries(g.dataDir)).toEqual({ queue: [], part: [] });
      await stillServing();
      sh('chattr', '-i', join(dir!, 'queue'));
      expect((await sendOne(client, scan(30_000, 'movable again'))).code).toBe(250);
    },
  );
});

describe.skipIf(prlimitUnavailable !== undefined)(
  `gateway process with a file-size limit (RLIMIT_FSIZE)${skipNote(prlimitUnavailable, 'prlimit (util-linux) unavailable')}`,
  () => {
    let dir: string | undefined;
    let child: ChildProcess | undefined;

    afterEach(async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      child = undefined;
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('a body over the limit gets 451 and leaves nothing; the process keeps running and takes smaller scans', async () => {
      dir = await makeTempDir('scanrelay-fsize-');
      const dataDir = join(dir, 'data');
      const configFile = join(dir, 'gateway.yaml');
      await writeFile(
        configFile,
        stringify({
          dataDir,
          log: { level: 'info' },
          smtp: { host: '127.0.0.1', port: 0, closeTimeout: '1s' },
          admin: { enabled: false },
          devices: [scannerDevice()],
          upstreams: [],
        }),
      );
      const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SCANRELAY_')));
      child = spawn('prlimit', ['--fsize=262144', process.execPath, '--import', 'tsx', 'src/main.ts', '--config', configFile], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const logs: Array<Record<string, unknown>> = [];
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const ready = await waitFor(
        () => {
          if (child!.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
          return logs.find((l) => l.msg === 'scanrelay.ready');
        },
        { timeoutMs: 30_000, what: 'scanrelay.ready' },
      );
      const port = Number(ready.smtp);

      const transport = deviceTransport(port, { user: 'warren-2f', pass: SCANNER_PASSWORD });
      try {
        const big = scan(600_000, 'too big for the file-size limit');
        const err = await transport.sendMail({ envelope: { from: 'scanner@berkeley.edu', to: ['ops@example.org'] }, raw: big }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ responseCode: 451 });
        const info = await transport.sendMail({ envelope: { from: 'scanner@berkeley.edu', to: ['ops@example.org'] }, raw: scan(20_000, 'small') });
        const id = queueIdOf(info.response);
        expect(child.exitCode).toBeNull();
        // One body on disk; its row is committed before the 250 (the gateway logs queue.accepted after the commit).
        expect(await spoolEntries(dataDir)).toEqual({ queue: [`${id}.eml`], part: [] });
        expect(logs.some((l) => l.msg === 'smtp.data.refused' && l.code === 451)).toBe(true);
        await waitFor(() => logs.some((l) => l.msg === 'queue.accepted' && l.queueId === id), { what: 'queue.accepted log line' });
        expect(logs.filter((l) => l.msg === 'queue.accepted').map((l) => l.queueId)).toEqual([id]);
        expect((await readdir(join(dataDir, 'queue'))).length).toBe(1);
      } finally {
        transport.close();
      }
    });
  },
);
