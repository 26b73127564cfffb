import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { Queue } from '../../src/queue/index.js';
import { GatewayEventBus } from '../../src/shared/events.js';
import { join } from 'node:path';
import { makeTempDir, waitFor } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { startGatewayProcess, writeGatewayConfig, type GatewayProcess } from '../kit/gateway-process.js';
import { TEST_DEVICE, TestUpstream, bodyOf, sendToGateway, upstreamEntry } from '../kit/upstream.js';

describe('crash safety and shutdown (the gateway as a child process)', () => {
  let dir: string | undefined;
  let upstream: TestUpstream | undefined;
  const processes: GatewayProcess[] = [];

  afterEach(async () => {
    for (const p of processes.splice(0)) await p.kill();
    await upstream?.close();
    upstream = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function setup(): Promise<{ file: string; dataDir: string; up: TestUpstream }> {
    dir = await makeTempDir('scanrelay-crash-');
    upstream = await TestUpstream.start({ mode: 'tls' });
    const dataDir = join(dir, 'data');
    const file = await writeGatewayConfig(dir, {
      dataDir,
      log: { level: 'info' },
      smtp: { host: '127.0.0.1', port: 0, closeTimeout: '1s' },
      admin: { enabled: false },
      devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
      upstreams: [upstreamEntry(upstream, await writeCaFile(dir))],
      delivery: { retryBase: '200ms', retryMax: '2s', shutdownTimeout: '10s' },
    });
    return { file, dataDir, up: upstream };
  }

  async function start(file: string): Promise<GatewayProcess> {
    const p = await startGatewayProcess(file);
    processes.push(p);
    return p;
  }

  /** The message as the store database holds it, read through a queue opened once the gateway has exited. */
  const record = async (dataDir: string, id: string) => {
    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    try {
      return queue.require(id);
    } finally {
      await queue.close();
    }
  };

  it('kill -9 while the upstream holds back its reply to DATA: after a restart the message is delivered, nothing lost', async () => {
    const { file, dataDir, up } = await setup();
    up.hangInData();
    const first = await start(file);
    const raw = 'From: printer@example.org\r\nTo: alice@example.org\r\nSubject: crash\r\n\r\nscan bytes\r\n';
    const id = await sendToGateway(first.smtpPort, { to: 'alice@example.org', raw });
    await waitFor(() => up.hungCount === 1, { what: 'the upstream holding the DATA reply' });
    await first.kill();
    expect(up.received).toHaveLength(0);
    expect((await record(dataDir, id)).state).toBe('queued');

    up.hangInData(false);
    up.releaseHung(false); // the killed gateway's transfer never gets its 250
    const second = await start(file);
    await second.waitForLog((e) => e.msg === 'delivery.delivered' && e.queueId === id);
    expect(up.received).toHaveLength(1);
    expect(bodyOf(up.received[0].raw).toString()).toBe('scan bytes\r\n');
    expect(await second.stop()).toBe(0);
    expect(await record(dataDir, id)).toMatchObject({ state: 'delivered', upstreamResponse: expect.stringMatching(/^250 /) });
  });

  it('SIGTERM lets a delivery in flight finish, then exits 0', async () => {
    const { file, dataDir, up } = await setup();
    up.hangInData();
    const gateway = await start(file);
    const id = await sendToGateway(gateway.smtpPort, { to: 'bob@example.org' });
    await waitFor(() => up.hungCount === 1, { what: 'delivery in flight' });
    gateway.child.kill('SIGTERM');
    await gateway.waitForLog((e) => e.msg === 'delivery.draining');
    up.releaseHung(true);
    expect(await gateway.exited).toBe(0);
    expect(up.received).toHaveLength(1);
    expect((await record(dataDir, id)).state).toBe('delivered');
  });
});
