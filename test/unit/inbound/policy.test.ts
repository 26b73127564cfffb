/** The pure SMTP stage checks and the AUTH decision, over a real DeviceRegistry. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SMTPServerAuthentication } from 'smtp-server';
import { DeviceRegistry, hashPassword } from '../../../src/devices/index.js';
import type { DeviceConfig } from '../../../src/config/index.js';
import { checkMailFrom, checkRecipient, identifySender } from '../../../src/inbound/policy.js';
import { decideAuth } from '../../../src/inbound/auth.js';
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
      ],
    });
    await devices.open();
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('decideAuth', () => {
    it('accepts the right password with each mechanism from an allowed address', () => {
      expect(decideAuth(plainLike('PLAIN', 'scanner', 'plain-pw-1'), '10.20.1.1', devices)).toMatchObject({ ok: true, device: { name: 'scanner' } });
      expect(decideAuth(plainLike('LOGIN', 'Scanner', 'plain-pw-1'), '10.20.1.1', devices)).toMatchObject({ ok: true });
      expect(decideAuth(cram('scanner', 'plain-pw-1'), '10.20.1.1', devices)).toMatchObject({ ok: true });
      expect(decideAuth(plainLike('PLAIN', 'hashed', 'hashed-pw-2'), '192.0.2.1', devices)).toMatchObject({ ok: true });
    });

    it('refuses with the reason kept for the log, never the password', () => {
      const cases: Array<[SMTPServerAuthentication, string, string]> = [
        [plainLike('PLAIN', 'scanner', 'wrong'), '10.20.1.1', 'wrong password'],
        [cram('scanner', 'wrong'), '10.20.1.1', 'wrong password'],
        [plainLike('PLAIN', 'nobody', 'plain-pw-1'), '10.20.1.1', 'unknown login'],
        [plainLike('PLAIN', '', ''), '10.20.1.1', 'unknown login'],
        [plainLike('PLAIN', 'off', 'off-pw-3'), '10.20.1.1', 'device disabled'],
        [plainLike('PLAIN', 'scanner', 'plain-pw-1'), '192.0.2.1', 'source address not in allowFrom'],
        [cram('hashed', 'hashed-pw-2'), '192.0.2.1', 'CRAM-MD5 needs a stored secret, this device has only a hash'],
      ];
      for (const [auth, address, reason] of cases) {
        const decision = decideAuth(auth, address, devices);
        expect(decision).toMatchObject({ ok: false, reason });
        if (!decision.ok) expect(decision.reply.code).toBe(535);
      }
    });

    it('gives the same answer outside allowFrom whatever the password', () => {
      const right = decideAuth(plainLike('PLAIN', 'scanner', 'plain-pw-1'), '192.0.2.1', devices);
      const wrong = decideAuth(plainLike('PLAIN', 'scanner', 'nope'), '192.0.2.1', devices);
      expect(right).toEqual(wrong);
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
      expect(checkMailFrom(undefined, addr('a@b.org'))).toBe(replies.authRequired);
      expect(checkMailFrom(identity(), addr('a@b.org'))).toBeUndefined();
      expect(checkMailFrom(identity(), addr('a@b.org', { SIZE: '10000' }))).toBeUndefined();
      expect(checkMailFrom(identity(), addr('a@b.org', { SIZE: '10001' }))?.code).toBe(552);
      const off = { device: devices.require('off'), via: 'auth' as const, method: 'PLAIN' };
      expect(checkMailFrom(off, addr('a@b.org'))?.code).toBe(550);
    });

    it('allows only listed recipients and refuses address tricks with 553', () => {
      expect(checkRecipient(undefined, 'x@berkeley.edu', devices)?.code).toBe(530);
      expect(checkRecipient(identity(), 'x@berkeley.edu', devices)).toBeUndefined();
      expect(checkRecipient(identity(), 'x@gmail.com', devices)?.code).toBe(550);
      expect(checkRecipient(identity(), 'x%gmail.com@berkeley.edu', devices)?.code).toBe(553);
    });
  });
});
