import { describe, expect, it } from 'vitest';
import { access } from 'node:fs/promises';
import { buildTestConfig, deliveryDecided, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { useDeliveryScenario } from '../kit/delivery-scenario.js';
import { TEST_DEVICE, TestUpstream, headersOf, sendToGateway, upstreamEntry } from '../kit/upstream.js';

describe('delivery worker: limits, admin checks, retention', () => {
  const deliveryScenario = useDeliveryScenario();
  const scenario = (upstreamExtra: Record<string, unknown> = {}, extra: RawConfig = {}) => deliveryScenario.start({ mode: 'tls' }, upstreamExtra, extra);

  const stateOf = (g: TestGateway, id: string) => g.gateway.queue.get(id)?.state;

  it('keeps to maxConnections: a second message waits while the first is in flight', async () => {
    const { g, up } = await scenario({ maxConnections: 1 });
    up.hangInData();
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => up.hungCount === 1, { what: 'first in flight' });
    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    expect(await deliveryDecided(g, second)).toBe('busy');
    expect(up.dataStarted).toBe(1);
    expect(stateOf(g, first)).toBe('delivering');
    expect(stateOf(g, second)).toBe('queued');
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ inFlight: 1, waiting: 2 });
    up.hangInData(false);
    up.releaseHung(true);
    await waitFor(() => stateOf(g, first) === 'delivered' && stateOf(g, second) === 'delivered', { what: 'both delivered' });
  });

  it('paces an upstream (ratePerMinute): the second message of the minute waits, unattempted', async () => {
    const { g, up } = await scenario({ ratePerMinute: 1 });
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'delivered', { what: 'first delivered' });
    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    expect(await deliveryDecided(g, second)).toBe('waiting');
    expect(g.gateway.queue.require(second)).toMatchObject({ state: 'queued', attempts: 0 });
    expect(up.received).toHaveLength(1);
  });

  it('verify: reports the endpoint on success, and the refusal (auth-failed) for a wrong password', async () => {
    const { g, up } = await scenario();
    const ok = await g.gateway.delivery.verify('gmail-test');
    expect(ok).toMatchObject({ ok: true, port: up.port, security: 'tls' });
    up.setPassword('changed-by-google');
    const refused = await g.gateway.delivery.verify('gmail-test');
    expect(refused).toMatchObject({ ok: false, error: { code: 'EAUTH', responseCode: 535 } });
    expect(refused.error?.message).toMatch(/535 5\.7\.8/);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('auth-failed');
    await expect(g.gateway.delivery.verify('nope')).rejects.toMatchObject({ code: 'SCANRELAY_NOT_FOUND' });
  });

  it('sendTest: a small message through the upstream to the given address', async () => {
    const { g, up } = await scenario();
    const result = await g.gateway.delivery.sendTest('gmail-test', 'admin@example.org');
    expect(result).toMatchObject({ ok: true, security: 'tls', response: expect.stringMatching(/^250 /) });
    expect(up.received[0]).toMatchObject({ mailFrom: up.user, rcptTo: ['admin@example.org'] });
    expect(headersOf(up.received[0].raw)).toContain('Subject: scanrelay upstream test');
  });

  it('retryUpstream: releases messages held for refused credentials once the upstream accepts them again', async () => {
    const { g, up } = await scenario();
    up.failNext('auth', 535, '5.7.8 Username and Password not accepted');
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'held', { what: 'held' });
    expect(await g.gateway.delivery.retryUpstream('gmail-test')).toBe(1);
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered after retry' });
  });

  it('retention: removes delivered bodies after delivery.retention and records after logRetention', async () => {
    const { g } = await scenario({}, { delivery: { retryBase: '200ms', retryMax: '2s', retention: '1s', logRetention: '2500ms' } });
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered' });
    const body = g.gateway.queue.bodyPath(id);
    await waitFor(() => g.gateway.queue.get(id)?.bodyRemoved, { what: 'body removed', timeoutMs: 10_000 });
    await expect(access(body)).rejects.toMatchObject({ code: 'ENOENT' });
    await waitFor(() => g.gateway.queue.get(id) === undefined, { what: 'record removed', timeoutMs: 10_000 });
  });

  it('a reload that maps the device to another working upstream releases the messages held for refused credentials', async () => {
    const { g, up } = await scenario();
    const spare = await TestUpstream.start({ mode: 'starttls' });
    try {
      const raw: RawConfig = {
        devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
        upstreams: [
          upstreamEntry(up, await writeCaFile(deliveryScenario.caDir)),
          upstreamEntry(spare, await writeCaFile(deliveryScenario.caDir), { name: 'gmail-spare' }),
        ],
        delivery: { retryBase: '200ms', retryMax: '2s' },
      };
      up.setPassword('revoked-by-google');
      await g.gateway.reload(buildTestConfig(g.dataDir, raw));
      const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
      await waitFor(() => stateOf(g, id) === 'held', { what: 'held' });
      (raw.devices as Array<Record<string, unknown>>)[0].upstream = 'gmail-spare';
      await g.gateway.reload(buildTestConfig(g.dataDir, raw));
      await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered through the spare' });
      expect(spare.received).toHaveLength(1);
      expect(g.gateway.queue.require(id).upstream).toBe('gmail-spare');
      expect(g.gateway.delivery.upstreamStatus().map((u) => [u.name, u.state])).toEqual([
        ['gmail-test', 'auth-failed'],
        ['gmail-spare', 'up'],
      ]);
    } finally {
      await spare.close();
    }
  });
});
