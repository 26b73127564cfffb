/**
 * DeviceRegistry: every device the gateway knows, from the config file (read-only) and from the admin API
 * (persisted in dataDir/devices.json). Finds a device by login or by source address and checks its
 * password; the SMTP and POP3 mechanisms live in their own parts and only ask this registry.
 */
import { ConflictError, GatewayError, NotFoundError, ValidationError } from '../shared/errors.js';
import { addressInRanges, parseCidr, type ParsedCidr } from '../shared/cidr.js';
import type { DeviceConfig } from '../config/index.js';
import { parseAddressRule, type AddressRule } from './address-patterns.js';
import { checkDevice, deviceSizeLimit, normalizePatterns, passwordProblem } from './rules.js';
import { DeviceStore, type StoredDevice } from './store.js';
import type { StoreDatabase } from '../store/database.js';
import type { GatewayEventBus } from '../shared/events.js';
import { randomBytes } from 'node:crypto';
import { SecretBox, generatePassword, generateUsername, safeEqual, verifyPasswordHash, verifyPasswordHashAsync } from './credentials.js';

export { DeviceStatusTracker, type DeviceStatus, type DeviceStatusPersistence, type PrinterState } from './status.js';
export { generatePassword, hashPassword } from './credentials.js';
export { addressTrick, parseAddressRule, type AddressRule } from './address-patterns.js';
export {
  checkDevice,
  DeviceFields,
  DEVICE_NAME_PATTERN,
  DEVICE_USERNAME_PATTERN,
  MAX_LOGIN_LENGTH,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  MIN_DEVICE_MESSAGE_SIZE,
} from './rules.js';

export interface Device {
  readonly name: string;
  readonly auth: 'password' | 'none';
  readonly username?: string;
  readonly allowFrom: readonly string[];
  readonly allowRecipients: readonly string[];
  /** Envelope senders (and, with fromMode keep, header From addresses) the device may use; undefined = any. */
  readonly allowSenders?: readonly string[];
  readonly upstream?: string;
  readonly maxMessageSize: number;
  readonly enabled: boolean;
  readonly managedBy: 'config' | 'api';
  /** True when the plaintext secret is available (CRAM-MD5 and APOP possible). */
  readonly supportsChallengeAuth: boolean;
  readonly createdAt?: string;
  readonly updatedAt?: string;
}

interface DeviceEntry {
  device: Device;
  ranges: ParsedCidr[];
  rules: AddressRule[];
  /** undefined = any sender. */
  senderRules?: AddressRule[];
  /** Plaintext secret, or a function returning it (decrypted on demand). */
  secret?: () => string | undefined;
  passwordHash?: string;
}

export interface DeviceInput {
  name: string;
  auth?: 'password' | 'none';
  username?: string;
  password?: string;
  allowFrom?: string[];
  allowRecipients: string[];
  allowSenders?: string[];
  upstream?: string;
  maxMessageSize?: number;
  enabled?: boolean;
}

/** `null` removes an upstream, or the sender rules (any sender again). */
export type DevicePatch = Partial<Pick<DeviceInput, 'allowFrom' | 'allowRecipients' | 'maxMessageSize' | 'enabled'>> & {
  upstream?: string | null;
  allowSenders?: string[] | null;
};

export interface DeviceLimits {
  /** smtp.maxMessageSize */
  smtpMaxMessageSize: number;
  /** Names and size limits of configured upstreams. */
  upstreams: ReadonlyMap<string, number>;
}

export interface DeviceRegistryOptions {
  dataDir: string;
  /** Where API devices live (the store database); absent: dataDir/devices.json. */
  database?: StoreDatabase;
  /** device.created / updated / removed go here. */
  events?: GatewayEventBus;
  secretKey: string;
  configDevices: readonly DeviceConfig[];
  limits: DeviceLimits;
}

export class DeviceRegistry {
  private readonly store: DeviceStore;
  private readonly box: SecretBox;
  private configEntries = new Map<string, DeviceEntry>();
  private apiDevices: StoredDevice[] = [];
  private apiEntries = new Map<string, DeviceEntry>();
  private limits: DeviceLimits;
  /** Serialises store writes so concurrent API calls cannot lose an update. */
  private writeChain: Promise<void> = Promise.resolve();
  private readonly undecryptable = new Set<string>();

