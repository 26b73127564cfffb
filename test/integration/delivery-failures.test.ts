import { describe, expect, it } from 'vitest';
import { buildTestConfig, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { untrustedCert } from '../kit/certs.js';
import { useDeliveryScenario } from '../kit/delivery-scenario.js';
import { TEST_DEVICE, headersOf, sendToGateway, type TestUpstreamOptions } from '../kit/upstream.js';

describe('delivery when the upstream refuses or fails', () => {
  const deliveryScenario = useDeliveryScenario();
  /** Gateway + one upstream; returns the raw config too, so a test can reload a changed copy. */
  const scenario = (options: TestUpstreamOptions = { mode: 'tls' }, upstreamExtra: Record<string, unknown> = {}, extra: RawConfig = {}) =>
    deliveryScenario.start(options, upstreamExtra, extra);

  const stateOf = (g: TestGateway, id: string) => g.gateway.queue.get(id)?.state;

  it('retries after 421 at connect and 451 at DATA, then delivers', async () => {
    const { g, up } = await scenario();
    up.failNext('connect', 421, 'Service not available, closing channel');
    up.failNext('data', 451, '4.3.0 Temporary server error, try again later');
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered', timeoutMs: 15_000 });
    const message = g.gateway.queue.require(id);
    expect(message.attempts).toBe(3);
    expect(up.received).toHaveLength(1);
    expect(g.logs.filter((l) => l.includes('"delivery.deferred"'))).toHaveLength(2);
  });

  it('535: holds the message, marks the upstream auth-failed, holds later ones unattempted, delivers after the password is fixed and reloaded', async () => {
    const { g, up, raw } = await scenario();
    up.setPassword('the-new-app-password');
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'held', { what: 'held' });
    const held = g.gateway.queue.require(first);
    expect(held.held?.code).toBe('upstream-auth-failed');
    expect(held.held?.reason).toMatch(/535 5\.7\.8/);
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ state: 'auth-failed', held: 1, waiting: 1 });
    expect(g.logs.some((l) => l.includes('"upstream.auth-failed"') && l.includes('"level":50'))).toBe(true);
    const metrics = await g.gateway.metrics.registry.metrics();
    expect(metrics).toContain('scanrelay_upstream_state{upstream="gmail-test",state="auth-failed"} 1');

    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    await waitFor(() => stateOf(g, second) === 'held', { what: 'second held' });
    expect(up.auths).toHaveLength(1);
    expect(g.gateway.queue.require(second).attempts).toBe(0);

    const fixed = structuredClone(raw);
    (fixed.upstreams as Array<Record<string, unknown>>)[0].password = 'the-new-app-password';
    await g.gateway.reload(buildTestConfig(g.dataDir, fixed));
    await waitFor(() => stateOf(g, first) === 'delivered' && stateOf(g, second) === 'delivered', { what: 'both delivered' });
    expect(up.received.map((m) => m.rcptTo[0]).sort()).toEqual(['alice@example.org', 'bob@example.org']);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('up');
    expect(g.logs.join('\n')).not.toContain('the-new-app-password');
    expect(g.logs.join('\n')).not.toContain(up.options.password ?? 'abcdefghijklmnop');
  });

  it('535, then a verify that meets 421 at connect: the upstream stays auth-failed (its newest error shown) and its scan stays held', async () => {
    const { g, up } = await scenario();
    up.setPassword('the-new-app-password');
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'held', { what: 'held' });
    up.failNext('connect', 421, 'Service not available, closing channel');
    const verified = await g.gateway.delivery.verify('gmail-test');
    expect(verified.ok).toBe(false);
    // A refused connection says nothing about the credentials: the refusal stands until proof or new settings.
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ state: 'auth-failed', held: 1, lastError: { responseCode: 421 } });
    expect(await g.gateway.metrics.registry.metrics()).toContain('scanrelay_upstream_state{upstream="gmail-test",state="auth-failed"} 1');
    expect(stateOf(g, first)).toBe('held');
  });

  it('a transient 535 on one connection: its held scan goes as soon as a send proves the credentials good again', async () => {
    const { g, up } = await scenario();
    up.failNext('auth', 535, '5.7.8 Username and Password not accepted');
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'held', { what: 'the first scan held' });
    // The admin's test send succeeds: the upstream is up again, and the held scan must not wait for a reload.
    const test = await g.gateway.delivery.sendTest('gmail-test', 'check@example.org');
    expect(test.ok).toBe(true);
    await waitFor(() => stateOf(g, first) === 'delivered', { what: 'the held scan delivered without a reload' });
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ state: 'up', held: 0 });
  });

  it('550 for the only recipient: the message fails with the upstream reason, and the admin gets a notice', async () => {
    const { g, up } = await scenario({ mode: 'tls' }, {}, { delivery: { retryBase: '200ms', retryMax: '2s', notifyAddress: 'admin@example.org' } });
    up.failNext('rcpt', 550, '5.1.1 The email account that you tried to reach does not exist', 1, 'nobody@example.org');
    const id = await sendToGateway(g.smtpPort, { to: 'nobody@example.org', subject: 'Invoice scan' });
    await waitFor(() => stateOf(g, id) === 'failed', { what: 'failed' });
    const message = g.gateway.queue.require(id);
    expect(message.failReason).toContain('550 5.1.1 The email account that you tried to reach does not exist');
    expect(message.recipients[0]).toMatchObject({ state: 'failed' });
    const notice = await waitFor(() => up.received.find((m) => m.rcptTo[0] === 'admin@example.org'), { what: 'notice' });
    const text = notice.raw.toString();
    expect(text).toContain(`Queue id:   ${id}`);
    expect(text).toContain('nobody@example.org: 550 5.1.1');
    expect(headersOf(notice.raw)).toContain('Subject: [scanrelay] delivery failed: Invoice scan');
  });

  it('partial recipient rejection: delivered to the accepted one, the refused one fails with its reason (partly-failed)', async () => {
    const { g, up } = await scenario();
    up.failNext('rcpt', 550, '5.1.1 no such user', 1, 'gone@example.org');
    const id = await sendToGateway(g.smtpPort, { to: ['alice@example.org', 'gone@example.org'] });
    await waitFor(() => stateOf(g, id) === 'partly-failed', { what: 'partly-failed' });
    const message = g.gateway.queue.require(id);
    expect(message.recipients).toEqual([
      expect.objectContaining({ address: 'alice@example.org', state: 'delivered' }),
      expect.objectContaining({ address: 'gone@example.org', state: 'failed', response: '550 5.1.1 no such user' }),
    ]);
    expect(up.received).toHaveLength(1);
    expect(up.received[0].rcptTo).toEqual(['alice@example.org']);
  });

  it('a temporarily refused recipient stays pending and gets its own later attempt', async () => {
    const { g, up } = await scenario();
    up.failNext('rcpt', 450, '4.2.1 receiving mail too fast', 1, 'busy@example.org');
    const id = await sendToGateway(g.smtpPort, { to: ['alice@example.org', 'busy@example.org'] });
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered', timeoutMs: 15_000 });
    expect(up.received.map((m) => m.rcptTo)).toEqual([['alice@example.org'], ['busy@example.org']]);
    expect(g.gateway.queue.require(id).attempts).toBe(2);
  });

  it('552 5.3.4 too large at the upstream: failed with the reason, not retried', async () => {
    const { g, up } = await scenario();
    up.failNext('data', 552, "5.3.4 Your message exceeded Google's message size limits");
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'failed', { what: 'failed' });
    expect(g.gateway.queue.require(id).failReason).toContain('552 5.3.4');
    expect(g.gateway.queue.require(id).attempts).toBe(1);
  });

  it('daily quota (550 5.4.5): the upstream pauses, messages wait unattempted and go when the pause ends', async () => {
    const { g, up } = await scenario();
    up.failNext('mail', 550, '5.4.5 Daily user sending limit exceeded.');
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'deferred', { what: 'deferred' });
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('quota-paused');
    expect(g.gateway.delivery.upstreamStatus()[0].pausedUntil).toBeGreaterThan(Date.now());
    const connectionsDuringPause = up.connections;
    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    expect(stateOf(g, second)).toBe('queued');
    await waitFor(() => stateOf(g, first) === 'delivered' && stateOf(g, second) === 'delivered', { what: 'both delivered', timeoutMs: 15_000 });
    expect(g.gateway.queue.require(second).attempts).toBe(1);
    // The pause is the upstream's limit, not an attempt of the message: kept as "paused", not counted.
    expect(g.gateway.queue.require(first).attempts).toBe(1);
    expect(g.gateway.queue.attempts(first).map((a) => a.outcome)).toEqual(['paused', 'delivered']);
    expect(g.gateway.queue.attempts(first)[0].reply).toContain('5.4.5');
    expect(up.connections).toBeGreaterThan(connectionsDuringPause);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('up');
  });

  it('gives up after maxLifetime with the last reason', async () => {
    const { g, up } = await scenario({ mode: 'tls' }, {}, { delivery: { retryBase: '200ms', retryMax: '1s', maxLifetime: '1500ms' } });
    await up.down();
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'failed', { what: 'failed', timeoutMs: 15_000 });
    expect(g.gateway.queue.require(id).failReason).toMatch(/^gave up after \d+ attempts over \d+ seconds: .*ECONNREFUSED/);
  });

  it('splits recipients into transactions of maxRecipientsPerMessage', async () => {
    const { g, up } = await scenario({ mode: 'tls' }, { maxRecipientsPerMessage: 2 });
    const to = ['r1@example.org', 'r2@example.org', 'r3@example.org', 'r4@example.org', 'r5@example.org'];
    const id = await sendToGateway(g.smtpPort, { to });
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered' });
    expect(up.received.map((m) => m.rcptTo)).toEqual([to.slice(0, 2), to.slice(2, 4), to.slice(4)]);
    expect(new Set(up.received.map((m) => m.sha256)).size).toBe(1);
  });

  it('an untrusted upstream certificate is a TLS failure: nothing is sent, the message waits', async () => {
    const { g, up } = await scenario({ mode: 'tls', tls: await untrustedCert() });
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const message = await waitFor(() => (stateOf(g, id) === 'deferred' ? g.gateway.queue.get(id) : undefined), { what: 'deferred' });
    expect(message.lastError?.message).toMatch(/^TLS handshake failed: .*certificate/);
    expect(up.auths).toHaveLength(0);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('tls-failed');
  });

  it('holds a message whose device lost its upstream (no-upstream), and delivers it once the mapping is back', async () => {
    const { g, up, raw } = await scenario();
    await up.down();
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'deferred', { what: 'deferred' });
    const unmapped = structuredClone(raw);
    (unmapped.devices as Array<Record<string, unknown>>)[0] = { ...TEST_DEVICE };
    await g.gateway.reload(buildTestConfig(g.dataDir, unmapped));
    await g.gateway.queue.retryNow(id);
    g.gateway.delivery.kick();
    await waitFor(() => stateOf(g, id) === 'held', { what: 'held' });
    expect(g.gateway.queue.require(id).held).toMatchObject({ code: 'no-upstream', owner: 'system', reason: "device 'scanner-2f' has no upstream configured" });
    await up.resume();
    await g.gateway.reload(buildTestConfig(g.dataDir, raw));
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered after the mapping came back' });
    expect(up.received).toHaveLength(1);
  });
});
