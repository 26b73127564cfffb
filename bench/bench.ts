/**
 * npm run bench: the gateway against Postfix, side by side in the same run, on the same load, through the
 * same TLS+AUTH upstream; prints figures, ratios and the targets next to them, asserts nothing.
 *
 * Each side runs as one instance in its own cgroup, as a service would: the bench first measures its first
 * 300 messages after the start (the cold figures), warms it up to 3,000 messages, then runs every load in
 * interleaved rounds (gateway, Postfix, then Postfix, gateway, ...), each after a short warm-up of its own
 * size. Figures (see measure.ts for how each is taken):
 *   msg/s          end to end: first connection -> the upstream has accepted every message of the round
 *   accept p50/p99 final dot -> 250 at the side, as the printer waits for it
 *   CPU/msg        the side's CPU over the round (everything it forked, also what exited) / messages
 *   peak USS       private memory summed over the side's processes, sampled during the round
 *   fsyncs/msg     a separate round under strace -c -f (start-up and shutdown included)
 * Without Postfix (or without root) it says why and runs the gateway alone.
 *
 *   BENCH_QUICK=1                   smaller counts, one round: a smoke check
 *   BENCH_ROUNDS=N                  rounds per load (default 3 for 100 KB, 2 for 5 MB, 1 for 25 MB)
 *   BENCH_WARMUP=N                  100 KB messages before the measured loads (default 3000; 300 quick)
 *   BENCH_NODE=/path/to/node        run the gateway under another Node binary
 *   BENCH_NODE_ARGS="..."           flags for the gateway's node (default: production's, bench/production.ts;
 *                                   empty for stock V8)
 *   BENCH_NO_POSTFIX=1              gateway only
 *   BENCH_LOADS=small,medium        only these loads (small = 100 KB, paced = 100 KB offered at 40 msg/s,
 *                                   medium = 5 MB, large = all at once)
 *   BENCH_NO_CGROUP=1               count CPU from /proc/PID/stat even where a cgroup could be made
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, runConcurrent, sendGenerated } from '../test/kit/smtp-load.js';
import { fsyncCalls, processTree, SideCgroup, sampleUssPeak, straceWrapper, treeCpuSeconds } from './measure.js';
import { postfixAvailable } from './postfix.js';
import { gatewayEnv, PRODUCTION_ENV, PRODUCTION_NODE_ARGS } from './production.js';
import { type BenchUpstream, gatewaySide, postfixSide, type Side } from './sides.js';
import type { UpstreamReport } from './upstream-process.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ROOT = new URL('..', import.meta.url).pathname;
const MIB = 1024 * 1024;

interface Load {
  key: string;
  title: string;
  count: number;
  bytes: number;
  clients: number;
  warmup: number;
  rounds: number;
  /** Offered load in messages per second over all clients (message i starts at i / rate): latency below saturation. */
  pacedRate?: number;
}

const rounds = (full: number) => (QUICK ? 1 : Number(process.env.BENCH_ROUNDS ?? full));
const LOADS: Load[] = [
  { key: 'small', title: `${QUICK ? 100 : 300} x 100 KB, 10 clients`, count: QUICK ? 100 : 300, bytes: 100_000, clients: 10, warmup: 20, rounds: rounds(3) },
  { key: 'medium', title: `${QUICK ? 10 : 50} x 5 MB, 10 clients`, count: QUICK ? 10 : 50, bytes: 5_000_000, clients: 10, warmup: 2, rounds: rounds(2) },
  {
    key: 'paced',
    title: `${QUICK ? 100 : 300} x 100 KB, 10 clients, offered at 40 msg/s`,
    count: QUICK ? 100 : 300,
    bytes: 100_000,
    clients: 10,
    warmup: 20,
    rounds: 1,
    pacedRate: 40,
  },
  {
    key: 'large',
    title: `20 x ${QUICK ? 5 : 25} MB, all at once`,
    count: 20,
    bytes: QUICK ? 5_000_000 : 25_000_000,
    clients: 20,
    warmup: 1,
    rounds: QUICK ? 1 : Number(process.env.BENCH_ROUNDS ?? 1),
  },
];
const FSYNC_COUNT = QUICK ? 100 : 300;
/**
 * The first scans after a start, on new instances (no warm-up at all). V8 compiles the gateway's hot paths
 * over its first ~2,500 messages (its compiler threads stay busy that long), and until then each message
 * costs about 1.5x the CPU of the steady state; Postfix, in C, has no such phase.
 */
