/**
 * Decides a POP3 login (USER/PASS or APOP) against the device registry, with the same rules as SMTP AUTH
 * (inbound/auth.ts): a known `auth: password` device, the right proof, enabled, and connecting from an
 * address in its allowFrom.
 */
import type { Device, DeviceRegistry } from '../devices/index.js';
import { apopDigestMatches } from './apop.js';
import { pop3Replies, type Pop3Login } from './session.js';

export type Pop3AuthDecision = { ok: true; device: Device } | { ok: false; reply: string; reason: string; device?: Device };

export function decidePop3Login(login: Pop3Login, timestamp: string, remoteAddress: string, devices: DeviceRegistry): Pop3AuthDecision {
  const device = login.username ? devices.findByUsername(login.username) : undefined;
  if (device?.auth !== 'password') {
    if (login.method !== 'APOP') devices.spendPasswordCheckTime(login.password);
    return { ok: false, reply: pop3Replies.authFailed, reason: 'unknown login' };
  }

  let valid: boolean;
  if (login.method === 'APOP') {
    const secret = devices.challengeSecret(device);
    if (secret === undefined)
      return { ok: false, reply: pop3Replies.apopUnavailable, reason: 'APOP needs a stored secret, this device has only a hash', device };
    valid = apopDigestMatches(timestamp, secret, login.digest);
  } else {
    valid = devices.verifyPassword(device, login.password);
  }
  if (!valid) return { ok: false, reply: pop3Replies.authFailed, reason: 'wrong password', device };
  if (!device.enabled) return { ok: false, reply: pop3Replies.authFailed, reason: 'device disabled', device };
  if (!devices.isAllowedFrom(device, remoteAddress)) return { ok: false, reply: pop3Replies.authFailed, reason: 'source address not in allowFrom', device };
  return { ok: true, device };
}