  constructor(readonly options: DeviceRegistryOptions) {
    this.store = new DeviceStore(options.dataDir, options.database);
    this.box = new SecretBox(options.secretKey);
    this.limits = options.limits;
    this.setConfigDevices(options.configDevices, options.limits);
  }

  async open(): Promise<void> {
    this.apiDevices = await this.store.load();
    if (this.apiDevices.some((d) => d.sealedPassword)) await this.box.prepare();
    this.rebuildApiEntries();
  }

  /** Replace the file-managed devices (config reload). API devices whose names now clash are shadowed by the file. */
  setConfigDevices(devices: readonly DeviceConfig[], limits: DeviceLimits): void {
    this.limits = limits;
    const entries = new Map<string, DeviceEntry>();
    for (const config of devices) {
      const password = config.password;
      entries.set(config.name, {
        device: {
          name: config.name,
          auth: config.auth,
          username: config.username,
          allowFrom: [...config.allowFrom],
          allowRecipients: [...config.allowRecipients],
          allowSenders: config.allowSenders && [...config.allowSenders],
          upstream: config.upstream,
          maxMessageSize: config.maxMessageSize,
          enabled: config.enabled,
          managedBy: 'config',
          supportsChallengeAuth: password !== undefined,
        },
        ranges: config.allowFrom.map((r) => parseCidr(r)),
        rules: config.allowRecipients.map((r) => parseAddressRule(r)),
        senderRules: config.allowSenders?.map((r) => parseAddressRule(r)),
        secret: password === undefined ? undefined : () => password,
        passwordHash: config.passwordHash,
      });
    }
    const before = this.configEntries;
    this.configEntries = entries;
    this.rebuildApiEntries();
    for (const [name, entry] of entries) {
      const old = before.get(name);
      const enabled = entry.device.enabled;
      if (!old) this.options.events?.emit('device.created', { name, enabled });
      else if (JSON.stringify(old.device) !== JSON.stringify(entry.device)) this.options.events?.emit('device.updated', { name, enabled });
    }
    for (const name of before.keys()) if (!entries.has(name)) this.options.events?.emit('device.removed', { name });
  }

