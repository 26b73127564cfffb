/**
 * Delivery figures: printer -> gateway -> TLS upstream, against the same messages sent straight to the
 * same upstream with nodemailer. The upstream is an in-process smtp-server with implicit TLS + AUTH and
 * a self-signed certificate made here.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import nodemailer from 'nodemailer';
import { generate } from 'selfsigned';
import { percentile, runConcurrent, sendRaw, startGatewayProcess } from './bench.js';

const UPSTREAM_USER = 'bench-account@example.org';
const UPSTREAM_PASS = 'app-password-16ch';

interface BenchUpstream {
  port: number;
  caFile: string;
  received: number;
  onReceived?: (subjectTag: string | undefined) => void;
  close(): Promise<void>;
}

async function startUpstream(dir: string): Promise<BenchUpstream> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const caFile = join(dir, 'upstream-ca.pem');
  await writeFile(caFile, pems.cert);
  const state: BenchUpstream = { port: 0, caFile, received: 0, close: async () => undefined };
  const server = new SMTPServer({
    secure: true,
    key: pems.private,
    cert: pems.cert,
    logger: false,
    disableReverseLookup: true,
    size: 40_000_000,
    authMethods: ['PLAIN', 'LOGIN'],
    onAuth(auth, _session, callback) {
      if (auth.username === UPSTREAM_USER && auth.password === UPSTREAM_PASS) return callback(null, { user: auth.username });
      callback(Object.assign(new Error('5.7.8 Username and Password not accepted'), { responseCode: 535 }));
    },
    onData(stream, _session, callback) {
      let head = '';
      stream.on('data', (chunk: Buffer) => {
        if (head.length < 4096) head += chunk.toString('latin1');
      });
      stream.on('end', () => {
        state.received++;
        state.onReceived?.(/X-Bench-Tag: (\S+)/i.exec(head)?.[1]);
        callback(null, '2.0.0 OK bench');
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.server.address() as AddressInfo).port;
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}

/** utime+stime of a process in seconds (/proc/<pid>/stat fields 14 and 15). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const MESSAGE_BYTES = 100_000;

export async function benchDelivery({ quick }: { quick: boolean }): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-bench-up-'));
  const upstream = await startUpstream(dir);
  const total = quick ? 200 : 600;
  const upstreams = [
    {
      name: 'bench-upstream',
      host: '127.0.0.1',
      port: upstream.port,
      security: 'tls',
      user: UPSTREAM_USER,
      password: UPSTREAM_PASS,
      maxConnections: 10,
      tls: { ca: upstream.caFile, servername: 'localhost' },
    },
  ];
  const gateway = await startGatewayProcess({ upstreams, deviceUpstream: 'bench-upstream', delivery: { concurrency: 20 } });
  try {
    const rates: Record<number, number> = {};
    for (const concurrency of quick ? [10] : [1, 10, 50]) {
      const count = concurrency === 1 ? Math.min(total, 200) : total;
      const sentAt = new Map<string, number>();
      const latencies: number[] = [];
      let done = 0;
      let allDone!: () => void;
      const finished = new Promise<void>((resolve) => {
        allDone = resolve;
      });
      upstream.onReceived = (tag) => {
        const started = tag ? sentAt.get(tag) : undefined;
        if (started !== undefined) latencies.push(performance.now() - started);
        if (++done === count) allDone();
      };
      const cpuBefore = await cpuSeconds(gateway.child.pid!);
      const started = performance.now();
      await runConcurrent(count, concurrency, async (index) => {
        const tag = `c${concurrency}-${index}`;
        // The tag header marks the message; the clock starts when the final dot is written.
        await sendRawTagged(gateway.smtpPort, tag, sentAt);
      });
      await Promise.race([finished, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${done}/${count} delivered within 120 s`)), 120_000))]);
      const seconds = (performance.now() - started) / 1000;
      const cpu = (await cpuSeconds(gateway.child.pid!)) - cpuBefore;
      rates[concurrency] = count / seconds;
      console.log(`end-to-end: ${count} x 100 KB, ${concurrency} concurrent clients -> gateway -> TLS upstream`);
      console.log(`  delivered messages/s       ${(count / seconds).toFixed(1)}`);
      console.log(
        `  added latency p50 / p99    ${percentile(latencies, 50).toFixed(1)} ms / ${percentile(latencies, 99).toFixed(1)} ms  (end of DATA at gateway -> 250 at upstream)`,
      );
      console.log(`  gateway CPU per MB         ${((cpu * 1000) / ((count * MESSAGE_BYTES) / 1e6)).toFixed(1)} ms`);
    }

    // Baselines: the same messages straight to the same upstream with nodemailer. "per message" opens one
    // connection per message, as a printer does (the fair comparison); "pooled" reuses 10 connections.
    const ca = await readFile(upstream.caFile, 'utf8');
    const body = buildMessage('direct');
    upstream.onReceived = undefined;
    const baselines: Array<[string, Record<string, unknown>]> = [
      ['per message', {}],
      ['pooled', { pool: true, maxConnections: 10, maxRequeues: 0 }],
    ];
    for (const [label, extra] of baselines) {
      const direct = nodemailer.createTransport({
        host: '127.0.0.1',
        port: upstream.port,
        secure: true,
        auth: { user: UPSTREAM_USER, pass: UPSTREAM_PASS },
        tls: { ca, servername: 'localhost' },
        ...extra,
      });
      const directStarted = performance.now();
      await runConcurrent(total, 10, () => direct.sendMail({ envelope: { from: UPSTREAM_USER, to: ['dest@example.org'] }, raw: body }));
      const directRate = total / ((performance.now() - directStarted) / 1000);
      direct.close();
      console.log(`direct nodemailer (${label}): ${total} x 100 KB, 10 concurrent`);
      console.log(`  delivered messages/s       ${directRate.toFixed(1)}`);
      console.log(`  gateway / direct ratio     ${(rates[10] / directRate).toFixed(2)}`);
    }
  } finally {
    await gateway.stop();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function buildMessage(tag: string): Buffer {
  const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n';
  const head = `From: scanner@example.org\r\nTo: dest@example.org\r\nSubject: bench\r\nX-Bench-Tag: ${tag}\r\n\r\n`;
  return Buffer.from(head + line.repeat(Math.ceil(MESSAGE_BYTES / line.length)));
}

async function sendRawTagged(port: number, tag: string, sentAt: Map<string, number>): Promise<void> {
  await sendRaw(port, MESSAGE_BYTES, 'dest@example.org', { extraHeaders: `X-Bench-Tag: ${tag}\r\n`, onFinalDot: () => sentAt.set(tag, performance.now()) });
}
