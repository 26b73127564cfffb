/**
 * Device authentication on the plaintext listener, over real loopback sockets: each mechanism with
 * nodemailer, none-by-IP, and the refusals (530, 535, allowFrom, hash-only CRAM-MD5, lock-out).
 */
import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import type { RawConfig } from '../kit/gateway.js';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';
import { hashPassword } from '../../src/devices/credentials.js';
import { replies } from '../../src/inbound/replies.js';
import { SCANNER_PASSWORD, deviceTransport, legacyCopier, queueIdOf, scannerDevice, type AuthMethod, useGatewayScope } from '../kit/inbound-scope.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('plaintext listener with PLAIN, LOGIN and CRAM-MD5', () => {
  const scope = useGatewayScope();
  const start = (raw: RawConfig) => scope.start(raw);

  async function open(): Promise<RawSmtpClient> {
    const { client, greeting } = await RawSmtpClient.open(scope.gw.smtpPort);
    scope.track(client);
    expect(greeting.code).toBe(220);
    return client;
  }

  it('advertises AUTH PLAIN LOGIN CRAM-MD5, SIZE, 8BITMIME and PIPELINING, and not STARTTLS', async () => {
    await start({ smtp: { maxMessageSize: '20MB' }, devices: [scannerDevice()] });
    const client = await open();
    const ehlo = await client.command('EHLO printer.local');
    expect(ehlo.code).toBe(250);
    const extensions = ehlo.lines.slice(1).map((line) => line.slice(4));
    expect(extensions).toContain('AUTH PLAIN LOGIN CRAM-MD5');
    expect(extensions).toContain('SIZE 20000000');
    expect(extensions).toContain('8BITMIME');
    expect(extensions).toContain('PIPELINING');
    expect(extensions.some((line) => /STARTTLS/i.test(line))).toBe(false);
    // Not advertised and not usable either: an old printer must never end up in a TLS handshake.
    const starttls = await client.command('STARTTLS');
    expect(starttls.code).toBeGreaterThanOrEqual(500);
  });

  it.each<AuthMethod>(['PLAIN', 'LOGIN', 'CRAM-MD5'])('accepts a message after AUTH %s with the device credentials', async (method) => {
    await start({ devices: [scannerDevice()] });
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD, method });
    const info = await transport.sendMail({ from: 'scanner@berkeley.edu', to: 'ops@example.org', subject: `scan via ${method}`, text: 'scan' });
    transport.close();
    const id = queueIdOf(info.response);
    expect(info.response).toMatch(/^250 /);
    const message = scope.gw.gateway.queue.require(id);
    expect(message.device).toBe('warren-2f-scanner');
    expect(message.client.authMethod).toBe(method);
    expect(message.envelope.rcptTo).toEqual(['ops@example.org']);
  });

  it('accepts the login name in any letter case, as printers differ', async () => {
    await start({ devices: [scannerDevice()] });
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'WARREN-2F', pass: SCANNER_PASSWORD, method: 'LOGIN' });
    const info = await transport.sendMail({ from: 'scanner@berkeley.edu', to: 'a@berkeley.edu', text: 'x' });
    transport.close();
    expect(scope.gw.gateway.queue.require(queueIdOf(info.response)).device).toBe('warren-2f-scanner');
  });

  it('accepts an auth: none device by its source address alone', async () => {
    await start({ devices: [legacyCopier()] });
    const transport = deviceTransport(scope.gw.smtpPort);
    const info = await transport.sendMail({ from: 'copier@berkeley.edu', to: 'someone@berkeley.edu', subject: 'scan', text: 'scan' });
    transport.close();
    const message = scope.gw.gateway.queue.require(queueIdOf(info.response));
    expect(message.device).toBe('legacy-copier');
    expect(message.client.authMethod).toBe('none');
    expect(message.client.address).toBe('127.0.0.1');
  });

  it('lets an auth: none device send several messages in one session', async () => {
    await start({ devices: [legacyCopier()] });
    const client = await open();
    await client.command('HELO copier');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      expect((await client.command('MAIL FROM:<copier@berkeley.edu>')).code).toBe(250);
      expect((await client.command('RCPT TO:<a@berkeley.edu>')).code).toBe(250);
      expect((await client.command('RCPT TO:<b@berkeley.edu>')).code).toBe(250);
      expect((await client.command('DATA')).code).toBe(354);
      client.write(`Subject: page ${i}\r\n\r\nscan\r\n.\r\n`);
      ids.push(queueIdOf((await client.read()).text));
    }
    expect(new Set(ids).size).toBe(4);
    expect(scope.gw.gateway.queue.list().total).toBe(4);
  });

  it('answers 530 to an unknown client that sends MAIL FROM without authenticating', async () => {
    // The auth: none device is pinned elsewhere, so 127.0.0.1 is not identified by address.
    await start({ devices: [scannerDevice(), legacyCopier({ allowFrom: ['10.20.5.17/32'] })] });
    const client = await open();
    await client.command('EHLO stranger');
    const mail = await client.command('MAIL FROM:<stranger@example.com>');
    expect(mail.code).toBe(530);
    expect(mail.text).toMatch(/authentication required/i);
    // nodemailer without credentials sees the same refusal
    const transport = deviceTransport(scope.gw.smtpPort);
    await expect(transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' })).rejects.toMatchObject({ responseCode: 530 });
    transport.close();
    expect(scope.gw.gateway.queue.list().total).toBe(0);
  });

  it('answers 535 for a wrong password and keeps the session open for a second AUTH', async () => {
    await start({ devices: [scannerDevice()] });
    const client = await open();
    await client.command('EHLO printer');
    const wrong = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', 'not-the-password')}`);
    expect(wrong.code).toBe(535);
    const unknown = await client.command(`AUTH PLAIN ${plainAuth('nobody', SCANNER_PASSWORD)}`);
    expect(unknown.code).toBe(535);
    const right = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`);
    expect(right.code).toBe(235);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
  });

  it('answers 535 with nodemailer for a wrong password with each mechanism', async () => {
    await start({ devices: [scannerDevice()] });
    for (const method of ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const) {
      const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: 'wrong-password', method });
      await expect(transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' })).rejects.toMatchObject({ code: 'EAUTH', responseCode: 535 });
      transport.close();
    }
    expect(scope.gw.gateway.queue.list().total).toBe(0);
  });

  it('refuses a device outside its allowFrom even with the right password', async () => {
    await start({ devices: [scannerDevice({ allowFrom: ['10.20.0.0/16'] })] });
    const client = await open();
    await client.command('EHLO printer');
    const auth = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`);
    expect(auth.code).toBe(535);
    expect(auth.text).toMatch(/address/i);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(530);
  });

  it('tells a client outside allowFrom so only when its password was right: a guess hears what an unknown login hears', async () => {
    await start({ devices: [scannerDevice({ allowFrom: ['10.20.0.0/16'] })] });
    const client = await open();
    await client.command('EHLO guesser');
    const wrong = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', 'a-wrong-guess')}`);
    const unknown = await client.command(`AUTH PLAIN ${plainAuth('nobody-here', 'a-wrong-guess')}`);
    const right = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`);
    expect(wrong).toEqual({ code: 535, lines: [`535 ${replies.authFailed.text}`], text: replies.authFailed.text });
    expect(unknown).toEqual(wrong);
    expect(right).toMatchObject({ code: 535, text: replies.authWrongAddress.text });
  });

  it('accepts a device pinned to the address it connects from', async () => {
    await start({ devices: [scannerDevice({ allowFrom: ['127.0.0.0/8'] })] });
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD, method: 'CRAM-MD5' });
    const info = await transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' });
    transport.close();
    expect(scope.gw.gateway.queue.get(queueIdOf(info.response))).toBeDefined();
  });

  it('tells a disabled device so (after the password is verified), and a guess that it is invalid', async () => {
    await start({ devices: [scannerDevice({ enabled: false })] });
    const client = await open();
    await client.command('EHLO printer');
    expect(await client.command(`AUTH PLAIN ${plainAuth('warren-2f', 'a-wrong-guess')}`)).toMatchObject({ code: 535, text: replies.authFailed.text });
    const right = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`);
    expect(right).toMatchObject({ code: 535, text: replies.authDisabled.text });
    expect(right.text).toMatch(/disabled on the gateway/);
  });

  describe('device with a scrypt passwordHash', () => {
    const password = 'hashed-device-pw-42';

    it('works with PLAIN and LOGIN and refuses CRAM-MD5 like any failed login (the log says why)', async () => {
      await start({ devices: [scannerDevice({ password: undefined, passwordHash: hashPassword(password) })] });
      for (const method of ['PLAIN', 'LOGIN'] as const) {
        const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: password, method });
        const info = await transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: method });
        transport.close();
        expect(scope.gw.gateway.queue.require(queueIdOf(info.response)).client.authMethod).toBe(method);
      }
      const wrong = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: 'hashed-device-pw-43', method: 'PLAIN' });
      await expect(wrong.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' })).rejects.toMatchObject({ responseCode: 535 });
      wrong.close();

      const client = await open();
      await client.command('EHLO printer');
      const challenge = await client.command('AUTH CRAM-MD5');
      expect(challenge.code).toBe(334);
      const digest = createHmac('md5', password).update(Buffer.from(challenge.text, 'base64')).digest('hex');
      const cram = await client.command(b64(`warren-2f ${digest}`));
      expect(cram).toMatchObject({ code: 535, text: replies.authFailed.text });
      expect(scope.gw.logs.some((line) => line.includes('"smtp.auth.failed"') && line.includes('method-unavailable'))).toBe(true);
    });
  });

  describe('lock-out after repeated failures', () => {
    it('answers 454 to AUTH and 421 to new connections, and counts the lock-out', async () => {
      await start({ smtp: { authLockout: { maxFailures: 3, maxFailuresPerAddress: 3, window: '10m', duration: '15m' } }, devices: [scannerDevice()] });
      const client = await open();
      await client.command('EHLO guesser');
      for (let i = 0; i < 3; i++) {
        expect((await client.command(`AUTH PLAIN ${plainAuth('warren-2f', `guess-${i}`)}`)).code).toBe(535);
      }
      // Locked now: even the right password is answered with a temporary refusal.
      const locked = await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`);
      expect(locked.code).toBe(454);

      const { client: second, greeting } = await RawSmtpClient.open(scope.gw.smtpPort);
      scope.track(second);
      expect(greeting.code).toBe(421);
      await second.waitClosed();

      const metric = await scope.gw.gateway.metrics.registry.getSingleMetricAsString('scanrelay_auth_lockouts_total');
      expect(metric).toMatch(/^scanrelay_auth_lockouts_total 1$/m);
      expect(scope.gw.logs.some((line) => line.includes('"smtp.auth.lockout"'))).toBe(true);
      expect(scope.gw.gateway.lockout.locked().map((l) => [l.scope, l.address])).toEqual([
        ['pair', '127.0.0.1'],
        ['address', '127.0.0.1'],
      ]);
    });

    it('lets the address in again after the lock-out ends', async () => {
      await start({ smtp: { authLockout: { maxFailures: 2, window: '10m', duration: '1s' } }, devices: [scannerDevice()] });
      const client = await open();
      await client.command('EHLO guesser');
      for (let i = 0; i < 2; i++) await client.command(`AUTH PLAIN ${plainAuth('warren-2f', `guess-${i}`)}`);
      expect((await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`)).code).toBe(454);
      expect(scope.gw.gateway.lockout.locked()).toHaveLength(1); // this login from this address only
      const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
      const info = await waitForSend(() => transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' }));
      transport.close();
      expect(info.response).toMatch(/^250 /);
    });
  });

  describe('logs', () => {
    it('never contain a password or an AUTH payload, for successes and failures', async () => {
      await start({ devices: [scannerDevice()] });
      const secrets = [SCANNER_PASSWORD, 'Wr0ng-guess-pw-77'];
      for (const method of ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const) {
        for (const pass of secrets) {
          const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass, method });
          await transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x' }).catch(() => undefined);
          transport.close();
        }
      }
      // Raw exchanges, so the exact payloads are known.
      const payloads: string[] = [];
      const client = await open();
      await client.command('EHLO printer');
      for (const pass of secrets) {
        const plain = plainAuth('warren-2f', pass);
        payloads.push(plain);
        await client.command(`AUTH PLAIN ${plain}`);
        if (pass === SCANNER_PASSWORD) break;
      }
      const second = await open();
      await second.command('EHLO printer');
      await second.command('AUTH LOGIN');
      payloads.push(b64('warren-2f'), b64(secrets[1]));
      await second.command(b64('warren-2f'));
      await second.command(b64(secrets[1]));
      const challenge = await second.command('AUTH CRAM-MD5');
      const digest = createHmac('md5', SCANNER_PASSWORD).update(Buffer.from(challenge.text, 'base64')).digest('hex');
      payloads.push(challenge.text, b64(`warren-2f ${digest}`), digest);
      expect((await second.command(b64(`warren-2f ${digest}`))).code).toBe(235);

      const all = scope.gw.logs.join('\n');
      expect(all).toContain('smtp.auth.succeeded');
      expect(all).toContain('smtp.auth.failed');
      for (const secret of [...secrets, ...payloads.filter((p) => p !== b64('warren-2f'))]) expect(all).not.toContain(secret);
    });
  });
});

/** Retries a send refused while the lock-out lasts (421 at connect, 454 at AUTH) until it goes through. */
async function waitForSend<T>(send: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await send();
    } catch (err) {
      if (Date.now() > deadline || ![421, 454].includes((err as { responseCode?: number }).responseCode ?? 0)) throw err;
      // Retry interval while a real lock-out timer runs out (bounded by the deadline), not a "nothing happened" sleep.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
