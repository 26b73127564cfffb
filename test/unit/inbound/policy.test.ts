/** The pure SMTP stage checks and the login recorder's decision, over a real DeviceRegistry. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SMTPServerAuthentication } from 'smtp-server';
import { DeviceRegistry, hashPassword } from '../../../src/devices/index.js';
import type { DeviceConfig } from '../../../src/config/index.js';
import { checkMailFrom, checkRecipient, identifySender } from '../../../src/inbound/policy.js';
import { LockoutState, LoginRecorder } from '../../../src/inbound/index.js';
import { GatewayEventBus, type LoginAttempt } from '../../../src/shared/events.js';
import { replies } from '../../../src/inbound/replies.js';

const device = (extra: Partial<DeviceConfig> & { name: string }): DeviceConfig => ({
  auth: 'password',
  allowFrom: [],
  allowRecipients: ['*@berkeley.edu'],
  maxMessageSize: 10_000,
  enabled: true,
  ...extra,
});

function plainLike(method: 'PLAIN' | 'LOGIN', username: string, password: string): SMTPServerAuthentication {
  return { method, username, password, validatePassword: () => false } as unknown as SMTPServerAuthentication;
}

function cram(username: string, key: string): SMTPServerAuthentication {
  const challenge = '<1234.5678@scanrelay>';
  const response = createHmac('md5', key).update(challenge).digest('hex');
  return {
    method: 'CRAM-MD5',
    username,
    challenge,
    challengeResponse: response,
    validatePassword: (secret: string) => createHmac('md5', secret).update(challenge).digest('hex') === response,
  } as unknown as SMTPServerAuthentication;
}

describe('inbound policy', () => {
  let dataDir: string;
  let devices: DeviceRegistry;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-policy-'));
    devices = new DeviceRegistry({
      dataDir,
      secretKey: 'policy-test-secret-key-0123456789',
      limits: { smtpMaxMessageSize: 25_000_000, upstreams: new Map() },
      configDevices: [
        device({ name: 'scanner', username: 'scanner', password: 'plain-pw-1', allowFrom: ['10.20.0.0/16'] }),
        device({ name: 'hashed', username: 'hashed', passwordHash: hashPassword('hashed-pw-2') }),
        device({ name: 'off', username: 'off', password: 'off-pw-3', enabled: false }),
        device({ name: 'copier', auth: 'none', allowFrom: ['10.20.5.17/32'] }),
        device({ name: 'strict', username: 'strict', password: 'strict-pw-4', allowSenders: ['scans@berkeley.edu'] }),
      ],
    });
    await devices.open();
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('LoginRecorder', () => {
    const events = new GatewayEventBus();
    const attempts: LoginAttempt[] = [];
    events.on('login.attempted', (a) => attempts.push(a));
    const policy = {
      maxFailures: 1000,
      windowMs: 60_000,
      durationMs: 60_000,
      maxFailuresPerAddress: 1000,
      maxFailuresPerUsername: 1000,
      usernameWindowMs: 60_000,
      usernameDurationMs: 60_000,
    };
    const recorder = () => new LoginRecorder({ devices, lockout: new LockoutState(policy), events, failureDelayMs: () => 0 });
    const login = (auth: SMTPServerAuthentication, remoteAddress: string) =>
      recorder().attempt({
        protocol: 'smtp',
        sessionId: 's1',
        remoteAddress,
        method: auth.method,
        username: auth.username ?? '',
        proof:
          auth.method === 'CRAM-MD5'
            ? { kind: 'challenge', matches: (secret) => auth.validatePassword(secret) }
            : { kind: 'password', password: auth.password ?? '' },
      });

    it('accepts the right password with each mechanism from an allowed address', async () => {
      expect(await login(plainLike('PLAIN', 'scanner', 'plain-pw-1'), '10.20.1.1')).toMatchObject({ ok: true, device: { name: 'scanner' } });
      expect(await login(plainLike('LOGIN', 'Scanner', 'plain-pw-1'), '10.20.1.1')).toMatchObject({ ok: true });
      expect(await login(cram('scanner', 'plain-pw-1'), '10.20.1.1')).toMatchObject({ ok: true });
      expect(await login(plainLike('PLAIN', 'hashed', 'hashed-pw-2'), '192.0.2.1')).toMatchObject({ ok: true });
    });

    it('refuses every guess alike and keeps the true reason for the event, never the password', async () => {
      const cases: Array<[SMTPServerAuthentication, string, string, string]> = [
        [plainLike('PLAIN', 'scanner', 'wrong'), '10.20.1.1', 'bad-password', 'invalid'],
        [cram('scanner', 'wrong'), '10.20.1.1', 'bad-password', 'invalid'],
        [plainLike('PLAIN', 'nobody', 'plain-pw-1'), '10.20.1.1', 'unknown-user', 'invalid'],
        [plainLike('PLAIN', '', ''), '10.20.1.1', 'unknown-user', 'invalid'],
        [cram('hashed', 'hashed-pw-2'), '192.0.2.1', 'method-unavailable', 'invalid'],
        [plainLike('PLAIN', 'scanner', 'nope'), '192.0.2.1', 'bad-password', 'invalid'],
        // Specific only once the password is right:
        [plainLike('PLAIN', 'off', 'off-pw-3'), '10.20.1.1', 'disabled', 'disabled'],
        [plainLike('PLAIN', 'scanner', 'plain-pw-1'), '192.0.2.1', 'wrong-address', 'wrong-address'],
      ];
      for (const [auth, address, reason, refusal] of cases) {
        attempts.length = 0;
        expect(await login(auth, address)).toMatchObject({ ok: false, reason, refusal });
        expect(attempts).toHaveLength(1);
        expect(attempts[0]).toMatchObject({ ok: false, reason });
        expect(JSON.stringify(attempts[0])).not.toContain('pw-');
      }
    });
  });

  describe('identifySender', () => {
    const noGrant = () => undefined;
    it('prefers the AUTH login, then the pinned address, then a POP3 grant from an allowed address', () => {
      expect(identifySender('scanner', '10.20.5.17', devices, noGrant)).toMatchObject({ device: { name: 'scanner' }, via: 'auth' });
      expect(identifySender(undefined, '10.20.5.17', devices, noGrant)).toMatchObject({ device: { name: 'copier' }, via: 'address' });
      expect(identifySender(undefined, '10.20.5.99', devices, noGrant)).toBeUndefined();
      expect(identifySender(undefined, '10.20.5.99', devices, () => 'scanner')).toMatchObject({ device: { name: 'scanner' }, via: 'pop3' });
      expect(identifySender(undefined, '192.0.2.1', devices, () => 'scanner')).toBeUndefined(); // grant outside allowFrom
      expect(identifySender('removed-device', '10.20.1.1', devices, noGrant)).toBeUndefined();
    });
  });

  describe('checkMailFrom and checkRecipient', () => {
    const identity = () => identifySender('scanner', '10.20.1.1', devices, () => undefined)!;
    const addr = (address: string, args: Record<string, string> | false = false) => ({ address, args }) as never;

    it('wants an identity and a declared SIZE within the device limit', () => {
      expect(checkMailFrom(undefined, addr('a@b.org'), devices)).toBe(replies.authRequired);
      expect(checkMailFrom(identity(), addr('a@b.org'), devices)).toBeUndefined();
      expect(checkMailFrom(identity(), addr('a@b.org', { SIZE: '10000' }), devices)).toBeUndefined();
      expect(checkMailFrom(identity(), addr('a@b.org', { SIZE: '10001' }), devices)?.code).toBe(552);
      const off = { device: devices.require('off'), via: 'auth' as const, method: 'PLAIN' };
      expect(checkMailFrom(off, addr('a@b.org'), devices)?.code).toBe(550);
    });

    it('holds the envelope sender to allowSenders when the device has the list (553), any sender otherwise', () => {
      const strict = { device: devices.require('strict'), via: 'auth' as const, method: 'PLAIN' };
      expect(checkMailFrom(strict, addr('scans@berkeley.edu'), devices)).toBeUndefined();
      expect(checkMailFrom(strict, addr('SCANS@Berkeley.edu'), devices)).toBeUndefined();
      expect(checkMailFrom(strict, addr(''), devices)).toBeUndefined(); // the null sender claims nobody
      const refused = checkMailFrom(strict, addr('ceo@bank.example'), devices);
      expect(refused?.code).toBe(553);
      expect(refused?.text).toMatch(/^5\.7\.1 Sender <ceo@bank\.example> is not allowed for device strict/);
      expect(checkMailFrom(identity(), addr('ceo@bank.example'), devices)).toBeUndefined();
    });

    it('allows only listed recipients and refuses address tricks with 553', () => {
      expect(checkRecipient(undefined, 'x@berkeley.edu', devices)?.code).toBe(530);
      expect(checkRecipient(identity(), 'x@berkeley.edu', devices)).toBeUndefined();
      expect(checkRecipient(identity(), 'x@gmail.com', devices)?.code).toBe(550);
      expect(checkRecipient(identity(), 'x%gmail.com@berkeley.edu', devices)?.code).toBe(553);
    });
  });
});
