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
