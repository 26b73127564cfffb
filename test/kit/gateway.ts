/**
 * Starts a real gateway in-process on 127.0.0.1 with ephemeral ports and a temp data directory.
 * `raw` is the YAML-shaped config (merged over safe test defaults) so tests exercise the real loader.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfig, type GatewayConfig } from '../../src/config/index.js';
import { createGateway, type Gateway, type GatewayAddresses, type GatewayOptions } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';

export interface TestGateway {
  gateway: Gateway;
  config: GatewayConfig;
  addresses: GatewayAddresses;
  smtpPort: number;
  dataDir: string;
  /** Every log line written so far (JSON text), for secret-leak assertions. */
  logs: string[];
  stop(): Promise<void>;
}

export type RawConfig = Record<string, unknown>;

export async function makeTempDir(prefix = 'scanrelay-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A config object with test defaults: loopback, port 0, admin on port 0, fast retries. */
export function testRawConfig(dataDir: string, raw: RawConfig = {}): RawConfig {
  const base: RawConfig = {
    dataDir,
    log: { level: 'debug' },
    // Failed logins are answered after smtp.authFailureDelay (1 s by default); tests that time it set their own.
    smtp: { host: '127.0.0.1', port: 0, socketTimeout: '30s', closeTimeout: '2s', authFailureDelay: '50ms' },
    admin: { host: '127.0.0.1', port: 0, tokens: ['test-admin-token-0123456789'] },
    delivery: { retryBase: '1s', retryMax: '5s', shutdownTimeout: '5s' },
    devices: [],
    upstreams: [],
  };
  return deepMerge(base, raw);
}

export function buildTestConfig(dataDir: string, raw: RawConfig = {}, env: NodeJS.ProcessEnv = {}): GatewayConfig {
  return parseConfig(stringify(testRawConfig(dataDir, raw)), join(dataDir, 'gateway.yaml'), env);
}

/** Captures pino output in memory (and keeps the redaction config of production). */
export function memoryLogger(logs: string[], level = 'debug') {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(line);
      callback();
    },
  });
  return createLogger(level, sink);
}

export async function startTestGateway(raw: RawConfig = {}, options: GatewayOptions & { dataDir?: string; keepDataDir?: boolean } = {}): Promise<TestGateway> {
  const dataDir = options.dataDir ?? (await makeTempDir());
  const config = buildTestConfig(dataDir, raw);
  const logs: string[] = [];
  const gateway = await createGateway(config, { defaultMetrics: false, logger: memoryLogger(logs), ...options });
  const addresses = await gateway.start();
  return {
    gateway,
    config,
    addresses,
    smtpPort: addresses.smtp.port,
    dataDir,
    logs,
    async stop() {
      await gateway.stop();
      if (!options.keepDataDir && !options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function deepMerge(base: RawConfig, extra: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is RawConfig {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Resolves with why the delivery worker left message `id` unclaimed ('busy': its upstream's connections
 * are all in use; 'waiting': paused, pacing or cooling down), from the worker's own `delivery.decided`
 * event, after asking it for a pass. Await this, never a sleep, before asserting that a message was NOT
 * attempted. Rejects if a pass starts the message instead, or after `timeoutMs`.
 */
export function deliveryDecided(g: TestGateway, id: string, timeoutMs = 10_000): Promise<'busy' | 'waiting'> {
  const events = g.gateway.events;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no delivery pass decided about ${id} within ${timeoutMs} ms`)), timeoutMs);
    const onDecided = ({ started, left }: { started: string[]; left: Array<{ id: string; why: 'busy' | 'waiting' }> }) => {
      if (started.includes(id)) return finish(new Error(`the delivery worker started ${id}`));
      const entry = left.find((l) => l.id === id);
      if (entry) finish(undefined, entry.why);
    };
    function finish(err?: Error, why?: 'busy' | 'waiting') {
      clearTimeout(timer);
      events.off('delivery.decided', onDecided);
      if (err) reject(err);
      else resolve(why as 'busy' | 'waiting');
    }
    events.on('delivery.decided', onDecided);
    g.gateway.delivery.kick();
  });
}

/** Polls `check` until it returns a truthy value or the time runs out (bounded, no fixed sleeps). */
export async function waitFor<T>(check: () => T | Promise<T>, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