const COLD: Load = {
  key: 'cold',
  title: `A new process: its first ${QUICK ? 100 : 300} x 100 KB, 10 clients`,
  count: QUICK ? 100 : 300,
  bytes: 100_000,
  clients: 10,
  warmup: 0,
  rounds: 1,
};
/** 100 KB messages each instance relays before the measured loads (the cold round included). */
const WARMUP_MESSAGES = Number(process.env.BENCH_WARMUP ?? (QUICK ? 300 : 3000));

interface RoundResult {
  rate: number;
  latencies: number[];
  cpuPerMsgMs: number;
  ussPeak: number;
  duplicates: number;
}

// ---- cleanup: every process, cgroup and temp dir, also on failure and Ctrl-C ----
const cleanups: Array<() => Promise<void>> = [];
/** Registers a cleanup; the returned function drops it once the caller has cleaned up itself. */
function track(cleanup: () => Promise<void>): () => void {
  cleanups.push(cleanup);
  return () => {
    const index = cleanups.indexOf(cleanup);
    if (index >= 0) cleanups.splice(index, 1);
  };
}
let cleaning: Promise<void> | undefined;
/** Runs every registered cleanup once, newest first; a second caller waits for the same run. */
function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((err) => console.error('cleanup:', err));
  })();
  return cleaning;
}
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // `on`, not `once`: tsx's own handler exits at once when it sees no other listener for the signal.
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: cleaning up`);
    void cleanupAll().then(() => process.exit(130));
  });
}

// ---- the upstream, in its own process ----
interface UpstreamHandle extends BenchUpstream {
  /** Resolves when every tag `${prefix}${0..count-1}` was accepted; counts repeats. */
  expect(prefix: string, count: number, timeoutMs: number): { done: Promise<{ duplicates: number }> };
}

async function startUpstream(dir: string): Promise<UpstreamHandle> {
  const child: ChildProcess = fork(join(ROOT, 'bench/upstream-process.ts'), [dir], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  track(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
  const listeners = new Set<(tag: string) => void>();
  const ready = await new Promise<Extract<UpstreamReport, { type: 'ready' }>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`upstream process exited with ${code}`)));
    child.on('message', (report: UpstreamReport) => {
      if (report.type === 'ready') resolve(report);
      else if (report.tag) for (const listener of listeners) listener(report.tag);
    });
  });
  return {
    ...ready,
    expect(prefix, count, timeoutMs) {
      const seen = new Set<string>();
      let duplicates = 0;
      let listener!: (tag: string) => void;
      const done = new Promise<{ duplicates: number }>((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`only ${seen.size} of ${count} messages reached the upstream within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        listener = (tag) => {
          if (!tag.startsWith(prefix)) return;
          if (seen.has(tag)) duplicates++;
          else seen.add(tag);
          if (seen.size === count) {
            clearTimeout(timer);
            listeners.delete(listener);
            resolve({ duplicates });
          }
        };
        listeners.add(listener);
      });
      return { done };
    },
  };
}

// ---- one round of one load on one side ----
let roundSerial = 0;

const makeCgroup = (name: string) =>
  process.env.BENCH_NO_CGROUP === '1' ? Promise.resolve(undefined) : SideCgroup.create(`scanrelay-bench-${process.pid}-${name}`);

/**
 * Starts a side in a fresh cgroup (when cgroup v2 is writable), with `wrapper` inside it. The cgroup is
 * tracked before the side starts, so an interrupted start is killed with it.
 */
