/**
 * SMTP AUTH mechanisms (PLAIN, LOGIN, CRAM-MD5) over the device registry. smtp-server runs the SASL
 * exchange; this decides, for a login attempt, which device it is and whether the proof holds.
 */
import type { SMTPServerAuthentication } from 'smtp-server';
import type { Device, DeviceRegistry } from '../devices/index.js';
import { replies, type SmtpReply } from './replies.js';

export type AuthDecision = { ok: true; device: Device } | { ok: false; reply: SmtpReply; reason: string; device?: Device };

export function decideAuth(auth: SMTPServerAuthentication, remoteAddress: string, devices: DeviceRegistry): AuthDecision {
  const username = auth.username ?? '';
  const device = username ? devices.findByUsername(username) : undefined;
  if (device?.auth !== 'password') {
    if (auth.method === 'PLAIN' || auth.method === 'LOGIN') devices.spendPasswordCheckTime(auth.password ?? '');
    return { ok: false, reply: replies.authFailed, reason: 'unknown login' };
  }
  // Checked before the password, so a client outside allowFrom cannot learn whether its guess was right.
  if (!devices.isAllowedFrom(device, remoteAddress)) return { ok: false, reply: replies.authWrongAddress, reason: 'source address not in allowFrom', device };

  let valid: boolean;
  if (auth.method === 'CRAM-MD5') {
    const secret = devices.challengeSecret(device);
    if (secret === undefined)
      return { ok: false, reply: replies.authCramNeedsSecret, reason: 'CRAM-MD5 needs a stored secret, this device has only a hash', device };
    valid = auth.validatePassword(secret);
  } else if (auth.method === 'PLAIN' || auth.method === 'LOGIN') {
    valid = devices.verifyPassword(device, auth.password ?? '');
  } else {
    return { ok: false, reply: replies.authFailed, reason: `mechanism ${auth.method} not supported`, device };
  }
  if (!valid) {
    // Say so when the stored secret is unreadable (secretKey changed): the printer's password is not wrong.
    const reason = devices.undecryptableDevices().includes(device.name)
      ? 'stored password cannot be decrypted (secretKey changed?): rotate the device password'
      : 'wrong password';
    return { ok: false, reply: replies.authFailed, reason, device };
  }
  if (!device.enabled) return { ok: false, reply: replies.authFailed, reason: 'device disabled', device };
  return { ok: true, device };
}
