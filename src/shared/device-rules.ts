/**
 * The safety rules every device must meet, wherever it is defined (config file or admin API):
 * identified (password, or a pinned host when auth is none) and never an open relay.
 */
import { type ParsedCidr, cidrHostBits, parseCidr } from './cidr.js';
import { parseAddressRule } from './address-rules.js';

export interface DeviceRuleInput {
  auth: 'password' | 'none';
  allowFrom?: readonly string[];
  allowRecipients?: readonly string[];
}

export interface DeviceRuleProblem {
  /** Key path relative to the device, e.g. "allowFrom[0]". */
  field: string;
  problem: string;
}

/** Largest range an unauthenticated device may be pinned to: 8 addresses (/29 IPv4, /125 IPv6). */
const MAX_UNAUTHENTICATED_HOST_BITS = 3;

export function checkDeviceRules(device: DeviceRuleInput): DeviceRuleProblem | undefined {
  const allowFrom = device.allowFrom ?? [];
  for (const [index, range] of allowFrom.entries()) {
    let parsed: ParsedCidr;
    try {
      parsed = parseCidr(range);
    } catch (err) {
      return { field: `allowFrom[${index}]`, problem: (err as Error).message };
    }
    if (device.auth === 'none' && cidrHostBits(parsed) > MAX_UNAUTHENTICATED_HOST_BITS) {
      return { field: `allowFrom[${index}]`, problem: `"${range}" is too wide for a device without authentication (at most /29 for IPv4, /125 for IPv6)` };
    }
  }
  if (device.auth === 'none' && allowFrom.length === 0) {
    return { field: 'allowFrom', problem: 'required for a device with auth: none (it is identified by its source address)' };
  }
  const allowRecipients = device.allowRecipients ?? [];
  if (allowRecipients.length === 0) {
    return { field: 'allowRecipients', problem: 'required: list the recipients or domains this device may send to (e.g. "*@example.org")' };
  }
  for (const [index, rule] of allowRecipients.entries()) {
    try {
      parseAddressRule(rule);
    } catch (err) {
      return { field: `allowRecipients[${index}]`, problem: (err as Error).message };
    }
  }
  return undefined;
}
