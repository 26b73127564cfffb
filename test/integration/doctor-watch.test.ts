/**
 * GET /api/watch (the printer doctor as server-sent events) over real HTTP against a gateway with a real
 * TLS upstream: session steps (emitted on the gateway's own event bus, as the login recorder does) and
 * the upstream trip of a real SMTP send, explanations on failing steps, nothing collected after the
 * watcher leaves, and a clean stop with a stream still open.
 */
import { describe, expect, it } from 'vitest';
import { useDeliveryScenario } from '../kit/delivery-scenario.js';
import { TEST_DEVICE, openEventStream, sendToGateway, sessionSteps, waitFor, type TestGateway } from '../kit/index.js';
import { deviceTransport } from '../kit/inbound-scope.js';

const AUTH = { authorization: 'Bearer test-admin-token-0123456789' };
const scenario = useDeliveryScenario();

const base = (g: TestGateway) => `http://127.0.0.1:${g.addresses.admin?.port}`;
const step = sessionSteps('doctor-s1');

describe('printer doctor stream', () => {
  it('refuses an unknown device with 404 and a missing token with 401', async () => {
    const { g } = await scenario.start();
    const unknown = await fetch(`${base(g)}/api/watch?device=no-such-printer`, { headers: AUTH });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: string }).code).toBe('SCANRELAY_NOT_FOUND');
    expect((await fetch(`${base(g)}/api/watch?device=${TEST_DEVICE.name}`)).status).toBe(401);
    expect(g.gateway.events.listenerCount('session.step')).toBe(0);
  });

  it("streams a device's session steps with explanations, then the upstream's reply to its scan", async () => {
    const { g, up } = await scenario.start();
    const events = g.gateway.events;
    expect(events.listenerCount('session.step')).toBe(0);
    const deliveredListeners = events.listenerCount('message.delivered');
    const stream = await openEventStream(`${base(g)}/api/watch?device=${TEST_DEVICE.name}`, AUTH);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await waitFor(() => stream.comments.some((c) => c.startsWith('watching')), { what: 'the stream greeting' });
    expect(events.listenerCount('session.step')).toBe(1);

    events.emit('session.step', step('connect', { detail: 'connect from 127.0.0.1' }));
    events.emit('session.step', step('helo', { detail: 'EHLO printer.local' }));
    events.emit('session.step', step('auth', { ok: false, device: TEST_DEVICE.name, reason: 'bad-password', detail: 'AUTH PLAIN c2Nhbm5lcgBwYXNz' }));
    const failed = await stream.waitFor((e) => e.event === 'step' && e.json.step === 'auth', 5000, 'the failed AUTH step');
    expect(failed.json).toMatchObject({
      sessionId: 'doctor-s1',
      protocol: 'smtp',
      device: TEST_DEVICE.name,
      ok: false,
      reason: 'bad-password',
      detail: 'AUTH PLAIN ••••',
      explanation: { problem: expect.stringContaining('password is wrong'), fix: expect.stringContaining('Password') },
    });
    expect(stream.events.filter((e) => e.event === 'step').map((e) => e.json.step)).toEqual(['connect', 'helo', 'auth']);
    expect(stream.events[0]?.json.explanation).toBeUndefined();

    const id = await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'Doctor scan' });
    const delivered = await stream.waitFor((e) => e.event === 'delivery' && e.json.id === id && e.json.outcome === 'delivered', 15_000, 'the delivery');
    expect(delivered.json).toMatchObject({ device: TEST_DEVICE.name, upstream: 'gmail-test' });
    expect(stream.events.some((e) => e.event === 'delivery' && e.json.id === id && e.json.outcome === 'queued')).toBe(true);
    expect(up.received).toHaveLength(1);
    expect(stream.events.map((e) => e.data).join('\n')).not.toContain(TEST_DEVICE.password);

    stream.close();
    await waitFor(() => events.listenerCount('session.step') === 0 && events.listenerCount('message.delivered') === deliveredListeners, {
      what: 'the watcher to leave',
    });
  });

  it('shows a real failed SMTP login with its true reason and the fix (needs the login recorder)', async () => {
    const { g } = await scenario.start();
    const stream = await openEventStream(`${base(g)}/api/watch?device=${TEST_DEVICE.name}`, AUTH);
    await waitFor(() => stream.comments.length > 0, { what: 'the stream greeting' });
    const transport = deviceTransport(g.smtpPort, { user: TEST_DEVICE.username, pass: 'not-the-password', method: 'LOGIN' });
    await expect(transport.sendMail({ from: 'printer@example.org', to: 'someone@example.org', subject: 'x', text: 'x' })).rejects.toThrow();
    transport.close();
    const failed = await stream.waitFor((e) => e.event === 'step' && e.json.step === 'auth' && !e.json.ok, 10_000, 'the failed AUTH step');
    expect(failed.json).toMatchObject({
      device: TEST_DEVICE.name,
      reason: 'bad-password',
      explanation: { problem: expect.stringContaining('password is wrong') },
    });
    expect(stream.events.find((e) => e.event === 'step')?.json.step).toBe('connect');
    expect(stream.events.map((e) => e.data).join('\n')).not.toContain('not-the-password');
    stream.close();
  });

  it("ends a console session's stream when that session logs out", async () => {
    const { g } = await scenario.start();
    const login = await fetch(`${base(g)}/api/session`, {
      method: 'POST',
      headers: { 'x-scanrelay-console': '1', 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'test-admin-token-0123456789' }),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const stream = await openEventStream(`${base(g)}/api/watch?device=${TEST_DEVICE.name}`, { cookie });
    expect(stream.status).toBe(200);
    await waitFor(() => stream.comments.length > 0, { what: 'the stream greeting' });
    const out = await fetch(`${base(g)}/api/session`, { method: 'DELETE', headers: { cookie, 'x-scanrelay-console': '1' } });
    expect(out.status).toBe(204);
    // At once, not at the next 15 s ping.
    const ended = Date.now();
    await stream.ended;
    expect(Date.now() - ended).toBeLessThan(5000);
    expect(g.gateway.events.listenerCount('session.step')).toBe(0);
  });

  it('ends open streams when the gateway stops', async () => {
    const { g } = await scenario.start();
    const stream = await openEventStream(`${base(g)}/api/watch?device=${TEST_DEVICE.name}`, AUTH);
    await waitFor(() => stream.comments.length > 0, { what: 'the stream greeting' });
    await g.stop();
    await stream.ended;
    expect(g.gateway.events.listenerCount('session.step')).toBe(0);
  });
});
