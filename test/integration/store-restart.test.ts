/**
 * What the store keeps across a restart of the real gateway on the same data directory: device status
 * and counters, holds released at start-up once their cause is gone, and the upstream's count of the day.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { access, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, startTestGateway, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { TEST_DEVICE, TestUpstream, sendToGateway, upstreamEntry } from '../kit/upstream.js';
import { damageLeafPage, leaveUncleanStop } from '../kit/store-damage.js';
import { seedStore } from '../kit/store-seed.js';
import { StoreCorruptError, type GatewayOptions } from '../../src/app.js';

describe('the gateway restarted on the same data directory', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup() {
    const dataDir = await makeTempDir();
    const caDir = await makeTempDir('scanrelay-ca-');
    const up = await TestUpstream.start({ mode: 'tls' });
    cleanups.push(async () => {
      await up.close();
      await rm(caDir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    });
    const upstreams = [upstreamEntry(up, await writeCaFile(caDir))];
    let current: TestGateway | undefined;
    cleanups.push(async () => current?.stop());
    const start = async (raw: RawConfig, options: GatewayOptions = {}) => {
      await current?.stop();
      current = await startTestGateway({ upstreams, delivery: { retryBase: '200ms', retryMax: '2s' }, ...raw }, { ...options, dataDir });
      return current;
    };
    /** A gateway that holds one scan (its device has no upstream), stopped cleanly: the scan and where it lies. */
    const heldScanThenStopped = async (subject?: string) => {
      const first = await start({ devices: [TEST_DEVICE] });
      const id = await sendToGateway(first.smtpPort, { to: 'alice@example.org', subject });
      await waitFor(() => first.gateway.queue.get(id)?.state === 'held', { what: 'held' });
      await first.stop();
      return { id, dataDir: first.dataDir };
    };
    return { up, start, heldScanThenStopped };
  }

  it('releases a no-upstream hold at start-up once the device has an upstream', async () => {
    const { up, start } = await setup();
    const first = await start({ devices: [TEST_DEVICE] });
    const id = await sendToGateway(first.smtpPort, { to: 'alice@example.org', subject: 'held over a restart' });
    await waitFor(() => first.gateway.queue.get(id)?.state === 'held', { what: 'held for lack of an upstream' });
    expect(first.gateway.queue.require(id).held).toMatchObject({ code: 'no-upstream' });

    const second = await start({ devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }] });
    await waitFor(() => second.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered after the restart' });
    expect(up.received).toHaveLength(1);
  });

  it('keeps device status and counters', async () => {
    const { up, start } = await setup();
    const first = await start({ devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }] });
    const id = await sendToGateway(first.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => first.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered' });
    await waitFor(() => first.gateway.deviceStatus.get(TEST_DEVICE.name).counts.delivered === 1, { what: 'counted' });
    const before = first.gateway.deviceStatus.get(TEST_DEVICE.name);
    expect(before).toMatchObject({ state: 'Operating', counts: { received: 1, delivered: 1, failed: 0 } });

    const second = await start({ devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }] });
    const after = second.gateway.deviceStatus.get(TEST_DEVICE.name);
    expect(after).toMatchObject({ state: 'Operating', counts: { received: 1, delivered: 1, failed: 0 }, lastDeliveredAt: before.lastDeliveredAt });
    expect(up.received).toHaveLength(1);
    // the upstream's count of the day comes from the kept attempts
    expect(second.gateway.delivery.upstreamStatus()[0]).toMatchObject({ name: 'gmail-test', sentToday: 1 });
  });

  it('refuses a store database that fails its check, keeps every body and says how to recover', async () => {
    const { heldScanThenStopped } = await setup();
    const { id, dataDir } = await heldScanThenStopped('kept through corruption');
    const file = await open(join(dataDir, 'store.db'), 'r+');
    await file.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
    await file.close();

    await expect(startTestGateway({ devices: [TEST_DEVICE] }, { dataDir })).rejects.toThrow(
      /No message body was touched\. To recover: .*\.recover.*quarantines every body/s,
    );
    expect(await readdir(join(dataDir, 'queue'))).toContain(`${id}.eml`);
  });

  it('after an unclean stop checks the store in the background and, finding it damaged, stops with the steps to recover', async () => {
    const { start, heldScanThenStopped } = await setup();
    const { id, dataDir } = await heldScanThenStopped('kept through a bad disk');
    // A page of the subject index, which start-up does not read: only the check can find it.
    const path = join(dataDir, 'store.db');
    await damageLeafPage(path, 'message_subjects_data');
    await leaveUncleanStop(path);

    const stopped: StoreCorruptError[] = [];
    const second = await start({ devices: [TEST_DEVICE] }, { onStoreCorrupt: (err) => stopped.push(err) });
    // Started: SMTP listens and the open rows are read; the check answers after that.
    expect(second.gateway.queue.get(id)?.state).toBe('held');
    const outcome = await second.gateway.storeChecked();
    expect(outcome).toMatchObject({ kind: 'corrupt' });
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toBeInstanceOf(StoreCorruptError);
    expect(stopped[0].message).toMatch(/failed its integrity check: .*No message body was touched\. To recover: .*\.recover/s);
    expect(second.logs.some((line) => line.includes('store.corrupt'))).toBe(true);
    await expect(sendToGateway(second.smtpPort, { to: 'alice@example.org' })).rejects.toThrow();
    await access(join(dataDir, 'store.db.check-failed'));

    // Every later start checks first, and refuses, until the database is sound again.
    await expect(startTestGateway({ devices: [TEST_DEVICE] }, { dataDir })).rejects.toThrow(/failed its integrity check/);
    expect(await readdir(join(dataDir, 'queue'))).toContain(`${id}.eml`);
    for (const file of ['store.db', 'store.db-wal', 'store.db-shm']) await rename(join(dataDir, file), join(dataDir, `${file}.damaged`)).catch(() => {});
    const third = await start({ devices: [TEST_DEVICE] });
    await waitFor(() => third.gateway.queue.get(id)?.state === 'quarantined', { what: 'the body quarantined for a retry' });
    await expect(access(join(dataDir, 'store.db.check-failed'))).rejects.toThrow();
    expect(third.gateway.storeChecked()).toBeUndefined();
  });

  it('after an unclean stop with a sound store the check passes and the gateway carries on', async () => {
    const { up, start, heldScanThenStopped } = await setup();
    const { id, dataDir } = await heldScanThenStopped();
    await leaveUncleanStop(join(dataDir, 'store.db'));

    const second = await start({ devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }] });
    expect(await second.gateway.storeChecked()).toMatchObject({ kind: 'ok' });
    await waitFor(() => second.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered after the check' });
    expect(up.received).toHaveLength(1);
  });

  it('a damaged page met while running raises the alarm, keeps taking scans, and makes the next start check first', async () => {
    const dataDir = await makeTempDir();
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    // A month of old log rows: start-up reads none of their pages, so the damage stays unseen until asked for.
    await seedStore(dataDir, 3_000, 0);
    const running = await startTestGateway({ devices: [TEST_DEVICE] }, { dataDir });
    cleanups.push(() => running.stop());
    // The pages of the oldest rows (about two 1.6 KB rows each).
    await damageLeafPage(join(dataDir, 'store.db'), 'messages', 10);

    const admin = running.gateway.admin!;
    const headers = { authorization: 'Bearer test-admin-token-0123456789' };
    const oldest = await admin.inject({ method: 'GET', url: '/api/messages?state=delivered&until=29d&limit=200', headers });
    expect(oldest.statusCode).toBe(503);
    expect(oldest.json()).toMatchObject({ code: 'SCANRELAY_STORE_DAMAGED', message: expect.stringMatching(/scans are still accepted.*store\.damaged/) });
    const metrics = await admin.inject({ method: 'GET', url: '/metrics', headers });
    expect(metrics.body).toMatch(/^scanrelay_store_damaged 1$/m);
    await waitFor(() => running.logs.some((line) => line.includes('store.damaged')), { what: 'the store.damaged log line' });
    await access(join(dataDir, 'store.db.check-failed'));

    // Mail still goes into the queue.
    const id = await sendToGateway(running.smtpPort, { to: 'alice@example.org', subject: 'sent while the log is damaged' });
    expect(running.gateway.queue.get(id)?.state).toBe('held');
    await running.stop();
    await expect(startTestGateway({ devices: [TEST_DEVICE] }, { dataDir })).rejects.toThrow(/failed its integrity check/);
  });
});
