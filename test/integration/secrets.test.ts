/**
 * Secrets never leak. One gateway with SMTP, POP3, the admin API and a real TLS upstream is driven
 * through every way in and out: SMTP AUTH PLAIN, LOGIN and CRAM-MD5 (right and wrong), POP3 USER/PASS and
 * APOP (right and wrong), a device known by its address (auth none), a device created and rotated through
 * the API, a delivery through the upstream, upstream verify with the right and a wrong app password, and
 * API calls with a wrong token. Then no device password (config, API-made, rotated, old, guessed), no
 * upstream app password (right or wrong), no admin token, no device secret key and no AUTH payload may
 * appear in the captured logs, in any API response, or in /metrics. The one exception is by design: the
 * create and rotate answers show the password just set, once; that password appears nowhere else.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';
import { RawPop3Client } from '../kit/raw-pop3.js';
import { TestUpstream, UPSTREAM_PASSWORD, upstreamEntry } from '../kit/upstream.js';
import { apiClient } from '../unit/admin/api-client.js';

const TOKEN = 'test-admin-token-0123456789';
const WRONG_TOKEN = 'not-the-admin-token-9876543210';
const CONFIG_PASSWORD = 'Cfg-Device-Pass-0001';
const WRONG_UPSTREAM_PASSWORD = 'wrongapppassword';
const GUESSES = ['Wr0ng-guess-pw-77', 'hunter2-hunter2'];
const ROTATED_GIVEN = 'Given-Rotated-Pass-0002';
const b64 = (text: string) => Buffer.from(text).toString('base64');

/** One POP3 conversation over the kit's raw client: the greeting, then one reply line per command. */
async function pop3Session(port: number, commands: (greeting: string) => string[]): Promise<string[]> {
  const { client, greeting } = await RawPop3Client.open(port);
  try {
    const replies = [greeting];
    for (const command of commands(greeting)) replies.push(await client.command(command));
    return replies;
  } finally {
    client.close();
  }
}

