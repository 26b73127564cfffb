/**
 * npm run bench: prints figures, asserts nothing. The gateway runs as a child process from the compiled
 * dist/ (as in production; `npm run bench` builds first) so its memory and CPU are measured alone
 * (VmHWM = peak RSS from /proc). Everything binds to 127.0.0.1.
 *
 *   BENCH_QUICK=1 npm run bench   smaller counts for a fast look
 *   BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench   profile the gateway process
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from 'node:net';
import { stringify } from 'yaml';

const QUICK = process.env.BENCH_QUICK === '1';
const ROOT = new URL('..', import.meta.url).pathname;
const DEVICE = { name: 'bench-scanner', username: 'bench', password: 'bench-password-123' };

export interface StartedGateway {
  child: ChildProcess;
  smtpPort: number;
  adminPort?: number;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startGatewayProcess(extra: Record<string, unknown> = {}): Promise<StartedGateway> {
  const dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-bench-'));
  const config = {
    dataDir,
    log: { level: 'warn' },
    smtp: { host: '127.0.0.1', port: 0, maxMessageSize: '30MB', maxClients: 200, maxConnectionsPerIp: 200 },
    admin: { enabled: false },
    devices: [{ ...DEVICE, allowRecipients: ['*@example.org'], ...(extra.deviceUpstream ? { upstream: extra.deviceUpstream } : {}) }],
    upstreams: extra.upstreams ?? [],
    ...(extra.delivery ? { delivery: extra.delivery } : {}),
  };
  const file = join(dataDir, 'gateway.yaml');
  await writeFile(file, stringify(config));
  const child = spawn(
    process.execPath,
    [...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), join(ROOT, 'dist/src/main.js'), '--config', file],
    {
      cwd: ROOT,
      env: { ...process.env, SCANRELAY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ smtp: number; admin?: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway did not start within 20 s')), 20_000);
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; smtp?: number; admin?: number };
        if (entry.msg === 'scanrelay.ready') {
          clearTimeout(timer);
          resolve({ smtp: entry.smtp!, admin: entry.admin });
        }
      } catch {
        /* not JSON */
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
  return {
    child,
    smtpPort: ready.smtp,
    adminPort: ready.admin,
    dataDir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Peak resident set size of a process in MB (VmHWM), and current RSS. */
export async function memoryOf(pid: number): Promise<{ peakMb: number; rssMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

/** Resets VmHWM so the next peak belongs to the next phase (Linux: write 5 to clear_refs). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
}

/** Minimal pipelining-free SMTP client over a raw socket that streams a generated body. */
export interface SendOptions {
  extraHeaders?: string;
  /** Called when the final dot is written (the clock for end-to-end latency starts there). */
  onFinalDot?: () => void;
}

export async function sendRaw(
  port: number,
  bodyBytes: number,
  rcpt = 'dest@example.org',
  options: SendOptions = {},
): Promise<{ acceptMs: number; reply: string }> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let buffer = '';
  const waiters: Array<(line: string) => void> = [];
  socket.setEncoding('latin1');
  socket.on('data', (data: string) => {
    buffer += data;
    for (;;) {
      const match = /^(\d{3}) [^\n]*\n/m.exec(buffer);
      if (!match) break;
      const end = match.index + match[0].length;
      const reply = buffer.slice(0, end);
      buffer = buffer.slice(end);
      waiters.shift()?.(reply.trim().split('\n').pop()!);
    }
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      waiters.push(resolve);
      socket.once('error', reject);
    });
  const command = async (line: string) => {
    const reply = next();
    socket.write(`${line}\r\n`);
    return reply;
  };
  await next();
  await command('EHLO bench.local');
  await command(`AUTH PLAIN ${Buffer.from(`\0${DEVICE.username}\0${DEVICE.password}`).toString('base64')}`);
  await command('MAIL FROM:<scanner@example.org>');
  await command(`RCPT TO:<${rcpt}>`);
  const dataReply = await command('DATA');
  if (!dataReply.startsWith('354')) throw new Error(`DATA refused: ${dataReply}`);
  const header = `From: scanner@example.org\r\nTo: ${rcpt}\r\nSubject: bench\r\n${options.extraHeaders ?? ''}MIME-Version: 1.0\r\n\r\n`;
  socket.write(header);
  const line = Buffer.from('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n'); // 78+2 bytes
  const chunk = Buffer.concat(Array.from({ length: 800 }, () => line)); // 64 KB
  let sent = 0;
  while (sent < bodyBytes) {
    const piece = bodyBytes - sent >= chunk.length ? chunk : chunk.subarray(0, Math.ceil((bodyBytes - sent) / line.length) * line.length);
    sent += piece.length;
    if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  const finalReply = next();
  const started = performance.now();
  options.onFinalDot?.();
  socket.write('.\r\n');
  const reply = await finalReply;
  const acceptMs = performance.now() - started;
  socket.write('QUIT\r\n');
  socket.end();
  if (!reply.startsWith('250')) throw new Error(`message refused: ${reply}`);
  return { acceptMs, reply };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export async function runConcurrent<T>(total: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const index = next++;
        results[index] = await task(index);
      }
    }),
  );
  return results;
}

async function benchInbound(): Promise<void> {
  const gateway = await startGatewayProcess();
  try {
    const total = QUICK ? 200 : 1000;
    await runConcurrent(20, 5, () => sendRaw(gateway.smtpPort, 100_000)); // warm-up
    const started = performance.now();
    const results = await runConcurrent(total, 10, () => sendRaw(gateway.smtpPort, 100_000));
    const seconds = (performance.now() - started) / 1000;
    const latencies = results.map((r) => r.acceptMs);
    console.log(`inbound: ${total} x 100 KB messages, 10 concurrent clients`);
    console.log(`  accepted messages/s        ${(total / seconds).toFixed(1)}`);
    console.log(
      `  accept latency p50 / p99   ${percentile(latencies, 50).toFixed(1)} ms / ${percentile(latencies, 99).toFixed(1)} ms  (final dot -> 250, fsync included)`,
    );
  } finally {
    await gateway.stop();
  }
  // A fresh gateway for the memory figure, so the heap left by the first phase does not count.
  const fresh = await startGatewayProcess();
  try {
    const big = QUICK ? 5_000_000 : 25_000_000;
    const gateway = fresh;
    await resetPeak(gateway.child.pid!);
    const before = await memoryOf(gateway.child.pid!);
    const bigStarted = performance.now();
    await Promise.all(Array.from({ length: 20 }, () => sendRaw(gateway.smtpPort, big)));
    const bigSeconds = (performance.now() - bigStarted) / 1000;
    const after = await memoryOf(gateway.child.pid!);
    console.log(`inbound: 20 clients x ${(big / 1e6).toFixed(0)} MB at once`);
    console.log(`  wall time                  ${bigSeconds.toFixed(1)} s (${((20 * big) / 1e6 / bigSeconds).toFixed(0)} MB/s into the spool)`);
    console.log(`  gateway RSS before / peak  ${before.rssMb.toFixed(0)} MB / ${after.peakMb.toFixed(0)} MB`);
  } finally {
    await fresh.stop();
  }
}

async function main(): Promise<void> {
  console.log(`scanrelay bench  node ${process.version}  ${QUICK ? '(quick)' : ''}`);
  await benchInbound();
  const { benchDelivery } = await import('./delivery-bench.js');
  await benchDelivery({ quick: QUICK });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
