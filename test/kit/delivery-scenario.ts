/**
 * A gateway whose one device sends through one real TLS+AUTH test upstream (trusting the test CA), with
 * fast retries; everything is stopped and removed after each test.
 */
import { afterEach } from 'vitest';
import { rm } from 'node:fs/promises';
import { makeTempDir, startTestGateway, type RawConfig, type TestGateway } from './gateway.js';
import { writeCaFile } from './certs.js';
import { TEST_DEVICE, TestUpstream, upstreamEntry, type TestUpstreamOptions } from './upstream.js';

export interface DeliveryScenario {
  g: TestGateway;
  up: TestUpstream;
  /** The config the gateway started with, so a test can reload a changed copy. */
  raw: RawConfig;
}

export function useDeliveryScenario() {
  let gw: TestGateway | undefined;
  let upstream: TestUpstream | undefined;
  let caDir: string | undefined;

  afterEach(async () => {
    upstream?.releaseHung(true);
    await gw?.stop();
    gw = undefined;
    await upstream?.close();
    upstream = undefined;
    if (caDir) await rm(caDir, { recursive: true, force: true });
    caDir = undefined;
  });

  return {
    /** Directory for CA files of extra upstreams (removed after the test). */
    get caDir(): string {
      if (!caDir) throw new Error('start() the scenario first');
      return caDir;
    },
    async start(options: TestUpstreamOptions = { mode: 'tls' }, upstreamExtra: Record<string, unknown> = {}, extra: RawConfig = {}): Promise<DeliveryScenario> {
      upstream = await TestUpstream.start(options);
      caDir = await makeTempDir('scanrelay-ca-');
      const raw: RawConfig = {
        devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
        upstreams: [upstreamEntry(upstream, await writeCaFile(caDir), upstreamExtra)],
        delivery: { retryBase: '200ms', retryMax: '2s' },
        ...extra,
      };
      gw = await startTestGateway(raw);
      return { g: gw, up: upstream, raw };
    },
  };
}
