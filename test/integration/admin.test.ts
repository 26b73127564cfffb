/**
 * Admin API route by route, through Fastify's inject and over real HTTP: every route documented in
 * /openapi.json, token refusal (401), schema refusals (400 naming the field), unknown ids (404),
 * conflicts (409), and no secret in any answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startTestGateway, testRawConfig, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { apiClient, type ApiClient, type Transport } from '../unit/admin/api-client.js';
import { parsePrometheusText } from '../unit/admin/prometheus-text.js';

const TOKEN = 'test-admin-token-0123456789';
const UPSTREAM_PASSWORD = 'upstream-app-password-never-shown';
const FILE_DEVICE_PASSWORD = 'file-device-pw-never-shown';

/** Every route the admin API has; /openapi.json must list exactly these. */
const ROUTES: Array<[string, string]> = [
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/metrics'],
  ['get', '/openapi.json'],
  ['get', '/api/devices'],
  ['post', '/api/devices'],
  ['get', '/api/devices/{name}'],
  ['patch', '/api/devices/{name}'],
  ['delete', '/api/devices/{name}'],
  ['post', '/api/devices/{name}/enable'],
  ['post', '/api/devices/{name}/disable'],
  ['post', '/api/devices/{name}/rotate-password'],
  ['get', '/api/upstreams'],
  ['get', '/api/upstreams/{name}'],
  ['post', '/api/upstreams/{name}/verify'],
  ['post', '/api/upstreams/{name}/test'],
  ['post', '/api/upstreams/{name}/retry'],
  ['get', '/api/messages'],
  ['get', '/api/messages/{id}'],
  ['post', '/api/messages/{id}/retry'],
  ['post', '/api/messages/{id}/release'],
  ['post', '/api/messages/{id}/hold'],
  ['delete', '/api/messages/{id}'],
  ['post', '/api/messages/bulk'],
  ['post', '/api/queue/flush'],
  ['get', '/api/stats'],
  ['get', '/api/queue/stats'],
  ['get', '/api/lockouts'],
  ['delete', '/api/lockouts/{address}'],
  ['post', '/api/reload'],
  ['get', '/api/watch'],
  ['post', '/api/session'],
  ['get', '/api/session'],
  ['delete', '/api/session'],
];
/** The console login is how one gets a session: it takes the token in its body, not in a header. */
const LOGIN = 'post /api/session';

const PARAM_EXAMPLES: Record<string, string> = { name: 'some-device', id: '0000000000000abcd', address: '192.0.2.1' };

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function baseConfig(): Promise<RawConfig> {
  return {
    smtp: { authLockout: { maxFailures: 2, window: '10m', duration: '10m' } },
    devices: [{ name: 'file-scanner', username: 'file-scanner', password: FILE_DEVICE_PASSWORD, allowRecipients: ['*@example.org'] }],
    upstreams: [
      {
        name: 'gmail-a',
        host: '127.0.0.1',
        port: await closedPort(),
        security: 'tls',
        user: 'scans@example.org',
        password: UPSTREAM_PASSWORD,
        connectionTimeout: '2s',
        socketTimeout: '2s',
      },
    ],
  };
}

async function sendScan(port: number, user: string, pass: string, subject = 'scan'): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true, auth: { user, pass } });
  try {
    const info = await transport.sendMail({ from: 'copier@example.org', to: 'desk@example.org', subject, text: 'scanned page' });
    const id = /queued as (\w+)/.exec(info.response)?.[1];
    if (!id) throw new Error(`no queue id in "${info.response}"`);
    return id;
  } finally {
    transport.close();
  }
}

