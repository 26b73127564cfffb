import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { buildTestConfig, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { RawPop3Client } from '../kit/raw-pop3.js';
import { RawSmtpClient } from '../kit/raw-smtp.js';
import { useGatewayScope } from '../kit/inbound-scope.js';
import { hashPassword } from '../../src/devices/index.js';
import { pop3Replies } from '../../src/pop3/index.js';

const PASSWORD = 'Pop3-secret-0123456789';
const PRINTER = { name: 'printer-2f', username: 'wc6505', password: PASSWORD, allowFrom: ['127.0.0.1'], allowRecipients: ['*@example.org'] };

function apopDigest(greeting: string, secret: string): string {
  const timestamp = /<[^>]+>/.exec(greeting)?.[0];
  if (!timestamp) throw new Error(`no APOP timestamp in ${greeting}`);
  return createHash('md5')
    .update(timestamp + secret)
    .digest('hex');
}

/** MAIL FROM without AUTH; returns the reply code (250 when the address is granted). */
async function mailFromWithoutAuth(port: number): Promise<{ client: RawSmtpClient; code: number; text: string }> {
  const { client } = await RawSmtpClient.open(port);
  await client.command('EHLO wc6505');
  const reply = await client.command('MAIL FROM:<scanner@example.org>');
  return { client, code: reply.code, text: reply.text };
}

async function sendWithoutAuth(port: number, subject: string): Promise<string> {
  const { client, code } = await mailFromWithoutAuth(port);
  try {
    expect(code).toBe(250);
    expect((await client.command('RCPT TO:<inbox@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    const done = await client.command(`From: scanner@example.org\r\nSubject: ${subject}\r\n\r\nscan\r\n.`);
    expect(done.code).toBe(250);
    const id = /queued as (\w+)/.exec(done.text)?.[1];
    expect(id).toBeDefined();
    return id!;
  } finally {
    client.close();
  }
}

describe('POP3 listener for POP-before-SMTP', () => {
  const scope = useGatewayScope({ admin: { enabled: true } });

  async function start(extra: RawConfig = {}, devices: unknown[] = [PRINTER]): Promise<TestGateway> {
    const pop3Extra = (extra.pop3 ?? {}) as RawConfig;
    const gw = await scope.start({ ...extra, devices, pop3: { enabled: true, host: '127.0.0.1', port: 0, ...pop3Extra } });
    expect(gw.addresses.pop3?.port).toBeGreaterThan(0);
    return gw;
  }

  async function pop3(): Promise<{ client: RawPop3Client; greeting: string }> {
    const opened = await RawPop3Client.open(scope.gw.addresses.pop3!.port);
    scope.track(opened.client);
    return opened;
  }

  it('authorises the address for SMTP without AUTH after USER/PASS, and answers for an empty maildrop', async () => {
    await start();
    // Before any POP3 login the printer cannot send without AUTH.
    const before = await mailFromWithoutAuth(scope.gw.smtpPort);
    scope.track(before.client);
    expect(before.code).toBe(530);

    const { client, greeting } = await pop3();
    expect(greeting).toMatch(/^\+OK scanrelay POP3 ready <[^<>@\s]+@scanrelay>$/);
    expect(await client.multiline('CAPA')).toEqual(['+OK capability list follows', 'USER', 'UIDL', 'TOP', '.']);
    expect(await client.command('STAT')).toMatch(/^-ERR/); // not logged in yet
    expect(await client.command('user wc6505')).toBe('+OK send PASS'); // keywords are case-insensitive
    expect(await client.command(`PASS ${PASSWORD}`)).toBe('+OK maildrop has 0 messages (0 octets)');
    expect(await client.command('STAT')).toBe('+OK 0 0');
    expect(await client.multiline('LIST')).toEqual(['+OK 0 messages (0 octets)', '.']);
    expect(await client.multiline('UIDL')).toEqual(['+OK unique-id listing follows', '.']);
    expect(await client.command('LIST 1')).toMatch(/^-ERR no such message/);
    expect(await client.command('UIDL 1')).toMatch(/^-ERR no such message/);
    expect(await client.command('RETR 1')).toMatch(/^-ERR no such message/);
    expect(await client.command('DELE 1')).toMatch(/^-ERR no such message/);
    expect(await client.command('TOP 1 0')).toMatch(/^-ERR no such message/);
    expect(await client.command('NOOP')).toBe('+OK');
    expect(await client.command('RSET')).toBe('+OK maildrop has 0 messages (0 octets)');
    expect(await client.command('STLS')).toMatch(/^-ERR/);
    expect(await client.command('AUTH PLAIN')).toMatch(/^-ERR/);
    expect(await client.command('QUIT')).toBe('+OK scanrelay POP3 signing off');
    await client.waitClosed();

    const id = await sendWithoutAuth(scope.gw.smtpPort, 'after pop3');
    const message = scope.gw.gateway.queue.require(id);
    expect(message.device).toBe('printer-2f');
    expect(message.client.authMethod).toBe('pop-before-smtp');
    expect(scope.gw.gateway.deviceStatus.get('printer-2f').lastSeenAddress).toBe('127.0.0.1');
    const metrics = await scope.gw.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/scanrelay_pop3_logins_total\{method="USER",result="success"\} 1/);
    expect(metrics).toMatch(/scanrelay_smtp_connections_total\{listener="pop3"\} 1/);
    expect(scope.gw.logs.join('\n')).not.toContain(PASSWORD);
  });

  it('greets with a different APOP timestamp each time and accepts the RFC 1939 digest', async () => {
    await start();
    const first = await pop3();
    const second = await pop3();
    expect(first.greeting).not.toBe(second.greeting);

    expect(await first.client.command(`APOP wc6505 ${apopDigest(second.greeting, PASSWORD)}`)).toBe('-ERR authentication failed'); // digest of another greeting
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBeUndefined();
    expect(await first.client.command(`APOP wc6505 ${apopDigest(first.greeting, PASSWORD)}`)).toBe('+OK maildrop has 0 messages (0 octets)');
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBe('printer-2f');
    expect(await first.client.command('QUIT')).toMatch(/^\+OK/);
    await sendWithoutAuth(scope.gw.smtpPort, 'after apop');
    const metrics = await scope.gw.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/scanrelay_pop3_logins_total\{method="APOP",result="success"\} 1/);
    expect(metrics).toMatch(/scanrelay_pop3_logins_total\{method="APOP",result="failure"\} 1/);
    // The admin API shows how the device got in and the live grant.
    const response = await scope.gw.gateway.admin!.inject({
      method: 'GET',
      url: '/api/devices/printer-2f',
      headers: { authorization: 'Bearer test-admin-token-0123456789' },
    });
    expect(response.statusCode).toBe(200);
    const status = response.json().status;
    expect(status.lastAuthMethod).toBe('POP3-APOP');
    expect(status.popGrant.address).toBe('127.0.0.1');
    expect(Date.parse(status.popGrant.expiresAt)).toBeGreaterThan(Date.now());
  });

  it('refuses APOP for a device stored only as a hash, but USER/PASS works for it', async () => {
    const hashed = { name: 'hashed', username: 'hashed-login', passwordHash: hashPassword(PASSWORD), allowRecipients: ['*@example.org'] };
    await start({}, [hashed]);
    const { client, greeting } = await pop3();
    // Like any failed login on the wire (the log says why): the reply must not tell hash-only logins apart.
    expect(await client.command(`APOP hashed-login ${apopDigest(greeting, PASSWORD)}`)).toBe(pop3Replies.authFailed);
    expect(scope.gw.logs.some((l) => l.includes('pop3.auth.failed') && l.includes('method-unavailable'))).toBe(true);
    expect(await client.command('USER hashed-login')).toBe('+OK send PASS');
    expect(await client.command(`PASS ${PASSWORD}`)).toMatch(/^\+OK/);
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBe('hashed');
  });

  it('closes after three bad logins and locks the address for SMTP too (shared lock-out)', async () => {
    // No allowFrom: 127.0.0.1 is not the device's home, so the address-wide lock applies to it too.
    await start({ smtp: { authLockout: { maxFailures: 4, maxFailuresPerAddress: 4, window: '10m', duration: '10m' } } }, [{ ...PRINTER, allowFrom: [] }]);
    const { client } = await pop3();
    for (let i = 0; i < 2; i++) {
      expect(await client.command('USER wc6505')).toBe('+OK send PASS');
      expect(await client.command('PASS wrong-password')).toBe('-ERR authentication failed');
    }
    expect(await client.command('USER nobody')).toBe('+OK send PASS'); // unknown logins look the same on the wire
    expect(await client.command('PASS wrong-password')).toMatch(/^-ERR authentication failed, too many failures/);
    await client.waitClosed();

    // Fourth failure (new connection) reaches smtp.authLockout.maxFailuresPerAddress; it is answered like
    // every other failure, and what comes after it is refused.
    const again = await pop3();
    expect(await again.client.command('USER wc6505')).toBe('+OK send PASS');
    expect(await again.client.command('PASS still-wrong')).toBe(pop3Replies.authFailed);
    expect(await again.client.command('USER wc6505')).toBe('+OK send PASS');
    expect(await again.client.command(`PASS ${PASSWORD}`)).toBe(pop3Replies.locked);
    await again.client.waitClosed();

    // Even the right password is refused now, on POP3 and on SMTP.
    const locked = await pop3();
    expect(locked.greeting).toMatch(/^-ERR too many failed logins/);
    await locked.client.waitClosed();
    expect(await scope.gw.gateway.metrics.registry.metrics()).toMatch(/scanrelay_smtp_connections_refused_total\{reason="locked-out"\} 1\b/);
    const smtp = await RawSmtpClient.open(scope.gw.smtpPort);
    scope.track(smtp.client);
    expect(smtp.greeting.code).toBe(421);
    expect(scope.gw.gateway.lockout.lockedUntilFor('127.0.0.1')).toBeDefined();
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBeUndefined();

    const status = scope.gw.gateway.deviceStatus.get('printer-2f');
    expect(status.recentAuthFailures).toBe(4); // the 'nobody' attempt names no device; the locked one does
    expect(status.lastError?.message).toMatch(/authentication failed: (bad-password|locked-out)/);
    expect(scope.gw.logs.join('\n')).not.toContain('wrong-password');
  });

  it('refuses a disabled device and an address outside allowFrom', async () => {
    await start({}, [
      { ...PRINTER, name: 'off', username: 'off-login', enabled: false },
      { ...PRINTER, name: 'elsewhere', username: 'elsewhere-login', allowFrom: ['10.9.9.0/24'] },
    ]);
    const { client } = await pop3();
    // A guess hears the usual refusal; only the right password is told what else is wrong.
    expect(await client.command('USER off-login')).toBe('+OK send PASS');
    expect(await client.command('PASS a-wrong-guess')).toBe(pop3Replies.authFailed);
    expect(await client.command('USER off-login')).toBe('+OK send PASS');
    expect(await client.command(`PASS ${PASSWORD}`)).toBe(pop3Replies.disabled);
    const second = await pop3();
    expect(await second.client.command('USER elsewhere-login')).toBe('+OK send PASS');
    expect(await second.client.command(`PASS ${PASSWORD}`)).toBe(pop3Replies.wrongAddress);
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBeUndefined();
    const failures = scope.gw.logs.filter((l) => l.includes('pop3.auth.failed')).join('\n');
    expect(failures).toContain('"reason":"disabled"');
    expect(failures).toContain('"reason":"wrong-address"');
  });

  it('ends the grant of a device disabled or deleted through the API, and of a file device a reload disables', async () => {
    await start();
    const login = async (username: string, password: string) => {
      const { client } = await pop3();
      await client.command(`USER ${username}`);
      expect(await client.command(`PASS ${password}`)).toMatch(/^\+OK/);
    };
    const api = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
      scope.gw.gateway.admin!.inject({ method, url, headers: { authorization: 'Bearer test-admin-token-0123456789' }, payload });
    const created = await api('POST', '/api/devices', { name: 'copier-3f', allowFrom: ['127.0.0.1'], allowRecipients: ['*@example.org'] });
    expect(created.statusCode).toBe(201);
    const copier = created.json() as { device: { username: string }; password: string };
    const grantOf = () => scope.gw.gateway.popGrants.lookup('127.0.0.1');

    await login(copier.device.username, copier.password);
    expect(grantOf()).toBe('copier-3f');
    expect((await api('POST', '/api/devices/copier-3f/disable')).statusCode).toBe(200);
    expect(grantOf()).toBeUndefined();
    expect((await api('POST', '/api/devices/copier-3f/enable')).statusCode).toBe(200);
    await login(copier.device.username, copier.password);
    expect(grantOf()).toBe('copier-3f');
    expect((await api('DELETE', '/api/devices/copier-3f')).statusCode).toBe(204);
    expect(grantOf()).toBeUndefined();

    await login('wc6505', PASSWORD);
    expect(grantOf()).toBe('printer-2f');
    const pop3Config = { enabled: true, host: '127.0.0.1', port: 0 };
    await scope.gw.gateway.reload(buildTestConfig(scope.gw.dataDir, { devices: [{ ...PRINTER, enabled: false }], pop3: pop3Config }));
    expect(grantOf()).toBeUndefined();
  });

  it('stops authorising the address when the window ends', async () => {
    await start({ pop3: { authWindow: '1s' } });
    const { client } = await pop3();
    await client.command('USER wc6505');
    expect(await client.command(`PASS ${PASSWORD}`)).toMatch(/^\+OK/);
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBe('printer-2f');
    await waitFor(() => scope.gw.gateway.popGrants.lookup('127.0.0.1') === undefined, { timeoutMs: 5000, what: 'the POP3 grant to expire' });
    const after = await mailFromWithoutAuth(scope.gw.smtpPort);
    scope.track(after.client);
    expect(after.code).toBe(530);
    // Says what happened: the POP3 login ran out (not "log in with SMTP AUTH", which the printer never does).
    expect(after.text).toMatch(/^5\.7\.0 The POP3 login \(POP before SMTP\) for this address has expired/);
  });

  it('warns when a second device logs in from the same address (shared NAT) and the grant moves to it', async () => {
    await start({}, [PRINTER, { ...PRINTER, name: 'printer-3f', username: 'wc6515' }]);
    for (const login of ['wc6505', 'wc6515']) {
      const { client } = await pop3();
      await client.command(`USER ${login}`);
      expect(await client.command(`PASS ${PASSWORD}`)).toMatch(/^\+OK/);
    }
    expect(scope.gw.gateway.popGrants.lookup('127.0.0.1')).toBe('printer-3f');
    const warning = scope.gw.logs.find((l) => l.includes('pop3.grant.replaced'));
    expect(warning).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ device: 'printer-3f', previous: 'printer-2f' });
    const id = await sendWithoutAuth(scope.gw.smtpPort, 'nat');
    expect(scope.gw.gateway.queue.require(id).device).toBe('printer-3f');
  });

  it('enforces the line limit, the idle timeout and maxClients', async () => {
    await start({ pop3: { socketTimeout: '1s', maxClients: 1 } });
    const { client } = await pop3();
    const refused = await pop3();
    expect(refused.greeting).toBe('-ERR too many connections, try again later');
    await refused.client.waitClosed();

    expect(await client.command(`USER ${'x'.repeat(600)}`)).toBe('-ERR line too long, closing');
    await client.waitClosed();

    const idle = await pop3();
    expect(idle.greeting).toMatch(/^\+OK/);
    expect(await idle.client.readLine()).toBe('-ERR idle timeout, closing');
    await idle.client.waitClosed();
  });

  it('closes after too many unknown commands and tolerates bare LF line ends', async () => {
    await start();
    const { client } = await pop3();
    client.socket.write('USER wc6505\n');
    expect(await client.readLine()).toBe('+OK send PASS');
    for (let i = 0; i < 9; i++) expect(await client.command(`XYZZY ${i}`)).toBe('-ERR unknown command');
    expect(await client.command('XYZZY')).toMatch(/^-ERR too many unknown commands/);
    await client.waitClosed();
  });

  it('is not started when pop3.enabled is false', async () => {
    expect((await scope.start({ devices: [PRINTER] })).addresses.pop3).toBeUndefined();
  });
});