describe('secrets in logs, API answers and metrics', () => {
  let gw: TestGateway | undefined;
  let upstream: TestUpstream | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await upstream?.close();
    upstream = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('no password, app password, token, key or AUTH payload appears anywhere after every auth method and failure', { timeout: 60_000 }, async () => {
    dir = await makeTempDir('scanrelay-secrets-');
    upstream = await TestUpstream.start({ mode: 'tls' });
    const ca = await writeCaFile(dir);
    gw = await startTestGateway({
      log: { level: 'debug' },
      smtp: { authLockout: { maxFailures: 1000 } },
      pop3: { enabled: true, host: '127.0.0.1', port: 0 },
      devices: [
        { name: 'cfg-scanner', username: 'cfg-scanner', password: CONFIG_PASSWORD, allowRecipients: ['*@example.org'], upstream: 'gmail-good' },
        { name: 'legacy-copier', auth: 'none', allowFrom: ['127.0.0.1/32'], allowRecipients: ['*@example.org'], upstream: 'gmail-good' },
      ],
      upstreams: [upstreamEntry(upstream, ca, { name: 'gmail-good' }), upstreamEntry(upstream, ca, { name: 'gmail-bad', password: WRONG_UPSTREAM_PASSWORD })],
    });
    const g = gw;
    const up = upstream;
    const api = apiClient(g, 'http', TOKEN);
    const payloads: string[] = []; // AUTH payloads and digests that carry or prove a secret

    // ---- admin API: create and rotate a device (the only answers that may show a password) ----
    const created = await api.call('POST', '/api/devices', { body: { name: 'api-scanner', allowRecipients: ['*@example.org'], upstream: 'gmail-good' } });
    expect(created.status).toBe(201);
    const apiUser: string = created.json.device.username;
    const firstPassword: string = created.json.password;
    const rotated = await api.call('POST', '/api/devices/api-scanner/rotate-password', { body: {} });
    const secondPassword: string = rotated.json.password;
    const rotatedAgain = await api.call('POST', '/api/devices/api-scanner/rotate-password', { body: { password: ROTATED_GIVEN } });
    expect(rotatedAgain.status).toBe(200);
    const oneTimeAnswers = api.transcript.length; // transcript entries 0..2 are the intended one-time displays
    expect(new Set([firstPassword, secondPassword, ROTATED_GIVEN]).size).toBe(3);

    // ---- SMTP AUTH: every mechanism, right and wrong, raw so every payload is known ----
    const smtp = async () => {
      const { client, greeting } = await RawSmtpClient.open(g.smtpPort);
      expect(greeting.code).toBe(220);
      await client.command('EHLO secrets.test');
      return client;
    };
    const login = async (user: string, password: string, mechanism: 'PLAIN' | 'LOGIN' | 'CRAM-MD5', expected: number) => {
      const client = await smtp();
      try {
        let code: number;
        if (mechanism === 'PLAIN') {
          const payload = plainAuth(user, password);
          payloads.push(payload);
          code = (await client.command(`AUTH PLAIN ${payload}`)).code;
        } else if (mechanism === 'LOGIN') {
          payloads.push(b64(password));
          await client.command('AUTH LOGIN');
          await client.command(b64(user));
          code = (await client.command(b64(password))).code;
        } else {
          const challenge = await client.command('AUTH CRAM-MD5');
          const digest = createHmac('md5', password).update(Buffer.from(challenge.text, 'base64')).digest('hex');
          payloads.push(digest, b64(`${user} ${digest}`));
          code = (await client.command(b64(`${user} ${digest}`))).code;
        }
        expect(code, `${mechanism} ${user}`).toBe(expected);
        if (code === 235) {
          expect((await client.command('MAIL FROM:<printer@example.org>')).code).toBe(250);
          expect((await client.command('RCPT TO:<desk@example.org>')).code).toBe(250);
          expect((await client.command('DATA')).code).toBe(354);
          client.write(`Subject: ${mechanism} ${user}\r\n\r\nscan\r\n.\r\n`);
          expect((await client.read()).code).toBe(250);
        }
      } finally {
        client.close();
      }
    };
    for (const mechanism of ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const) {
      await login('cfg-scanner', CONFIG_PASSWORD, mechanism, 235);
      for (const guess of GUESSES) await login('cfg-scanner', guess, mechanism, 535);
      await login(apiUser, ROTATED_GIVEN, mechanism, 235);
      await login(apiUser, firstPassword, mechanism, 535); // rotated away
      await login(apiUser, secondPassword, mechanism, 535);
    }

    // ---- a device known by its address: no AUTH at all ----
    const byAddress = await smtp();
    expect((await byAddress.command('MAIL FROM:<copier@example.org>')).code).toBe(250);
    expect((await byAddress.command('RCPT TO:<desk@example.org>')).code).toBe(250);
    expect((await byAddress.command('DATA')).code).toBe(354);
    byAddress.write('Subject: by address\r\n\r\nscan\r\n.\r\n');
    expect((await byAddress.read()).code).toBe(250);
    byAddress.close();

    // ---- POP3: USER/PASS and APOP, right and wrong ----
    const pop3Port = g.addresses.pop3!.port;
    const timestampOf = (greeting: string) => /<[^>]+>/.exec(greeting)![0];
    const apop = (greeting: string, secret: string) =>
      createHash('md5')
        .update(timestampOf(greeting) + secret)
        .digest('hex');
    const popRuns: Array<[string, (greeting: string) => string[], RegExp]> = [
      ['USER/PASS right', () => ['USER cfg-scanner', `PASS ${CONFIG_PASSWORD}`], /^\+OK maildrop/],
      ['USER/PASS wrong', () => ['USER cfg-scanner', `PASS ${GUESSES[0]}`], /^-ERR/],
      ['USER/PASS api device', () => [`USER ${apiUser}`, `PASS ${ROTATED_GIVEN}`], /^\+OK maildrop/],
      [
        'APOP right',
        (greeting) => {
          const digest = apop(greeting, CONFIG_PASSWORD);
          payloads.push(digest);
          return [`APOP cfg-scanner ${digest}`];
        },
        /^\+OK maildrop/,
      ],
      ['APOP wrong', (greeting) => [`APOP cfg-scanner ${apop(greeting, GUESSES[1])}`], /^-ERR/],
      [
        'APOP api device',
        (greeting) => {
          const digest = apop(greeting, ROTATED_GIVEN);
          payloads.push(digest);
          return [`APOP ${apiUser} ${digest}`];
        },
        /^\+OK maildrop/,
      ],
    ];
    for (const [name, commands, expected] of popRuns) {
      const replies = await pop3Session(pop3Port, (greeting) => [...commands(greeting), 'QUIT']);
      expect(replies.at(-2), name).toMatch(expected);
    }

    // ---- delivery through the upstream, and upstream checks with the right and a wrong app password ----
    await waitFor(() => g.gateway.queue.stats().counts.delivered >= 7, { what: 'deliveries through gmail-good', timeoutMs: 20_000 });
    expect(up.auths.some((a) => a.ok)).toBe(true);
    expect((await api.call('POST', '/api/upstreams/gmail-good/verify')).json).toMatchObject({ ok: true });
    const refused = await api.call('POST', '/api/upstreams/gmail-bad/verify');
    expect(refused.json).toMatchObject({ ok: false, error: { responseCode: 535 } });
    expect((await api.call('POST', '/api/upstreams/gmail-good/test', { body: { to: 'it@example.org' } })).json).toMatchObject({ ok: true });

    // ---- everything else the API shows, and calls with a wrong token ----
    const delivered = g.gateway.queue.list({ state: 'delivered' }).items[0];
    for (const url of [
      '/api/devices',
      '/api/devices/api-scanner',
      '/api/devices/cfg-scanner',
      '/api/upstreams',
      '/api/upstreams/gmail-bad',
      '/api/messages',
      `/api/messages/${delivered.id}`,
      '/api/queue/stats',
      '/api/lockouts',
      '/openapi.json',
      '/healthz',
      '/readyz',
    ]) {
      expect((await api.call('GET', url)).status, url).toBe(200);
    }
    expect((await api.call('GET', '/api/devices', { token: WRONG_TOKEN })).status).toBe(401);
    expect((await api.call('GET', '/api/devices', { authorization: `Basic ${b64(`admin:${WRONG_TOKEN}`)}` })).status).toBe(401);
    expect(
      (await api.call('POST', '/api/devices/api-scanner/rotate-password', { token: WRONG_TOKEN, body: { password: 'Attempted-By-Stranger-1' } })).status,
    ).toBe(401);
    const metrics = (await api.call('GET', '/metrics', { token: null })).text;
    expect(metrics).toContain('scanrelay_smtp_auth_attempts_total');

    // ---- the checks ----
    const secretKey = (await readFile(join(g.dataDir, 'secret.key'), 'utf8')).trim();
    const secrets: Record<string, string> = {
      'config device password': CONFIG_PASSWORD,
      'first API password': firstPassword,
      'second API password': secondPassword,
      'current API password': ROTATED_GIVEN,
      'upstream app password': UPSTREAM_PASSWORD,
      'wrong upstream app password': WRONG_UPSTREAM_PASSWORD,
      'admin token': TOKEN,
      'wrong admin token': WRONG_TOKEN,
      'device secret key': secretKey,
      ...Object.fromEntries(GUESSES.map((guess, i) => [`guessed password ${i + 1}`, guess])),
      ...Object.fromEntries(payloads.map((payload, i) => [`AUTH payload or digest ${i + 1}`, payload])),
    };
    const logs = g.logs.join('\n');
    const answers = api.transcript.slice(oneTimeAnswers).join('\n');
    expect(logs).toContain('smtp.auth.failed');
    expect(logs).toContain('pop3.auth.succeeded');
    expect(logs).toContain('delivery.delivered');
    const leaks = Object.entries(secrets).flatMap(([name, value]) => [
      ...(logs.includes(value) ? [`${name} in the logs`] : []),
      ...(answers.includes(value) ? [`${name} in an API answer`] : []),
      ...(metrics.includes(value) ? [`${name} in /metrics`] : []),
    ]);
    expect(leaks).toEqual([]);

    // The one-time answers show exactly the password they set, and no other secret.
    const [createAnswer, rotateAnswer, rotateGivenAnswer] = api.transcript.slice(0, oneTimeAnswers);
    expect(createAnswer).toContain(firstPassword);
    expect(rotateAnswer).toContain(secondPassword);
    expect(rotateGivenAnswer).toContain(ROTATED_GIVEN);
    for (const [answer, own] of [
      [createAnswer, firstPassword],
      [rotateAnswer, secondPassword],
      [rotateGivenAnswer, ROTATED_GIVEN],
    ]) {
      const others = Object.entries(secrets)
        .filter(([, value]) => value !== own && answer.includes(value))
        .map(([name]) => name);
      expect(others).toEqual([]);
    }
  });
});