async function startInCgroup(side: Side, wrapper: string[] = []) {
  if (stopping) throw new Error('stopping');
  const cgroup = await makeCgroup(`${side.name}-${++roundSerial}`);
  const untrackCgroup = cgroup ? track(() => cgroup.remove()) : () => undefined;
  const running = await side.start([...(cgroup?.wrap() ?? []), ...wrapper]).catch(async (err) => {
    await cgroup?.remove();
    untrackCgroup();
    throw err;
  });
  const untrackSide = track(() => running.stop());
  return {
    cgroup,
    running,
    async stop() {
      await running.stop();
      untrackSide();
      await cgroup?.remove();
      untrackCgroup();
    },
  };
}

type Instance = Awaited<ReturnType<typeof startInCgroup>> & { side: Side };

async function startInstance(side: Side): Promise<Instance> {
  return { side, ...(await startInCgroup(side)) };
}

/**
 * One round of `load` on a running instance: the load's own short warm-up (buffers of its size), then the
 * measured messages. CPU and USS are taken over the measured messages only.
 */
async function runRound(instance: Instance, load: Load, upstream: UpstreamHandle): Promise<RoundResult> {
  const { cgroup, running, side } = instance;
  const timeoutMs = Math.max(60_000, ((load.count + load.warmup) * load.bytes) / 2_000); // >= 2 MB/s
  let pacingFrom: number | undefined;
  const send = (prefix: string, count: number, concurrency: number, latencies?: number[]) =>
    runConcurrent(count, concurrency, async (index) => {
      // Pacing, not a wait for an outcome: message i of a paced load starts i / rate seconds in.
      if (load.pacedRate && pacingFrom !== undefined) await sleep(Math.max(0, pacingFrom + (index * 1000) / load.pacedRate - performance.now()));
      const result = await sendGenerated(running.port, {
        bytes: load.bytes,
        from: 'scanner@example.org',
        to: ['dest@example.org'],
        headers: `X-Bench-Tag: ${prefix}${index}\r\n`,
        subject: 'Scan from bench',
        auth: running.auth,
        timeoutMs,
      });
      latencies?.push(result.acceptMs);
    });

  const serial = ++roundSerial;
  if (load.warmup > 0) {
    const warmPrefix = `warm.${serial}.`;
    const warm = upstream.expect(warmPrefix, load.warmup, timeoutMs);
    await send(warmPrefix, load.warmup, Math.min(load.warmup, load.clients));
    await warm.done;
  }

  const cpu = () => (cgroup ? cgroup.cpuSeconds() : treeCpuSeconds(running.rootPid));
  const pids = () => (cgroup ? cgroup.pids() : processTree(running.rootPid));
  const prefix = `${side.name}.${load.key}.${serial}.`;
  const delivered = upstream.expect(prefix, load.count, timeoutMs);
  const latencies: number[] = [];
  const sampler = sampleUssPeak(pids);
  const cpuBefore = await cpu();
  const started = performance.now();
  pacingFrom = started;
  await send(prefix, load.count, load.clients, latencies);
  const { duplicates } = await delivered.done;
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = (await cpu()) - cpuBefore;
  const ussPeak = await sampler.stop();
  return { rate: load.count / seconds, latencies, cpuPerMsgMs: (cpuSeconds * 1000) / load.count, ussPeak, duplicates };
}

/** fsyncs per message over a side's whole life under strace -c -f. */
async function fsyncRound(side: Side, upstream: UpstreamHandle, dir: string): Promise<number> {
  const file = join(dir, `strace-${side.name}.txt`);
  const { running, stop } = await startInCgroup(side, straceWrapper(file));
  try {
    const prefix = `fsync.${side.name}.`;
    const delivered = upstream.expect(prefix, FSYNC_COUNT, 120_000);
    await runConcurrent(FSYNC_COUNT, 10, (index) =>
      sendGenerated(running.port, {
        bytes: 100_000,
        from: 'scanner@example.org',
        to: ['dest@example.org'],
        headers: `X-Bench-Tag: ${prefix}${index}\r\n`,
        auth: running.auth,
      }),
    );
    await delivered.done;
  } finally {
    await stop();
  }
  return (await fsyncCalls(file)) / FSYNC_COUNT;
}

