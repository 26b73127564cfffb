/**
 * The admin API watching real SMTP traffic (nodemailer to the gateway's port, admin over real HTTP):
 * device status moving with each transmission, a credential created through the API working at once
 * for PLAIN, LOGIN and CRAM-MD5 and after a restart, /metrics valid and moving, and no secret in any
 * answer or log line.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import nodemailer from 'nodemailer';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { apiClient, type ApiClient } from '../unit/admin/api-client.js';
import { TestUpstream, UPSTREAM_PASSWORD, UPSTREAM_USER } from '../kit/upstream.js';
import { writeCaFile } from '../kit/certs.js';
import { parsePrometheusText, sampleValue } from '../unit/admin/prometheus-text.js';

const TOKEN = 'test-admin-token-0123456789';
type AuthMethod = 'PLAIN' | 'LOGIN' | 'CRAM-MD5';

async function sendScan(port: number, user: string, pass: string, options: { authMethod?: AuthMethod; subject?: string; to?: string } = {}) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    ignoreTLS: true,
    auth: { user, pass },
    authMethod: options.authMethod,
  });
  try {
    return await transport.sendMail({
      from: 'copier@example.org',
      to: options.to ?? 'desk@example.org',
      subject: options.subject ?? 'scan',
      text: 'scanned page',
    });
  } finally {
    transport.close();
  }
}

describe('admin API with SMTP traffic', () => {
  let gw: TestGateway | undefined;
  let api: ApiClient;
  const dirs: string[] = [];
  let upstream: TestUpstream | undefined;

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await upstream?.close();
    upstream = undefined;
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it("moves a device's status as the printer sends: counts, state, last error, auth failures", async () => {
    gw = await startTestGateway({ smtp: { authLockout: { maxFailures: 50 } } });
    api = apiClient(gw, 'http', TOKEN);
    const created = await api.call('POST', '/api/devices', { body: { name: 'copier-2f', allowRecipients: ['*@example.org'] } });
    const { username } = created.json.device;
    const { password } = created.json;
    const status = async () => (await api.call('GET', '/api/devices/copier-2f')).json.status;
    expect(await status()).toEqual({ state: 'Not connected', recentAuthFailures: 0, counts: { received: 0, delivered: 0, failed: 0, queued: 0 } });

    const sentAt = Date.now();
    await sendScan(gw.smtpPort, username, password);
    const afterOne = await status();
    expect(afterOne.counts).toEqual({ received: 1, delivered: 0, failed: 0, queued: 1 });
    // No upstream: the message is held, which the printer would call "Unable to connect".
    expect(afterOne.state).toBe('Unable to connect');
    expect(afterOne.lastError.message).toContain('no upstream');
    expect(afterOne.lastSeenAddress).toBe('127.0.0.1');
    expect(Date.parse(afterOne.lastSeenAt)).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(Date.parse(afterOne.lastMessageAt)).toBeGreaterThanOrEqual(sentAt - 1000);

    await sendScan(gw.smtpPort, username, password);
    await expect(sendScan(gw.smtpPort, username, 'not-the-password')).rejects.toMatchObject({ code: 'EAUTH' });
    const afterTwo = await status();
    expect(afterTwo.counts).toEqual({ received: 2, delivered: 0, failed: 0, queued: 2 });
    expect(afterTwo.recentAuthFailures).toBe(1);
    expect(afterTwo.lastError.message).toContain('authentication failed');

    // The list shows the same status as the single read.
    const listed = (await api.call('GET', '/api/devices')).json.items.find((d: { name: string }) => d.name === 'copier-2f');
    expect(listed.status).toEqual(afterTwo);

    // Deleting a message takes it out of the queued count; disabling shows "Stop" and refuses the device.
    const [newest] = (await api.call('GET', '/api/messages?device=copier-2f')).json.items;
    expect((await api.call('DELETE', `/api/messages/${newest.id}`)).status).toBe(200);
    expect((await status()).counts.queued).toBe(1);
    expect((await api.call('POST', '/api/devices/copier-2f/disable')).json.status.state).toBe('Stop');
    await expect(sendScan(gw.smtpPort, username, password)).rejects.toBeDefined();
    expect((await status()).counts.received).toBe(2);

    for (const secret of [password, TOKEN]) {
      expect(api.transcript.slice(1).join('\n')).not.toContain(secret);
      expect(gw.logs.join('\n')).not.toContain(secret);
    }
  });

  it('accepts an API-created credential at once for PLAIN, LOGIN and CRAM-MD5, and after a restart', async () => {
    const dataDir = await makeTempDir();
    dirs.push(dataDir);
    gw = await startTestGateway({}, { dataDir });
    api = apiClient(gw, 'http', TOKEN);
    const created = await api.call('POST', '/api/devices', { body: { name: 'copier-1f', allowRecipients: ['*@example.org'] } });
    expect(created.status).toBe(201);
    const login: string = created.json.printerSetup.loginName;
    const password: string = created.json.printerSetup.password;
    expect(created.json.device.supportsChallengeAuth).toBe(true);

    const methods: AuthMethod[] = ['PLAIN', 'LOGIN', 'CRAM-MD5'];
    for (const authMethod of methods) {
      const info = await sendScan(gw.smtpPort, login, password, { authMethod, subject: `before restart ${authMethod}` });
      expect(info.response, authMethod).toMatch(/^250 .*queued as \w+/);
    }
    const logs = [...gw.logs];
    await gw.stop();

    gw = await startTestGateway({}, { dataDir });
    api = apiClient(gw, 'http', TOKEN);
    const after = await api.call('GET', '/api/devices/copier-1f');
    expect(after.json).toMatchObject({ managedBy: 'api', username: login, enabled: true });
    for (const authMethod of methods) {
      const info = await sendScan(gw.smtpPort, login, password, { authMethod, subject: `after restart ${authMethod}` });
      expect(info.response, authMethod).toMatch(/^250 /);
    }
    for (const authMethod of methods) {
      await expect(sendScan(gw.smtpPort, login, `${password}x`, { authMethod }), authMethod).rejects.toMatchObject({ code: 'EAUTH' });
    }
    expect((await api.call('GET', '/api/messages?device=copier-1f')).json.total).toBe(6);

    // Rotation takes effect at once: the old password is refused, the new one works.
    const rotated = await api.call('POST', '/api/devices/copier-1f/rotate-password');
    await expect(sendScan(gw.smtpPort, login, password, { authMethod: 'CRAM-MD5' })).rejects.toMatchObject({ code: 'EAUTH' });
    await expect(sendScan(gw.smtpPort, login, rotated.json.password, { authMethod: 'CRAM-MD5' })).resolves.toBeDefined();
    for (const secret of [password, rotated.json.password, TOKEN]) {
      expect([...logs, ...gw.logs].join('\n')).not.toContain(secret);
    }
    expect(api.transcript.filter((t) => !t.includes('rotate-password')).join('\n')).not.toContain(rotated.json.password);
  });

  it('serves valid Prometheus text whose counters move as messages flow', async () => {
    gw = await startTestGateway({}, { defaultMetrics: true });
    api = apiClient(gw, 'http', TOKEN);
    const created = await api.call('POST', '/api/devices', { body: { name: 'copier-4f', allowRecipients: ['*@example.org'] } });
    const { loginName, password } = created.json.printerSetup;
    const scrape = async () => {
      const answer = await api.call('GET', '/metrics', { token: null });
      expect(answer.status).toBe(200);
      return parsePrometheusText(answer.text);
    };

    const before = await scrape();
    expect(before.get('scanrelay_process_cpu_seconds_total')?.type).toBe('counter');
    expect(before.get('scanrelay_smtp_auth_attempts_total')?.type).toBe('counter');
    expect(before.get('scanrelay_delivery_duration_seconds')?.type).toBe('histogram');
    expect(sampleValue(before, 'scanrelay_queue_messages', { state: 'held' })).toBe(0);
    expect(sampleValue(before, 'scanrelay_device_enabled', { device: 'copier-4f' })).toBe(1);

    const info = await sendScan(gw.smtpPort, loginName, password, { authMethod: 'CRAM-MD5' });
    await sendScan(gw.smtpPort, loginName, password, { authMethod: 'PLAIN' });
    await expect(sendScan(gw.smtpPort, loginName, 'wrong-password', { authMethod: 'LOGIN' })).rejects.toMatchObject({ code: 'EAUTH' });
    const after = await scrape();
    expect(sampleValue(after, 'scanrelay_messages_received_total', { device: 'copier-4f' })).toBe(2);
    expect(sampleValue(after, 'scanrelay_bytes_received_total', { device: 'copier-4f' })).toBeGreaterThan(200);
    expect(sampleValue(after, 'scanrelay_smtp_auth_attempts_total', { method: 'CRAM-MD5', result: 'success' })).toBe(1);
    expect(sampleValue(after, 'scanrelay_smtp_auth_attempts_total', { method: 'PLAIN', result: 'success' })).toBe(1);
    expect(sampleValue(after, 'scanrelay_smtp_auth_attempts_total', { method: 'LOGIN', result: 'failure' })).toBe(1);
    expect(sampleValue(after, 'scanrelay_smtp_connections_total', { listener: 'smtp' })).toBe(3);
    expect(sampleValue(after, 'scanrelay_message_size_bytes_count')).toBe(2);
    expect(sampleValue(after, 'scanrelay_queue_messages', { state: 'held' })).toBe(2);
    expect(sampleValue(after, 'scanrelay_queue_oldest_message_age_seconds')).toBeGreaterThanOrEqual(0);

    // Disabling through the API shows in the device gauge; labels never carry addresses or ids.
    await api.call('POST', '/api/devices/copier-4f/disable');
    const disabled = await scrape();
    expect(sampleValue(disabled, 'scanrelay_device_enabled', { device: 'copier-4f' })).toBe(0);
    const queueId = /queued as (\w+)/.exec(info.response)![1];
    const labelValues = [...disabled.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    for (const value of labelValues) {
      expect(value).not.toContain('@');
      expect(value).not.toBe(queueId);
      expect(value).not.toBe('127.0.0.1');
    }
  });

  it('shows delivery, the last error after an upstream failure, and upstream checks against a real TLS upstream', async () => {
    upstream = await TestUpstream.start({ mode: 'tls' });
    const dir = await makeTempDir();
    dirs.push(dir);
    gw = await startTestGateway({
      upstreams: [
        {
          name: 'gmail-a',
          host: '127.0.0.1',
          port: upstream.port,
          security: 'tls',
          user: UPSTREAM_USER,
          password: UPSTREAM_PASSWORD,
          tls: { ca: await writeCaFile(dir) },
          connectionTimeout: '5s',
          socketTimeout: '5s',
        },
      ],
    });
    api = apiClient(gw, 'http', TOKEN);
    const created = await api.call('POST', '/api/devices', { body: { name: 'copier-5f', allowRecipients: ['*@example.org'] } });
    expect(created.status).toBe(201);
    const { loginName, password } = created.json.printerSetup;
    const status = async () => (await api.call('GET', '/api/devices/copier-5f')).json.status;

    // Sent before the device had an upstream: held; giving it one through the API lets it go out.
    const first = /queued as (\w+)/.exec((await sendScan(gw.smtpPort, loginName, password, { subject: 'goes out' })).response)![1];
    expect((await api.call('GET', `/api/messages/${first}`)).json).toMatchObject({ state: 'held', held: { code: 'no-upstream' } });
    expect(upstream.received).toHaveLength(0);
    expect((await api.call('PATCH', '/api/devices/copier-5f', { body: { upstream: 'gmail-a' } })).json.upstream).toBe('gmail-a');
    const delivered = await waitFor(
      async () => {
        const s = await status();
        return s.counts.delivered === 1 ? s : undefined;
      },
      { what: 'the first delivery', timeoutMs: 20_000 },
    );
    expect(delivered).toMatchObject({ state: 'Operating', counts: { received: 1, delivered: 1, failed: 0, queued: 0 } });
    expect(upstream.received).toHaveLength(1);
    const log = (await api.call('GET', `/api/messages/${first}`)).json;
    expect(log).toMatchObject({
      state: 'delivered',
      upstream: 'gmail-a',
      attemptCount: 1,
      attempts: [expect.objectContaining({ upstream: 'gmail-a', outcome: 'delivered', reply: expect.stringContaining('upstream-accepted') })],
      recipients: [{ address: 'desk@example.org', state: 'delivered' }],
    });
    expect(log.upstreamResponse).toContain('upstream-accepted');
    const up = (await api.call('GET', '/api/upstreams/gmail-a')).json;
    expect(up).toMatchObject({ name: 'gmail-a', state: 'up', waiting: 0, user: UPSTREAM_USER });
    expect(Date.parse(up.lastSuccessAt)).toBeGreaterThan(0);

    // The upstream refuses the next one for good: the device shows why.
    upstream.failAlways('data', 550, '5.7.1 Message rejected by policy');
    const second = /queued as (\w+)/.exec((await sendScan(gw.smtpPort, loginName, password, { subject: 'refused' })).response)![1];
    const failed = await waitFor(
      async () => {
        const s = await status();
        return s.counts.failed === 1 ? s : undefined;
      },
      { what: 'the refused message to fail', timeoutMs: 20_000 },
    );
    expect(failed.state).toBe('Unable to connect');
    expect(failed.lastError.message).toContain('5.7.1');
    expect(failed.counts).toEqual({ received: 2, delivered: 1, failed: 1, queued: 0 });
    const failedMessage = (await api.call('GET', `/api/messages/${second}`)).json;
    expect(failedMessage).toMatchObject({ state: 'failed', recipients: [{ state: 'failed' }] });
    expect(failedMessage.failReason).toContain('5.7.1');
    const outcomes = (await api.call('GET', '/api/messages?device=copier-5f')).json.items.map((m: { id: string; outcome: string }) => [m.id, m.outcome]);
    expect(outcomes).toEqual([
      [second, expect.stringMatching(/^failed: .*5\.7\.1/)],
      [first, expect.stringMatching(/^delivered/)],
    ]);
    upstream.clearFailures();

    // verify and test go to the real upstream and report its answer.
    const verified = await api.call('POST', '/api/upstreams/gmail-a/verify');
    expect(verified.json).toMatchObject({ ok: true, port: upstream.port, security: 'tls' });
    const tested = await api.call('POST', '/api/upstreams/gmail-a/test', { body: { to: 'it-desk@example.org' } });
    expect(tested.json).toMatchObject({ ok: true, response: expect.stringContaining('upstream-accepted') });
    expect(upstream.received.at(-1)!.rcptTo).toEqual(['it-desk@example.org']);
    upstream.setPassword('a-new-app-password');
    const refused = await api.call('POST', '/api/upstreams/gmail-a/verify');
    expect(refused.json).toMatchObject({ ok: false, error: { responseCode: 535 } });
    expect((await api.call('GET', '/api/upstreams')).json.items[0].state).toBe('auth-failed');

    const metrics = parsePrometheusText((await api.call('GET', '/metrics', { token: null })).text);
    expect(sampleValue(metrics, 'scanrelay_messages_delivered_total', { device: 'copier-5f' })).toBe(1);
    expect(sampleValue(metrics, 'scanrelay_messages_failed_total', { device: 'copier-5f' })).toBe(1);
    expect(sampleValue(metrics, 'scanrelay_delivery_attempts_total', { upstream: 'gmail-a', result: 'delivered' })).toBe(1);
    expect(sampleValue(metrics, 'scanrelay_delivery_attempts_total', { upstream: 'gmail-a', result: 'failed' })).toBe(1);
    expect(sampleValue(metrics, 'scanrelay_delivery_duration_seconds_count', { upstream: 'gmail-a' })).toBe(1);
    expect(sampleValue(metrics, 'scanrelay_upstream_state', { upstream: 'gmail-a', state: 'auth-failed' })).toBe(1);

    for (const secret of [UPSTREAM_PASSWORD, password, TOKEN]) {
      expect(api.transcript.slice(1).join('\n')).not.toContain(secret);
      expect(gw.logs.join('\n')).not.toContain(secret);
    }
  });
});
