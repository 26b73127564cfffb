/**
 * The device rulebook: every rule a device must meet, wherever it is defined (config file or admin API),
 * as field schemas (used by the config schema and the API's request schemas) and one check that both
 * sources run. A device is identified (a password, or a pinned host when auth is none), its limits fit
 * the printer (login 63 characters, password 31), and it is never an open relay.
 *
 * A leaf module: config/schema.ts imports it, so it imports nothing from config.
 *
 * Password length, one rule for both sources: 8 to 31 characters. 31 is what the printer's Password field
 * holds; 8 is the floor the API always had, and file devices now share it: a shorter password can be
 * guessed within the lock-out limits from a handful of addresses, and generated ones are 24 characters.
 */
import { type ArrayOptions, Type } from '@sinclair/typebox';
import { cidrHostBits, type ParsedCidr, parseCidr } from '../shared/cidr.js';
import { parseAddressRule } from './address-patterns.js';

export const DEVICE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
/** Login names the printer can hold: <= 63 chars of [A-Za-z0-9._@-] (WorkCentre 6505DN help). */
export const DEVICE_USERNAME_PATTERN = '^[A-Za-z0-9._@-]{1,63}$';
export const MAX_LOGIN_LENGTH = 63;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 31;
/** Smallest per-device size limit: below this not even a one-line scan notice fits. */
export const MIN_DEVICE_MESSAGE_SIZE = 1024;
/** Largest range an unauthenticated device may be pinned to: 8 addresses (/29 IPv4, /125 IPv6). */
const MAX_UNAUTHENTICATED_HOST_BITS = 3;

const NAME = new RegExp(DEVICE_NAME_PATTERN);
const USERNAME = new RegExp(DEVICE_USERNAME_PATTERN);
const SCRYPT_HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/;

const PATTERN_SYNTAX = 'addresses, *@domain or *@*.domain';

/** Field schemas shared by the config file's device entries and the admin API's device bodies. */
export const DeviceFields = {
  name: Type.String({ pattern: DEVICE_NAME_PATTERN, description: '1-63 chars of [A-Za-z0-9._-], starting with a letter or digit' }),
  username: Type.String({ pattern: DEVICE_USERNAME_PATTERN, description: "1-63 chars of [A-Za-z0-9._@-] (the printer's Login Name limit)" }),
  password: Type.String({
    minLength: MIN_PASSWORD_LENGTH,
    maxLength: MAX_PASSWORD_LENGTH,
    secret: true,
    description: `${MIN_PASSWORD_LENGTH}-${MAX_PASSWORD_LENGTH} characters (the printer's Password field holds ${MAX_PASSWORD_LENGTH})`,
  }),
  allowFrom: (options: ArrayOptions = {}) =>
    Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
      maxItems: 1000,
      description: 'source addresses or CIDR ranges the device may send from (empty = any)',
      ...options,
    }),
  allowRecipients: (options: ArrayOptions = {}) =>
    Type.Array(Type.String({ minLength: 1, maxLength: 320 }), { maxItems: 1000, description: `allowed recipients: ${PATTERN_SYNTAX}`, ...options }),
  allowSenders: (options: ArrayOptions = {}) =>
    Type.Array(Type.String({ minLength: 1, maxLength: 320 }), {
      maxItems: 1000,
      description: `allowed envelope senders (MAIL FROM) and, with fromMode keep, header From addresses: ${PATTERN_SYNTAX}; unset = any`,
      ...options,
    }),
};

/** A device as either source states it (sizes in bytes, secrets in plaintext or as a hash). */
export interface DeviceRuleInput {
  name: string;
  auth: 'password' | 'none';
  username?: string;
  password?: string;
  passwordHash?: string;
  allowFrom?: readonly string[];
  allowRecipients?: readonly string[];
  allowSenders?: readonly string[];
  /** The device's own limit in bytes (before the listener's and upstream's caps). */
  maxMessageSize?: number;
}

export interface DeviceRuleProblem {
  /** Key path relative to the device, e.g. "allowFrom[0]". */
  field: string;
  problem: string;
}

