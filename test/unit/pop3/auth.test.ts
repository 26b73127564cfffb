import { describe, expect, it } from 'vitest';
import { DeviceRegistry, hashPassword } from '../../../src/devices/index.js';
import type { DeviceConfig } from '../../../src/config/index.js';
import { decidePop3Login } from '../../../src/pop3/auth.js';
import { apopDigest, pop3Replies } from '../../../src/pop3/index.js';

const TS = '<1.2.3@scanrelay>';
const base: DeviceConfig = {
  name: 'p',
  auth: 'password',
  username: 'wc6505',
  password: 'secret-1',
  allowFrom: ['10.1.0.0/16'],
  allowRecipients: ['*@example.org'],
  maxMessageSize: 1e6,
  enabled: true,
};

function registry(devices: DeviceConfig[]): DeviceRegistry {
  // Only config devices: the registry is never opened, so nothing touches the (unused) dataDir.
  return new DeviceRegistry({
    dataDir: '/nonexistent',
    secretKey: 'k'.repeat(43),
    configDevices: devices,
    limits: { smtpMaxMessageSize: 1e6, upstreams: new Map() },
  });
}

describe('decidePop3Login', () => {
  const devices = registry([
    base,
    { ...base, name: 'hashed', username: 'hashed', password: undefined, passwordHash: hashPassword('secret-2') },
    { ...base, name: 'off', username: 'off', enabled: false },
    { ...base, name: 'open', username: 'open', auth: 'none', password: undefined },
  ]);

  it('accepts USER/PASS and APOP for a device with a stored secret, login case-insensitively', () => {
    expect(decidePop3Login({ method: 'USER', username: 'WC6505', password: 'secret-1' }, TS, '10.1.2.3', devices)).toMatchObject({
      ok: true,
      device: { name: 'p' },
    });
    expect(decidePop3Login({ method: 'APOP', username: 'wc6505', digest: apopDigest(TS, 'secret-1') }, TS, '10.1.2.3', devices)).toMatchObject({ ok: true });
  });

  it('says why a login fails, without telling the client more than "authentication failed"', () => {
    const cases: Array<[Parameters<typeof decidePop3Login>[0], string, string]> = [
      [{ method: 'USER', username: 'nobody', password: 'x' }, '10.1.2.3', 'unknown login'],
      [{ method: 'USER', username: 'open', password: 'x' }, '10.1.2.3', 'unknown login'],
      [{ method: 'USER', username: 'wc6505', password: 'secret-X' }, '10.1.2.3', 'wrong password'],
      [{ method: 'APOP', username: 'wc6505', digest: apopDigest('<other@x>', 'secret-1') }, '10.1.2.3', 'wrong password'],
      [{ method: 'USER', username: 'off', password: 'secret-1' }, '10.1.2.3', 'device disabled'],
      [{ method: 'USER', username: 'wc6505', password: 'secret-1' }, '192.168.1.1', 'source address not in allowFrom'],
    ];
    for (const [login, address, reason] of cases) {
      expect(decidePop3Login(login, TS, address, devices)).toMatchObject({ ok: false, reason, reply: pop3Replies.authFailed });
    }
  });

  it('checks a scrypt-only device with USER/PASS and refuses APOP for it', () => {
    expect(decidePop3Login({ method: 'USER', username: 'hashed', password: 'secret-2' }, TS, '10.1.2.3', devices)).toMatchObject({ ok: true });
    expect(decidePop3Login({ method: 'APOP', username: 'hashed', digest: apopDigest(TS, 'secret-2') }, TS, '10.1.2.3', devices)).toMatchObject({
      ok: false,
      reply: pop3Replies.apopUnavailable,
    });
  });
});
