/**
 * Pure checks for each SMTP stage: given the facts, accept (undefined) or the reply to send.
 * session.ts calls them from its stage methods.
 */
import type { SMTPServerAddress } from 'smtp-server';
import { addressTrick, type Device, type DeviceRegistry } from '../devices/index.js';
import { replies, type SmtpReply } from './replies.js';

export interface SessionIdentity {
  device: Device;
  /** How the device was identified. */
  via: 'auth' | 'address' | 'pop3';
  method: string;
}

/**
 * Who is sending: the AUTH login if any, else the `auth: none` device pinned to this address, else a
 * POP-before-SMTP grant for this address.
 */
export function identifySender(
  authenticatedDevice: string | undefined,
  remoteAddress: string,
  devices: DeviceRegistry,
  popGrant: (address: string) => string | undefined,
): SessionIdentity | undefined {
  if (authenticatedDevice) {
    const device = devices.get(authenticatedDevice);
    return device && { device, via: 'auth', method: 'smtp-auth' };
  }
  const pinned = devices.findUnauthenticatedByAddress(remoteAddress);
  if (pinned) return { device: pinned, via: 'address', method: 'none' };
  const granted = popGrant(remoteAddress);
  const device = granted ? devices.get(granted) : undefined;
  if (device && devices.isAllowedFrom(device, remoteAddress)) return { device, via: 'pop3', method: 'pop-before-smtp' };
  return undefined;
}

export function checkMailFrom(identity: SessionIdentity | undefined, address: SMTPServerAddress, devices: DeviceRegistry): SmtpReply | undefined {
  if (!identity) return replies.authRequired;
  if (!identity.device.enabled) return replies.deviceDisabled;
  // The null sender claims nobody; with fromMode keep the header From is checked at the end of DATA.
  if (address.address && !devices.isSenderAllowed(identity.device, address.address)) return replies.senderNotAllowed(address.address, identity.device.name);
  const declared = address.args && typeof address.args.SIZE === 'string' ? Number(address.args.SIZE) : undefined;
  if (declared !== undefined && Number.isFinite(declared) && declared > identity.device.maxMessageSize) {
    return replies.declaredTooLarge(identity.device.maxMessageSize);
  }
  return undefined;
}

export function checkRecipient(identity: SessionIdentity | undefined, address: string, devices: DeviceRegistry): SmtpReply | undefined {
  if (!identity) return replies.authRequired;
  const trick = addressTrick(address);
  if (trick) return replies.badRecipient(trick);
  if (!devices.isRecipientAllowed(identity.device, address)) return replies.recipientNotAllowed(address, identity.device.name);
  return undefined;
}