  list(): Device[] {
    return [...this.configEntries.values(), ...this.apiEntries.values()].map((e) => e.device).sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Device | undefined {
    return this.entry(name)?.device;
  }

  require(name: string): Device {
    const device = this.get(name);
    if (!device) throw new NotFoundError('device', name);
    return device;
  }

  /** Device by SMTP/POP3 login (case-insensitive, as printers differ). */
  findByUsername(username: string): Device | undefined {
    const lower = username.toLowerCase();
    for (const entry of this.entries()) if (entry.device.username?.toLowerCase() === lower) return entry.device;
    return undefined;
  }

  /** The enabled `auth: none` device pinned to this address, if any. */
  findUnauthenticatedByAddress(address: string): Device | undefined {
    for (const entry of this.entries()) {
      if (entry.device.auth === 'none' && entry.device.enabled && addressInRanges(address, entry.ranges)) return entry.device;
    }
    return undefined;
  }

  /** Source pinning: an empty allowFrom means any address. */
  isAllowedFrom(device: Device, address: string): boolean {
    const entry = this.entry(device.name);
    if (!entry) return false;
    return entry.ranges.length === 0 || addressInRanges(address, entry.ranges);
  }

  isRecipientAllowed(device: Device, address: string): boolean {
    const entry = this.entry(device.name);
    return entry ? entry.rules.some((rule) => rule.matches(address)) : false;
  }

  /** allowSenders: unset = any sender; the null sender (bounces, "<>") is judged by the caller. */
  isSenderAllowed(device: Device, address: string): boolean {
    const entry = this.entry(device.name);
    if (!entry) return false;
    return entry.senderRules === undefined || entry.senderRules.some((rule) => rule.matches(address));
  }

  /** PLAIN/LOGIN/USER-PASS check, constant time for plaintext, scrypt for hashes. */
  verifyPassword(device: Device, password: string): boolean {
    const entry = this.entry(device.name);
    if (!entry || device.auth !== 'password') return false;
    if (entry.secret) {
      const secret = entry.secret();
      return secret !== undefined && safeEqual(secret, password);
    }
    if (entry.passwordHash) return verifyPasswordHash(password, entry.passwordHash);
    return false;
  }

  /** Some device is pinned to this address by a non-empty allowFrom (so it is a printer's address). */
  isPinnedAddress(address: string): boolean {
    for (const entry of this.entries()) if (entry.ranges.length > 0 && addressInRanges(address, entry.ranges)) return true;
    return false;
  }

  /** The device's allowFrom is non-empty and holds this address. */
  isPinnedTo(device: Device, address: string): boolean {
    const entry = this.entry(device.name);
    return entry !== undefined && entry.ranges.length > 0 && addressInRanges(address, entry.ranges);
  }

  /**
   * PLAIN/LOGIN/USER-PASS check off the event loop (scrypt on the thread pool). For a login that matches no
   * device, pass `undefined`: the same work is done with a real device's scrypt parameters on a random salt
   * when any device has a passwordHash, so neither the time nor the load tells which logins exist.
   */
  async verifyPasswordAsync(device: Device | undefined, password: string): Promise<boolean> {
    const entry = device && this.entry(device.name);
    if (!device || !entry || device.auth !== 'password') {
      const model = [...this.configEntries.values()].find((e) => e.passwordHash !== undefined)?.passwordHash;
      if (model) {
        const [, n, r, p] = model.split('$');
        await verifyPasswordHashAsync(password, `scrypt$${n}$${r}$${p}$${randomBytes(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`);
      }
      return false;
    }
    if (entry.secret) {
      const secret = entry.secret();
      return secret !== undefined && safeEqual(secret, password);
    }
    if (entry.passwordHash) return verifyPasswordHashAsync(password, entry.passwordHash);
    return false;
  }

  /** Plaintext secret for CRAM-MD5 / APOP; undefined when only a hash is stored. Never log it. */
  challengeSecret(device: Device): string | undefined {
    return this.entry(device.name)?.secret?.();
  }

  // ---- admin API mutations (API-managed devices only) ----

  async create(input: DeviceInput): Promise<{ device: Device; password?: string }> {
    const auth = input.auth ?? 'password';
    if (this.get(input.name)) throw new ConflictError(`a device named '${input.name}' already exists`);
    const username = auth === 'password' ? (input.username ?? generateUsername(input.name)) : input.username;
    const password = auth === 'password' ? (input.password ?? generatePassword()) : input.password;
    if (auth === 'password' && username && this.findByUsername(username)) throw new ConflictError(`the username '${username}' is already in use`);
    const allowFrom = input.allowFrom ?? [];
    this.checkRules({ ...input, auth, username, password, allowFrom });
    const now = new Date().toISOString();
    const stored: StoredDevice = {
      name: input.name,
      auth,
      username,
      sealedPassword: password === undefined ? undefined : this.box.seal(password),
      allowFrom,
      allowRecipients: normalizePatterns(input.allowRecipients),
      allowSenders: input.allowSenders && normalizePatterns(input.allowSenders),
      upstream: input.upstream,
      maxMessageSize: input.maxMessageSize,
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
    };
    await this.mutate((devices) => [...devices, stored]);
    this.options.events?.emit('device.created', { name: input.name, enabled: stored.enabled });
    return { device: this.require(input.name), password };
  }

  async update(name: string, patch: DevicePatch): Promise<Device> {
    const current = this.requireApiDevice(name);
    const next: StoredDevice = {
      ...current,
      allowFrom: patch.allowFrom ?? current.allowFrom,
      allowRecipients: patch.allowRecipients ? normalizePatterns(patch.allowRecipients) : current.allowRecipients,
      allowSenders: patch.allowSenders === null ? undefined : patch.allowSenders ? normalizePatterns(patch.allowSenders) : current.allowSenders,
      upstream: patch.upstream === null ? undefined : (patch.upstream ?? current.upstream),
      maxMessageSize: patch.maxMessageSize ?? current.maxMessageSize,
      enabled: patch.enabled ?? current.enabled,
      updatedAt: new Date().toISOString(),
    };
    // The stored password is sealed; the rulebook checked it when it was set.
    this.checkRules({ ...next, password: undefined }, { skipSecret: true });
    await this.mutate((devices) => devices.map((d) => (d.name === name ? next : d)));
    this.options.events?.emit('device.updated', { name, enabled: next.enabled });
    return this.require(name);
  }

  async rotatePassword(name: string, password = generatePassword()): Promise<{ device: Device; password: string }> {
    const current = this.requireApiDevice(name);
    if (current.auth !== 'password') throw new ValidationError(`device '${name}' does not use a password`);
    const problem = passwordProblem(password);
    if (problem) throw new ValidationError(`password: ${problem}`);
    const next = { ...current, sealedPassword: this.box.seal(password), updatedAt: new Date().toISOString() };
    await this.mutate((devices) => devices.map((d) => (d.name === name ? next : d)));
    this.undecryptable.delete(name);
    return { device: this.require(name), password };
  }

  async remove(name: string): Promise<void> {
    this.requireApiDevice(name);
    await this.mutate((devices) => devices.filter((d) => d.name !== name));
    this.options.events?.emit('device.removed', { name });
  }

  // ---- internals ----

  private entries(): IterableIterator<DeviceEntry> {
    return [...this.configEntries.values(), ...this.apiEntries.values()][Symbol.iterator]();
  }

  private entry(name: string): DeviceEntry | undefined {
    return this.configEntries.get(name) ?? this.apiEntries.get(name);
  }

  private requireApiDevice(name: string): StoredDevice {
    if (this.configEntries.has(name)) {
      throw new GatewayError('SCANRELAY_DEVICE_READ_ONLY', `device '${name}' is managed by the config file; change it there and reload`, 409);
    }
    const stored = this.apiDevices.find((d) => d.name === name);
    if (!stored) throw new NotFoundError('device', name);
    return stored;
  }

  /** The device rulebook (the same checks as a config-file device) plus the upstream reference. */
  private checkRules(device: Parameters<typeof checkDevice>[0] & { upstream?: string }, options: { skipSecret?: boolean } = {}): void {
    const problems = checkDevice(device).filter((p) => !(options.skipSecret && (p.field === 'password' || p.field === 'passwordHash')));
    if (device.upstream && !this.limits.upstreams.has(device.upstream)) problems.push({ field: 'upstream', problem: `no upstream named '${device.upstream}'` });
    if (problems.length > 0) throw new ValidationError(problems.map((p) => `${p.field}: ${p.problem}`).join('; '));
  }

  private async mutate(change: (devices: StoredDevice[]) => StoredDevice[]): Promise<void> {
    const run = this.writeChain.then(async () => {
      const next = change(this.apiDevices);
      await this.store.save(next);
      this.apiDevices = next;
      this.rebuildApiEntries();
    });
    this.writeChain = run.catch(() => undefined);
    await run;
  }

  /**
   * Decrypts a stored device secret. A changed secret key makes that impossible: the login fails (535, not a
   * crash) and the reason is kept for the admin, since the device needs a new password.
   */
  private openSealed(name: string, sealed: string): string | undefined {
    try {
      return this.box.open(sealed);
    } catch {
      this.undecryptable.add(name);
      return undefined;
    }
  }

  /** API devices whose stored secret cannot be decrypted with the current secret key. */
  undecryptableDevices(): string[] {
    return [...this.undecryptable];
  }

  private rebuildApiEntries(): void {
    const entries = new Map<string, DeviceEntry>();
    for (const stored of this.apiDevices) {
      if (this.configEntries.has(stored.name)) continue; // the file wins on a name clash
      const upstreamMax = stored.upstream ? this.limits.upstreams.get(stored.upstream) : undefined;
      const sealed = stored.sealedPassword;
      entries.set(stored.name, {
        device: {
          name: stored.name,
          auth: stored.auth,
          username: stored.username,
          allowFrom: stored.allowFrom,
          allowRecipients: stored.allowRecipients,
          allowSenders: stored.allowSenders,
          upstream: stored.upstream,
          maxMessageSize: deviceSizeLimit(stored.maxMessageSize, this.limits.smtpMaxMessageSize, upstreamMax),
          enabled: stored.enabled,
          managedBy: 'api',
          supportsChallengeAuth: sealed !== undefined,
          createdAt: stored.createdAt,
          updatedAt: stored.updatedAt,
        },
        ranges: stored.allowFrom.map((r) => parseCidr(r)),
        rules: stored.allowRecipients.map((r) => parseAddressRule(r)),
        senderRules: stored.allowSenders?.map((r) => parseAddressRule(r)),
        secret: sealed === undefined ? undefined : () => this.openSealed(stored.name, sealed),
      });
    }
    this.apiEntries = entries;
  }
}
