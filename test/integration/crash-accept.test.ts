/**
 * A 250 is a promise: the gateway runs as a real child process (src/main.ts), accepts messages, is
 * killed with SIGKILL right after the last 250 while another transfer is half-way, and restarts on the
 * same data directory. Every acknowledged id must be back, with its body intact; the half transfer not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeTempDir, waitFor } from '../kit/gateway.js';
import type { RawSmtpClient } from '../kit/raw-smtp.js';
import { Queue } from '../../src/queue/index.js';
import { GatewayEventBus } from '../../src/shared/events.js';
import { SCANNER_PASSWORD, authenticatedClient, deviceTransport, queueIdOf, scannerDevice, sha256, spoolEntries } from '../kit/inbound-scope.js';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface GatewayProcess {
  child: ChildProcess;
  /** Parsed JSON log lines from stdout. */
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Runs `node --import tsx src/main.ts --config FILE` with no SCANRELAY_* variables from the test's environment. */
function spawnGateway(configFile: string): GatewayProcess {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SCANRELAY_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configFile], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stdoutRest = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (stdoutRest + chunk).split('\n');
    stdoutRest = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => done({ code, signal }));
  });
  return {
    child,
    logs,
    exited,
    stderr: () => stderr,
    async waitForLog(msg, timeoutMs = 30_000) {
      return waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}) before "${msg}": ${stderr}`);
          return logs.find((line) => line.msg === msg);
        },
        { timeoutMs, intervalMs: 50, what: `log "${msg}"` },
      );
    },
  };
}

describe('gateway process killed with SIGKILL after 250', () => {
  const children: GatewayProcess[] = [];
  const clients: RawSmtpClient[] = [];
  let dataDir: string | undefined;

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const gateway of children.splice(0)) {
      if (gateway.child.exitCode === null && gateway.child.signalCode === null) {
        gateway.child.kill('SIGKILL');
        await gateway.exited;
      }
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    dataDir = undefined;
  });

  it('keeps every acknowledged message and drops the half-received one', { timeout: 120_000 }, async () => {
    dataDir = await makeTempDir('scanrelay-crash-');
    const configFile = join(dataDir, 'gateway.yaml');
    await writeFile(
      configFile,
      stringify({
        dataDir: join(dataDir, 'data'),
        log: { level: 'info' },
        smtp: { host: '127.0.0.1', port: 0, closeTimeout: '2s' },
        admin: { enabled: false },
        devices: [scannerDevice()],
        upstreams: [],
      }),
    );
    const spoolDir = join(dataDir, 'data');

    const first = spawnGateway(configFile);
    children.push(first);
    const port = Number((await first.waitForLog('scanrelay.ready')).smtp);
    expect(port).toBeGreaterThan(0);

    // A transfer that will never get its 250: DATA started, half the body sent.
    const halfway = await authenticatedClient(port);
    clients.push(halfway);
    await halfway.command('MAIL FROM:<scanner@berkeley.edu>');
    await halfway.command('RCPT TO:<ops@example.org>');
    expect((await halfway.command('DATA')).code).toBe(354);
    halfway.write(`Subject: never acknowledged\r\n\r\n${`${'C'.repeat(76)}\r\n`.repeat(5000)}`);
    await waitFor(async () => (await spoolEntries(spoolDir)).part.length > 0, { what: 'half-written temp body' });

    // Acknowledged messages: 3 printers sending 5 scans each.
    const acknowledged = new Map<string, string>();
    await Promise.all(
      Array.from({ length: 3 }, async (_, printer) => {
        const transport = deviceTransport(port, { user: 'warren-2f', pass: SCANNER_PASSWORD });
        try {
          for (let n = 0; n < 5; n++) {
            const raw = Buffer.from(`Subject: scan ${printer}-${n}\r\n\r\n${randomBytes(30_000).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`);
            const info = await transport.sendMail({ envelope: { from: 'scanner@berkeley.edu', to: ['ops@example.org'] }, raw });
            acknowledged.set(queueIdOf(info.response), sha256(raw));
          }
        } finally {
          transport.close();
        }
      }),
    );
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(acknowledged.size).toBe(15);
    expect((await spoolEntries(spoolDir)).part.length).toBeGreaterThan(0); // the leftover recovery must clean

    const second = spawnGateway(configFile);
    children.push(second);
    const started = await second.waitForLog('gateway.started');
    expect(started.queued).toMatchObject({ held: 15 });
    await second.waitForLog('scanrelay.ready');
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    const queue = await Queue.open({ dataDir: spoolDir, events: new GatewayEventBus() });
    const { items, total } = queue.list({ limit: 1000 });
    expect(total).toBe(15);
    expect(new Set(items.map((m) => m.id))).toEqual(new Set(acknowledged.keys()));
    for (const message of items) {
      const body = await readFile(queue.bodyPath(message.id));
      expect(sha256(body)).toBe(acknowledged.get(message.id));
      expect(message.sha256).toBe(acknowledged.get(message.id));
      expect(message).toMatchObject({ device: 'warren-2f-scanner', state: 'held', envelope: { rcptTo: ['ops@example.org'] } });
    }
    expect(await spoolEntries(spoolDir)).toEqual({ queue: [...acknowledged.keys()].map((id) => `${id}.eml`).sort(), part: [] });
  });
});