// ---- report ----
const median = (values: number[]) => percentile(values, 50);
const fmt = (value: number | undefined, digits = 1) => (value === undefined ? '-' : value.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);

function row(label: string, gateway: string, postfix: string, ratioText: string, target: string): void {
  console.log(`  ${label.padEnd(30)} ${gateway.padStart(13)} ${postfix.padStart(13)} ${ratioText.padStart(7)}   ${target}`);
}

interface Summary {
  rate: number;
  p50: number;
  p99: number;
  cpu: number;
  uss: number;
  duplicates: number;
}

function summarize(results: RoundResult[]): Summary | undefined {
  if (results.length === 0) return undefined;
  const latencies = results.flatMap((r) => r.latencies);
  return {
    rate: median(results.map((r) => r.rate)),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpu: median(results.map((r) => r.cpuPerMsgMs)),
    uss: Math.max(...results.map((r) => r.ussPeak)) / MIB,
    duplicates: results.reduce((sum, r) => sum + r.duplicates, 0),
  };
}

const TARGETS: Record<string, { rate?: string; uss?: string }> = {
  cold: {},
  small: { rate: 'gateway >= 1.2x Postfix', uss: 'gateway <= 100 MiB' },
  paced: { rate: 'offered: 40 msg/s' },
  medium: { rate: 'gateway >= 1.0x Postfix' },
  large: { uss: 'gateway <= 130 MiB' },
};

function report(load: Load, gateway: Summary | undefined, postfix: Summary | undefined): void {
  const rounds = `${load.rounds} round${load.rounds === 1 ? '' : 's'}`;
  console.log(`\n${load.title}, end to end through the TLS+AUTH upstream (${rounds}, median; latency over all rounds)`);
  row('', 'gateway', 'postfix', 'ratio', 'target');
  const target = TARGETS[load.key];
  row('delivered msg/s', fmt(gateway?.rate), fmt(postfix?.rate), ratio(gateway?.rate, postfix?.rate), target.rate ?? '');
  row('accept p50 ms (dot -> 250)', fmt(gateway?.p50), fmt(postfix?.p50), ratio(gateway?.p50, postfix?.p50), '');
  row(
    'accept p99 ms (dot -> 250)',
    fmt(gateway?.p99),
    fmt(postfix?.p99),
    ratio(gateway?.p99, postfix?.p99),
    load.key === 'small' || load.key === 'paced' ? 'no worse than 27-37 ms' : '',
  );
  row(
    'CPU ms per delivered message',
    fmt(gateway?.cpu, 2),
    fmt(postfix?.cpu, 2),
    ratio(gateway?.cpu, postfix?.cpu),
    load.key === 'small' ? 'gateway <= 1.2x Postfix' : '',
  );
  row('peak USS MiB (all processes)', fmt(gateway?.uss, 0), fmt(postfix?.uss, 0), ratio(gateway?.uss, postfix?.uss), target.uss ?? '');
  const duplicates = (gateway?.duplicates ?? 0) + (postfix?.duplicates ?? 0);
  if (duplicates > 0) console.log(`  duplicates at the upstream: gateway ${gateway?.duplicates ?? 0}, postfix ${postfix?.duplicates ?? 0}`);
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function versionOf(binary: string): string {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return `(cannot run ${binary})`;
  }
}