/** Every rule the device breaks (empty when it is safe to run). */
export function checkDevice(device: DeviceRuleInput): DeviceRuleProblem[] {
  const problems: DeviceRuleProblem[] = [];
  const fail = (field: string, problem: string) => problems.push({ field, problem });

  if (!NAME.test(device.name)) fail('name', 'must be 1-63 chars of [A-Za-z0-9._-], starting with a letter or digit');
  if (device.auth === 'password') {
    if (!device.username) fail('username', 'required when auth is password');
    else if (!USERNAME.test(device.username)) fail('username', 'must be 1-63 chars of [A-Za-z0-9._@-] (what the printer can hold)');
    if (device.password === undefined && device.passwordHash === undefined) fail('password', 'required: set password, passwordFile or passwordHash');
    if (device.password !== undefined && device.passwordHash !== undefined) fail('passwordHash', 'set either password or passwordHash, not both');
    if (device.password !== undefined) {
      const problem = passwordProblem(device.password);
      if (problem) fail('password', problem);
    }
    if (device.passwordHash !== undefined && !usableScryptHash(device.passwordHash)) {
      fail('passwordHash', 'not a usable scrypt hash: N must be a power of two >= 2, p >= 1, and 128*N*r at most 256 MiB');
    }
  } else if (device.username !== undefined || device.password !== undefined || device.passwordHash !== undefined) {
    fail('auth', 'auth is none: remove username/password, or set auth: password');
  }

  const allowFrom = device.allowFrom ?? [];
  for (const [index, range] of allowFrom.entries()) {
    let parsed: ParsedCidr;
    try {
      parsed = parseCidr(range);
    } catch (err) {
      fail(`allowFrom[${index}]`, (err as Error).message);
      continue;
    }
    if (device.auth === 'none' && cidrHostBits(parsed) > MAX_UNAUTHENTICATED_HOST_BITS) {
      fail(`allowFrom[${index}]`, `"${range}" is too wide for a device without authentication (at most /29 for IPv4, /125 for IPv6)`);
    }
  }
  if (device.auth === 'none' && allowFrom.length === 0) {
    fail('allowFrom', 'required for a device with auth: none (it is identified by its source address)');
  }

  const allowRecipients = device.allowRecipients ?? [];
  if (allowRecipients.length === 0) fail('allowRecipients', 'required: list the recipients or domains this device may send to (e.g. "*@example.org")');
  checkPatterns('allowRecipients', allowRecipients, fail);
  if (device.allowSenders !== undefined) {
    if (device.allowSenders.length === 0)
      fail('allowSenders', 'an empty list allows no sender at all: list the sender addresses, or leave allowSenders out to allow any');
    checkPatterns('allowSenders', device.allowSenders, fail);
  }

  if (device.maxMessageSize !== undefined && device.maxMessageSize < MIN_DEVICE_MESSAGE_SIZE) fail('maxMessageSize', 'must be at least 1KB');
  return problems;
}

function checkPatterns(field: string, patterns: readonly string[], fail: (field: string, problem: string) => void): void {
  for (const [index, pattern] of patterns.entries()) {
    try {
      parseAddressRule(pattern);
    } catch (err) {
      fail(`${field}[${index}]`, (err as Error).message);
    }
  }
}

export function isValidLogin(login: string): boolean {
  return USERNAME.test(login);
}

/** Why a device password cannot be used, or undefined. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    return `must be ${MIN_PASSWORD_LENGTH}-${MAX_PASSWORD_LENGTH} characters (the printer's Password field holds ${MAX_PASSWORD_LENGTH}; got ${password.length})`;
  }
  return undefined;
}

/** Duplicate names and (case-insensitive) usernames in one list of devices, by index. */
export function checkUniqueDevices(devices: readonly Pick<DeviceRuleInput, 'name' | 'username'>[]): Array<DeviceRuleProblem & { index: number }> {
  const problems: Array<DeviceRuleProblem & { index: number }> = [];
  const names = new Set<string>();
  const usernames = new Set<string>();
  for (const [index, device] of devices.entries()) {
    if (names.has(device.name)) problems.push({ index, field: 'name', problem: `duplicate device name "${device.name}"` });
    names.add(device.name);
    const username = device.username?.toLowerCase();
    if (username === undefined) continue;
    if (usernames.has(username)) problems.push({ index, field: 'username', problem: `duplicate username "${device.username}"` });
    usernames.add(username);
  }
  return problems;
}

/** Patterns as they are stored and matched: trimmed, lower case. */
export function normalizePatterns(patterns: readonly string[]): string[] {
  return patterns.map((p) => p.trim().toLowerCase());
}

/** N, r and p of a scrypt$N$r$p$salt$hash string that node:crypto can verify within bounded memory. */
export function usableScryptHash(hash: string): boolean {
  if (!SCRYPT_HASH.test(hash)) return false;
  const [n, r, p] = hash.split('$').slice(1, 4).map(Number);
  return Number.isSafeInteger(n) && n >= 2 && (n & (n - 1)) === 0 && r >= 1 && p >= 1 && 128 * n * r <= 256 * 1024 ** 2;
}

/**
 * Bytes the gateway may add in front of a message on its way out (Received, and Message-ID/Date/From
 * rewrite when needed). A device's limit leaves room for them, so a scan that fits the device also fits
 * its upstream and the printer hears 552 at once rather than a failure later.
 */
export const OUTGOING_HEADER_ALLOWANCE = 2048;

/** The size a device may send: its own limit, the listener's, and its upstream's minus the header allowance. */
export function deviceSizeLimit(own: number | undefined, smtpMax: number, upstreamMax: number | undefined): number {
  return Math.min(own ?? Infinity, smtpMax, upstreamMax === undefined ? Infinity : Math.max(1024, upstreamMax - OUTGOING_HEADER_ALLOWANCE));
}