describe.each<Transport>(['inject', 'http'])('admin API through %s', (transport) => {
  let gw: TestGateway | undefined;
  let api: ApiClient;

  async function start(extra: RawConfig = {}): Promise<TestGateway> {
    gw = await startTestGateway({ ...(await baseConfig()), ...extra });
    api = apiClient(gw, transport, TOKEN);
    return gw;
  }

  afterEach(async () => {
    if (gw) {
      // Whatever the test did, no answer may carry a secret, and neither may the log.
      for (const secret of [TOKEN, UPSTREAM_PASSWORD, FILE_DEVICE_PASSWORD]) {
        expect(api.transcript.join('\n')).not.toContain(secret);
        expect(gw.logs.join('\n')).not.toContain(secret);
      }
      await gw.stop();
    }
    gw = undefined;
  });

  it('documents exactly its routes in /openapi.json and refuses every /api route without a valid token', async () => {
    await start();
    const doc = await api.call('GET', '/openapi.json', { token: null });
    expect(doc.status).toBe(200);
    expect(doc.json.openapi).toMatch(/^3\./);
    const documented = Object.entries(doc.json.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`))
      .sort();
    expect(documented).toEqual(ROUTES.map(([method, path]) => `${method} ${path}`).sort());
    expect(doc.json.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.json.paths['/api/devices'].post.requestBody.required).toBe(true);
    expect(doc.json.paths['/api/devices/{name}/rotate-password'].post.requestBody.required).toBe(false);
    expect(doc.json.paths['/api/devices/{name}'].get.responses['200'].content['application/json'].schema.properties.status).toBeDefined();

    for (const [method, path] of ROUTES.filter(([m, p]) => p.startsWith('/api/') && `${m} ${p}` !== LOGIN)) {
      const operation = doc.json.paths[path][method];
      expect(operation.security, `${method} ${path} documents its token`).toEqual([{ bearerAuth: [] }]);
      expect(operation.responses['401'], `${method} ${path} documents 401`).toBeDefined();
      const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => PARAM_EXAMPLES[name]);
      const cases = [
        { request: { token: null }, challenge: /^Bearer realm="scanrelay"$/ },
        { request: { token: 'wrong-token-0123456789' }, challenge: /error="invalid_token"/ },
        { request: { token: `${TOKEN}x` }, challenge: /error="invalid_token"/ },
        { request: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }, challenge: /^Bearer realm="scanrelay"$/ },
      ];
      for (const { request, challenge } of cases) {
        const answer = await api.call(method.toUpperCase(), url, request);
        expect(answer.status, `${method} ${url}`).toBe(401);
        expect(answer.headers['content-type']).toMatch(/^application\/json/);
        expect(answer.json).toMatchObject({ error: 'Unauthorized', code: 'SCANRELAY_ADMIN_UNAUTHORIZED' });
        expect(answer.headers['www-authenticate']).toMatch(challenge);
      }
    }
  });

  it('creates, reads, changes, disables, rotates and deletes an API device; file devices are read-only', async () => {
    const { smtpPort } = await start();
    const created = await api.call('POST', '/api/devices', { body: { name: 'copier-2f', allowRecipients: ['*@example.org'] } });
    expect(created.status).toBe(201);
    const password: string = created.json.password;
    const login: string = created.json.device.username;
    expect(password).toMatch(/^[A-Za-z0-9]{16,31}$/);
    expect(login).toMatch(/^[A-Za-z0-9._@-]{1,63}$/);
    expect(created.json.device).toMatchObject({ name: 'copier-2f', managedBy: 'api', enabled: true, auth: 'password', status: { state: 'Not connected' } });
    expect(created.json.printerSetup).toEqual({
      page: expect.stringContaining('Email Server'),
      smtpServerAddress: '127.0.0.1',
      smtpServerPortNumber: smtpPort,
      emailSendAuthentication: 'SMTP AUTH (Auto)',
      loginName: login,
      password,
    });
    const secretsSoFar = api.transcript.length;

    const list = await api.call('GET', '/api/devices');
    expect(list.status).toBe(200);
    expect(list.json.items.map((d: { name: string; managedBy: string }) => `${d.name}:${d.managedBy}`)).toEqual(['copier-2f:api', 'file-scanner:config']);
    expect(list.json.items[0].status.counts).toEqual({ received: 0, delivered: 0, failed: 0, queued: 0 });

    const one = await api.call('GET', '/api/devices/copier-2f');
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ name: 'copier-2f', username: login, allowRecipients: ['*@example.org'], allowFrom: [] });

    const patched = await api.call('PATCH', '/api/devices/copier-2f', {
      body: { allowRecipients: ['desk@example.org', '*@example.net'], allowFrom: ['127.0.0.1'], upstream: 'gmail-a', maxMessageSize: '10MB' },
    });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({
      allowRecipients: ['desk@example.org', '*@example.net'],
      allowFrom: ['127.0.0.1'],
      upstream: 'gmail-a',
      maxMessageSize: 10_000_000,
    });
    const unset = await api.call('PATCH', '/api/devices/copier-2f', { body: { upstream: null } });
    expect(unset.status).toBe(200);
    expect(unset.json.upstream).toBeUndefined();

    const disabled = await api.call('POST', '/api/devices/copier-2f/disable');
    expect(disabled.status).toBe(200);
    expect(disabled.json).toMatchObject({ enabled: false, status: { state: 'Stop' } });
    const enabled = await api.call('POST', '/api/devices/copier-2f/enable');
    expect(enabled.json).toMatchObject({ enabled: true, status: { state: 'Not connected' } });

    const rotated = await api.call('POST', '/api/devices/copier-2f/rotate-password');
    expect(rotated.status).toBe(200);
    expect(rotated.json.password).toMatch(/^[A-Za-z0-9]{16,31}$/);
    expect(rotated.json.password).not.toBe(password);
    expect(rotated.json.printerSetup).toMatchObject({ loginName: login, password: rotated.json.password });
    const chosen = await api.call('POST', '/api/devices/copier-2f/rotate-password', { body: { password: 'Chosen-Password-123' } });
    expect(chosen.json.password).toBe('Chosen-Password-123');
    await expect(sendScan(smtpPort, login, 'Chosen-Password-123')).resolves.toMatch(/^\w+$/);

    // After creation the first password is never sent back again.
    expect(api.transcript.slice(secretsSoFar).join('\n')).not.toContain(password);

    // Devices from the config file are listed but cannot be changed here.
    for (const [method, url, body] of [
      ['PATCH', '/api/devices/file-scanner', { enabled: false }],
      ['POST', '/api/devices/file-scanner/disable', undefined],
      ['POST', '/api/devices/file-scanner/rotate-password', undefined],
      ['DELETE', '/api/devices/file-scanner', undefined],
    ] as const) {
      const refused = await api.call(method, url, { body });
      expect(refused.status, `${method} ${url}`).toBe(409);
      expect(refused.json).toMatchObject({ error: 'Conflict', code: 'SCANRELAY_DEVICE_READ_ONLY' });
    }
    const duplicate = await api.call('POST', '/api/devices', { body: { name: 'file-scanner', allowRecipients: ['*@example.org'] } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.json.code).toBe('SCANRELAY_CONFLICT');
    const sameLogin = await api.call('POST', '/api/devices', { body: { name: 'other', username: login, allowRecipients: ['*@example.org'] } });
    expect(sameLogin.status).toBe(409);

    // A device that cannot log in is pinned to its address; its setup sheet says so.
    const pinned = await api.call('POST', '/api/devices', {
      body: { name: 'old-fax', auth: 'none', allowFrom: ['127.0.0.5'], allowRecipients: ['fax@example.org'] },
    });
    expect(pinned.status).toBe(201);
    expect(pinned.json.password).toBeUndefined();
    expect(pinned.json.device).toMatchObject({ auth: 'none', allowFrom: ['127.0.0.5'] });
    expect(pinned.json.device.username).toBeUndefined();
    expect(pinned.json.printerSetup).toMatchObject({ emailSendAuthentication: 'No Authentication', smtpServerPortNumber: smtpPort });
    expect(pinned.json.printerSetup.loginName).toBeUndefined();
    expect(pinned.json.printerSetup.password).toBeUndefined();
    const unpinned = await api.call('POST', '/api/devices', { body: { name: 'open-fax', auth: 'none', allowRecipients: ['fax@example.org'] } });
    expect(unpinned.status).toBe(400);
    expect(unpinned.json.message).toContain('allowFrom');

    const deleted = await api.call('DELETE', '/api/devices/copier-2f');
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    for (const [method, url] of [
      ['GET', '/api/devices/copier-2f'],
      ['DELETE', '/api/devices/copier-2f'],
      ['POST', '/api/devices/copier-2f/enable'],
      ['PATCH', '/api/devices/copier-2f'],
    ] as const) {
      const missing = await api.call(method, url, { body: method === 'PATCH' ? { enabled: true } : undefined });
      expect(missing.status, `${method} ${url}`).toBe(404);
      expect(missing.json).toMatchObject({ error: 'Not Found', code: 'SCANRELAY_NOT_FOUND' });
    }
  });

  it('refuses bad device input with 400 naming the field', async () => {
    await start();
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/devices', { name: 'x' }, 'body.allowRecipients'],
      ['POST', '/api/devices', { name: 'bad name!', allowRecipients: ['*@example.org'] }, 'body.name'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: [] }, 'body.allowRecipients'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: ['*@example.org'], password: 'short' }, 'body.password'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: ['*@example.org'], password: 'p'.repeat(32) }, 'body.password'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: ['*@example.org'], username: 'has space' }, 'body.username'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: ['*@example.org'], colour: 'red' }, 'body.colour'],
      ['POST', '/api/devices', { name: 'x', allowRecipients: ['*@example.org'], enabled: 'maybe' }, 'body.enabled'],
      ['PATCH', '/api/devices/file-scanner', {}, 'body'],
      ['POST', '/api/devices/file-scanner/rotate-password', { password: 'short' }, 'body.password'],
      ['PATCH', '/api/devices/file-scanner', { password: 'new-password-1' }, 'body.password'],
      ['GET', '/api/devices/-leading-dash', undefined, 'params.name'],
    ];
    for (const [method, url, body, field] of cases) {
      const answer = await api.call(method, url, { body });
      expect(answer.status, `${method} ${url} ${JSON.stringify(body)}`).toBe(400);
      expect(answer.json).toMatchObject({ error: 'Bad Request', code: 'SCANRELAY_INVALID_INPUT', field });
      expect(answer.json.message).toContain(field);
    }
    // Checks the registry makes after the schema: an unknown upstream, an open relay, a bad range.
    for (const [body, words] of [
      [{ name: 'x', allowRecipients: ['*@example.org'], upstream: 'nope' }, 'upstream'],
      [{ name: 'x', allowRecipients: ['*'] }, 'allowRecipients'],
      [{ name: 'x', allowRecipients: ['*@example.org'], allowFrom: ['10.0.0.0/33'] }, 'allowFrom'],
      [{ name: 'x', allowRecipients: ['*@example.org'], maxMessageSize: 'huge' }, 'maxMessageSize'],
    ] as const) {
      const answer = await api.call('POST', '/api/devices', { body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.json.code).toBe('SCANRELAY_INVALID_INPUT');
      expect(answer.json.message).toContain(words);
    }
    const badJson = await api.call('POST', '/api/devices', { rawBody: '{"name": ' });
    expect(badJson.status).toBe(400);
    expect(badJson.json).toMatchObject({ error: 'Bad Request', code: expect.any(String), message: expect.any(String) });
    const wrongType = await api.call('POST', '/api/devices', { rawBody: 'name=x', contentType: 'application/x-www-form-urlencoded' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.json.error).toBe('Unsupported Media Type');
    const tooBig = await api.call('POST', '/api/devices', {
      body: { name: 'x', allowRecipients: Array.from({ length: 900 }, (_, i) => `user${i}-${'x'.repeat(80)}@example.org`) },
    });
    expect(tooBig.status).toBe(413);
    const noRoute = await api.call('GET', '/api/nothing-here');
    expect(noRoute.status).toBe(404);
    expect(noRoute.json).toMatchObject({ error: 'Not Found', code: 'SCANRELAY_ROUTE_NOT_FOUND' });
    expect((await api.call('GET', '/api/devices')).json.total).toBe(1);
  });

  it('lists, filters, pages, shows, releases, retries and deletes messages', async () => {
    const { smtpPort } = await start();
    await api.call('POST', '/api/devices', {
      body: { name: 'copier-3f', username: 'copier-3f', password: 'copier-3f-password', allowRecipients: ['*@example.org'] },
    });
    const first = await sendScan(smtpPort, 'file-scanner', FILE_DEVICE_PASSWORD, 'first');
    const second = await sendScan(smtpPort, 'file-scanner', FILE_DEVICE_PASSWORD, 'second');
    const third = await sendScan(smtpPort, 'copier-3f', 'copier-3f-password', 'third');
    const before = new Date(Date.now() - 60_000).toISOString();

    const all = await api.call('GET', '/api/messages');
    expect(all.status).toBe(200);
    expect(all.json).toMatchObject({ total: 3, limit: 50, offset: 0 });
    expect(new Set(all.json.items.map((m: { id: string }) => m.id))).toEqual(new Set([first, second, third]));
    // No upstream: each is held, and the log line says why.
    expect(all.json.items[0]).toMatchObject({ state: 'held', from: 'copier@example.org', recipients: 1, outcome: expect.stringContaining('no upstream') });

    const byDevice = await api.call('GET', '/api/messages?device=file-scanner&state=held&state=queued');
    expect(byDevice.json.total).toBe(2);
    expect(byDevice.json.items.map((m: { subject: string }) => m.subject).sort()).toEqual(['first', 'second']);
    const page = await api.call('GET', '/api/messages?limit=1&offset=1');
    expect(page.json).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.json.items).toHaveLength(1);
    expect(
      (await api.call('GET', `/api/messages?since=${encodeURIComponent(before)}&until=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).json
        .total,
    ).toBe(3);
    expect((await api.call('GET', `/api/messages?until=${encodeURIComponent(before)}`)).json.total).toBe(0);
    expect((await api.call('GET', '/api/messages?state=delivered')).json.total).toBe(0);
    expect((await api.call('GET', '/api/messages?upstream=gmail-a')).json.total).toBe(0);

    const detail = await api.call('GET', `/api/messages/${first}`);
    expect(detail.status).toBe(200);
    expect(detail.json).toMatchObject({
      id: first,
      state: 'held',
      device: 'file-scanner',
      envelope: { mailFrom: 'copier@example.org', rcptTo: ['desk@example.org'] },
      recipients: [{ address: 'desk@example.org', state: 'pending' }],
      headers: { subject: 'first', from: 'copier@example.org' },
      attemptCount: 0,
      attempts: [],
      held: { code: 'no-upstream' },
      hold: { reason: 'no-upstream', owner: 'system', text: expect.stringContaining('no upstream'), fix: expect.stringContaining('upstream') },
      bodyRemoved: false,
    });
    expect(detail.json.size).toBeGreaterThan(50);
    expect(Date.parse(detail.json.receivedAt)).toBeGreaterThan(Date.parse(before));
    expect(detail.json.receivedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(detail.text).not.toContain('scanned page');

    const stats = await api.call('GET', '/api/queue/stats');
    expect(stats.json.counts.held).toBe(3);

    const released = await api.call('POST', `/api/messages/${first}/release`);
    expect(released.status).toBe(200);
    // The worker may already hold the message for its attempt when the answer is written.
    expect(released.json.id).toBe(first);
    expect(['queued', 'delivering']).toContain(released.json.state);
    expect(released.json.held).toBeUndefined();
    const retried = await api.call('POST', `/api/messages/${second}/retry`);
    expect(retried.status).toBe(200);
    expect(['queued', 'delivering']).toContain(retried.json.state);

    // A delivered message can be neither released nor retried.
    // The worker hears message.due too and may claim the message first (it holds it again: its device has
    // no upstream); so retry until this test holds the claim, waiting while the worker's attempt runs.
    const queue = gw!.gateway.queue;
    const claim = await waitFor(
      async () => {
        const state = queue.require(third).state;
        if (state === 'delivering') return undefined;
        if (state !== 'queued') await queue.retryNow(third);
        return queue.claimDue(Date.now(), { pick: (m) => m.id === third })[0];
      },
      { what: `a claim on ${third}` },
    );
    await claim.delivered({ upstream: 'gmail-a', reply: '250 2.0.0 OK' });
    for (const action of ['release', 'retry']) {
      const refused = await api.call('POST', `/api/messages/${third}/${action}`);
      expect(refused.status, action).toBe(409);
      expect(refused.json).toMatchObject({ error: 'Conflict', code: 'SCANRELAY_CONFLICT' });
    }
    const log = await api.call('GET', '/api/messages?state=delivered&device=copier-3f');
    expect(log.json.items).toEqual([expect.objectContaining({ id: third, state: 'delivered', upstream: 'gmail-a', outcome: 'delivered: 250 2.0.0 OK' })]);

    const removed = await api.call('DELETE', `/api/messages/${third}`);
    expect(removed.status).toBe(200);
    expect(removed.json).toMatchObject({ id: third, state: 'delivered', attempts: [expect.objectContaining({ outcome: 'delivered', reply: '250 2.0.0 OK' })] });
    for (const [method, url] of [
      ['GET', ''],
      ['DELETE', ''],
      ['POST', '/retry'],
      ['POST', '/release'],
    ] as const) {
      const missing = await api.call(method, `/api/messages/${third}${url}`);
      expect(missing.status, `${method} ${url}`).toBe(404);
      expect(missing.json.code).toBe('SCANRELAY_NOT_FOUND');
    }
    for (const [url, field] of [
      ['/api/messages?state=lost', 'querystring.state[0]'],
      ['/api/messages?limit=0', 'querystring.limit'],
      ['/api/messages?limit=501', 'querystring.limit'],
      ['/api/messages?offset=-1', 'querystring.offset'],
      ['/api/messages?since=yesterday', 'querystring.since'],
      ['/api/messages?color=red', 'querystring.color'],
      ['/api/messages/not-an-id', 'params.id'],
    ] as const) {
      const refused = await api.call('GET', url);
      expect(refused.status, url).toBe(400);
      expect(refused.json).toMatchObject({ code: 'SCANRELAY_INVALID_INPUT', field });
    }
  });

  it('shows upstreams without secrets, checks them, and hides internal errors', async () => {
    await start();
    const list = await api.call('GET', '/api/upstreams');
    expect(list.status).toBe(200);
    expect(list.json.items).toEqual([
      expect.objectContaining({ name: 'gmail-a', host: '127.0.0.1', security: 'tls', user: 'scans@example.org', auth: 'password', waiting: 0 }),
    ]);
    expect(list.json.items[0].state).toMatch(/^(up|unknown|auth-failed|unreachable|quota-paused|tls-failed)$/);
    expect((await api.call('GET', '/api/upstreams/gmail-a')).json.name).toBe('gmail-a');

    // Nothing listens on the upstream's port: the check runs and reports a failure, it does not error.
    const verify = await api.call('POST', '/api/upstreams/gmail-a/verify');
    expect(verify.status).toBe(200);
    expect(verify.json).toMatchObject({ ok: false, error: { message: expect.any(String) }, durationMs: expect.any(Number) });
    const test = await api.call('POST', '/api/upstreams/gmail-a/test', { body: { to: 'desk@example.org' } });
    expect(test.status).toBe(200);
    expect(test.json.ok).toBe(false);

    const retry = await api.call('POST', '/api/upstreams/gmail-a/retry');
    expect(retry.status).toBe(200);
    expect(retry.json).toEqual({ released: 0 });

    for (const [method, url, body] of [
      ['GET', '/api/upstreams/nope'],
      ['POST', '/api/upstreams/nope/verify'],
      ['POST', '/api/upstreams/nope/test', { to: 'a@example.org' }],
      ['POST', '/api/upstreams/nope/retry'],
    ] as const) {
      const missing = await api.call(method, url, { body });
      expect(missing.status, url).toBe(404);
      expect(missing.json.code).toBe('SCANRELAY_NOT_FOUND');
    }
    for (const [body, field] of [
      [{ to: 'not an address' }, 'body.to'],
      [{}, 'body.to'],
      [{ to: 'a@example.org', cc: 'b@example.org' }, 'body.cc'],
    ] as const) {
      const refused = await api.call('POST', '/api/upstreams/gmail-a/test', { body });
      expect(refused.status).toBe(400);
      expect(refused.json.field).toBe(field);
    }

    // An unexpected failure inside becomes a bare 500: no message, path or stack reaches the client.
    gw!.gateway.delivery.verify = async () => {
      throw new Error('EACCES /var/lib/scanrelay/internal-state.json at line 42');
    };
    const broken = await api.call('POST', '/api/upstreams/gmail-a/verify');
    expect(broken.status).toBe(500);
    expect(broken.json).toEqual({ error: 'Internal Server Error', code: 'SCANRELAY_INTERNAL', message: 'internal error; see the gateway log' });
    expect(broken.text).not.toContain('internal-state');
    expect(gw!.logs.join('\n')).toContain('internal-state.json');
  });

  it('lists and lifts lock-outs', async () => {
    const { smtpPort } = await start();
    expect((await api.call('GET', '/api/lockouts')).json).toEqual({ items: [], total: 0 });
    for (let i = 0; i < 2; i++) await expect(sendScan(smtpPort, 'file-scanner', 'wrong-password')).rejects.toMatchObject({ code: 'EAUTH' });
    const locked = await api.call('GET', '/api/lockouts');
    expect(locked.json.items).toEqual([{ address: '127.0.0.1', until: expect.stringMatching(/Z$/) }]);
    expect(Date.parse(locked.json.items[0].until)).toBeGreaterThan(Date.now());
    await expect(sendScan(smtpPort, 'file-scanner', FILE_DEVICE_PASSWORD)).rejects.toBeDefined();

    expect((await api.call('DELETE', '/api/lockouts/127.0.0.1')).status).toBe(204);
    await expect(sendScan(smtpPort, 'file-scanner', FILE_DEVICE_PASSWORD)).resolves.toBeDefined();
    const again = await api.call('DELETE', '/api/lockouts/127.0.0.1');
    expect(again.status).toBe(404);
    const bad = await api.call('DELETE', '/api/lockouts/not-an-ip');
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('SCANRELAY_INVALID_INPUT');
  });

  it('reloads the config file and refuses a broken one, keeping the running config', async () => {
    const raw = await baseConfig();
    const started = await start(raw);
    const file = started.config.file;
    const withSecondDevice = testRawConfig(started.dataDir, {
      ...raw,
      devices: [...(raw.devices as object[]), { name: 'added-by-file', auth: 'none', allowFrom: ['127.0.0.9'], allowRecipients: ['*@example.org'] }],
    });
    await writeFile(file, stringify(withSecondDevice));
    const reloaded = await api.call('POST', '/api/reload');
    expect(reloaded.status).toBe(200);
    expect(reloaded.json).toEqual({ status: 'reloaded', devices: 2, upstreams: 1 });
    expect((await api.call('GET', '/api/devices/added-by-file')).json).toMatchObject({ managedBy: 'config', auth: 'none' });

    await writeFile(file, stringify({ ...withSecondDevice, smtp: { port: 'not-a-port' } }));
    const refused = await api.call('POST', '/api/reload');
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: 'SCANRELAY_CONFIG_INVALID', message: expect.stringContaining('smtp.port') });
    expect((await api.call('GET', '/api/devices')).json.total).toBe(2);
  });

  it('answers health, readiness and metrics without a token (metrics with one when configured)', async () => {
    await start();
    const health = await api.call('GET', '/healthz', { token: null });
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: 'ok' });
    const ready = await api.call('GET', '/readyz', { token: null });
    expect(ready.json).toEqual({ status: 'ready', checks: { smtp: true, dataDir: true, store: true } });

    const metrics = await api.call('GET', '/metrics', { token: null });
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(parsePrometheusText(metrics.text).get('scanrelay_queue_messages')?.type).toBe('gauge');

    // The queue directory vanishing (disk unmounted, say) makes the gateway not ready.
    await rm(join(gw!.dataDir, 'queue'), { recursive: true, force: true });
    const notReady = await api.call('GET', '/readyz', { token: null });
    expect(notReady.status).toBe(503);
    expect(notReady.json).toEqual({ status: 'not-ready', checks: { smtp: true, dataDir: true, store: false } });
  });

  it('requires a token on /metrics when admin.metricsToken is set', async () => {
    await start({ admin: { host: '127.0.0.1', port: 0, tokens: [TOKEN], metricsToken: true } });
    const refused = await api.call('GET', '/metrics', { token: null });
    expect(refused.status).toBe(401);
    expect(refused.json.code).toBe('SCANRELAY_ADMIN_UNAUTHORIZED');
    expect((await api.call('GET', '/metrics', { token: 'wrong-token-0123456789' })).status).toBe(401);
    const allowed = await api.call('GET', '/metrics');
    expect(allowed.status).toBe(200);
    expect(parsePrometheusText(allowed.text).size).toBeGreaterThan(5);
    expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
  });
});