async function main(): Promise<void> {
  // Default: the V8 flags production uses (Dockerfile, systemd unit, npm start); BENCH_NODE_ARGS= runs stock V8.
  const node = {
    binary: process.env.BENCH_NODE ?? process.execPath,
    args: process.env.BENCH_NODE_ARGS === undefined ? PRODUCTION_NODE_ARGS : process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean),
  };
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-bench-'));
  track(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755); // Postfix's daemons (user postfix) work below it
  const upstream = await startUpstream(dir);
  const postfix = process.env.BENCH_NO_POSTFIX === '1' ? { reason: 'BENCH_NO_POSTFIX=1' } : await postfixAvailable();
  const probe = await makeCgroup('probe');
  await probe?.remove();

  console.log(
    `scanrelay bench${QUICK ? ' (quick)' : ''}: ${cpus().length} CPUs, load average ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ')}`,
  );
  const environment = gatewayEnv();
  const env = Object.keys(PRODUCTION_ENV).map((key) => `${key}=${environment[key]}`);
  console.log(
    `  gateway: node ${versionOf(node.binary)} (${node.binary})${node.args.length ? ` ${node.args.join(' ')}` : ''} ${env.join(' ')}, compiled dist/`,
  );
  console.log(
    `  anchor:  ${'version' in postfix ? `Postfix ${postfix.version}, own instance (postfix -c DIR), same upstream` : `none: ${postfix.reason}; gateway alone`}`,
  );
  console.log(`  upstream: implicit TLS + AUTH on 127.0.0.1:${upstream.port}, own process (bench node ${process.version})`);
  console.log(`  CPU counted with ${probe ? 'a cgroup v2 per side (cpu.stat)' : "/proc/PID/stat of each side's process tree (utime+stime+cutime+cstime)"}`);

  const sides: Side[] = [gatewaySide(upstream, node, dir)];
  if ('version' in postfix) sides.push(postfixSide(upstream, dir));

  const instances: Instance[] = [];
  try {
    for (const side of sides) instances.push(await startInstance(side));
    // A new process first: what the first scans after a start cost, before V8 has compiled the hot paths.
    const cold: Record<string, RoundResult[]> = { gateway: [], postfix: [] };
    for (const instance of instances) cold[instance.side.name].push(await runRound(instance, COLD, upstream));
    report(COLD, summarize(cold.gateway), summarize(cold.postfix));
    const rest = WARMUP_MESSAGES - COLD.count;
    if (rest > 0) {
      for (const instance of instances) await runRound(instance, { ...COLD, key: 'warm-up', count: rest }, upstream);
    }
    console.log(`\nEvery load below runs on the same instances, after ${WARMUP_MESSAGES} x 100 KB of warm-up (the service's steady state)`);

    const only = process.env.BENCH_LOADS?.split(',').filter(Boolean);
    for (const load of LOADS.filter((l) => !only || only.includes(l.key))) {
      const results: Record<string, RoundResult[]> = { gateway: [], postfix: [] };
      for (let round = 0; round < load.rounds; round++) {
        const order = round % 2 === 0 ? instances : [...instances].reverse();
        for (const instance of order) results[instance.side.name].push(await runRound(instance, load, upstream));
      }
      report(load, summarize(results.gateway), summarize(results.postfix));
      console.log(`  load average now ${loadAverage()}`);
    }
  } finally {
    for (const instance of instances) await instance.stop();
  }

  let straceMissing = false;
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
  } catch {
    straceMissing = true;
  }
  console.log(`\nfsyncs per message (fsync + fdatasync + sync_file_range), ${FSYNC_COUNT} x 100 KB at 10 clients, strace -c -f`);
  if (straceMissing) console.log('  strace is not installed (apt-get install -y strace): skipped');
  else {
    const fsyncs: Record<string, number> = {};
    for (const side of sides) fsyncs[side.name] = await fsyncRound(side, upstream, dir);
    row('', 'gateway', 'postfix', 'ratio', 'target');
    row('fsyncs per message', fmt(fsyncs.gateway, 2), fmt(fsyncs.postfix, 2), ratio(fsyncs.gateway, fsyncs.postfix), 'gateway <= 2');
  }
}

main()
  .catch((err) => {
    if (!stopping) console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanupAll();
    // Sockets of the load may linger in TIME_WAIT handling; nothing else should keep the process alive.
    process.exit(process.exitCode ?? 0);
  });
