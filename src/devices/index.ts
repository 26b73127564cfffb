/**
 * DeviceRegistry: every device the gateway knows, from the config file (read-only) and from the admin API
 * (persisted in dataDir/devices.json). Finds a device by login or by source address and checks its
 * password; the SMTP and POP3 mechanisms live in their own parts and only ask this registry.
 */
import { ConflictError, GatewayError, NotFoundError, ValidationError } from '../shared/errors.js';
import { addressInRanges, parseCidr, type ParsedCidr } from '../shared/cidr.js';
import { parseAddressRule, type AddressRule } from '../shared/address-rules.js';
import { checkDeviceRules } from '../shared/device-rules.js';
import { deviceSizeLimit, type DeviceConfig } from '../config/index.js';
import { DeviceStore, type StoredDevice } from './store.js';
import type { StoreDatabase } from '../store/database.js';
import type { GatewayEventBus } from '../shared/events.js';
import {
  SecretBox,
  generatePassword,
  generateUsername,
  hashPassword,
  isValidLogin,
  safeEqual,
  verifyPasswordHash,
  MAX_PASSWORD_LENGTH,
} from './credentials.js';

export { DeviceStatusTracker, type DeviceStatus, type DeviceStatusPersistence, type PrinterState } from './status.js';
export { generatePassword, hashPassword, MAX_LOGIN_LENGTH, MAX_PASSWORD_LENGTH } from './credentials.js';

export interface Device {
  readonly name: string;
  readonly auth: 'password' | 'none';
  readonly username?: string;
  readonly allowFrom: readonly string[];
  readonly allowRecipients: readonly string[];
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
  upstream?: string;
  maxMessageSize?: number;
  enabled?: boolean;
}

export type DevicePatch = Partial<Pick<DeviceInput, 'allowFrom' | 'allowRecipients' | 'maxMessageSize' | 'enabled'>> & { upstream?: string | null };

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

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

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
  private timingHash?: string;

  constructor(readonly options: DeviceRegistryOptions) {
    this.store = new DeviceStore(options.dataDir, options.database);
    this.box = new SecretBox(options.secretKey);
    this.limits = options.limits;
    this.setConfigDevices(options.configDevices, options.limits);
  }

  async open(): Promise<void> {
    this.apiDevices = await this.store.load();
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
          upstream: config.upstream,
          maxMessageSize: config.maxMessageSize,
          enabled: config.enabled,
          managedBy: 'config',
          supportsChallengeAuth: password !== undefined,
        },
        ranges: config.allowFrom.map((r) => parseCidr(r)),
        rules: config.allowRecipients.map((r) => parseAddressRule(r)),
        secret: password === undefined ? undefined : () => password,
        passwordHash: config.passwordHash,
      });
    }
    const before = this.configEntries;
    this.configEntries = entries;
    this.rebuildApiEntries();
    for (const [name, entry] of entries) {
      const old = before.get(name);
      if (!old) this.options.events?.emit('device.created', { name });
      else if (JSON.stringify(old.device) !== JSON.stringify(entry.device)) this.options.events?.emit('device.updated', { name });
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

  /**
   * For an unknown login: spend the time a scrypt check would take when any device has a passwordHash, so
   * the reply time does not tell which logins exist.
   */
  spendPasswordCheckTime(password: string): void {
    const hashed = [...this.configEntries.values()].some((e) => e.passwordHash !== undefined);
    if (!hashed) return;
    this.timingHash ??= hashPassword(generatePassword());
    verifyPasswordHash(password, this.timingHash);
  }

  /** Plaintext secret for CRAM-MD5 / APOP; undefined when only a hash is stored. Never log it. */
  challengeSecret(device: Device): string | undefined {
    return this.entry(device.name)?.secret?.();
  }

  // ---- admin API mutations (API-managed devices only) ----

  async create(input: DeviceInput): Promise<{ device: Device; password?: string }> {
    const auth = input.auth ?? 'password';
    if (!NAME.test(input.name)) throw new ValidationError('name must be 1-63 chars of [A-Za-z0-9._-], starting with a letter or digit');
    if (this.get(input.name)) throw new ConflictError(`a device named '${input.name}' already exists`);
    let username: string | undefined;
    let password: string | undefined;
    if (auth === 'password') {
      username = input.username ?? generateUsername(input.name);
      if (!isValidLogin(username)) throw new ValidationError('username must be 1-63 chars of [A-Za-z0-9._@-]');
      if (this.findByUsername(username)) throw new ConflictError(`the username '${username}' is already in use`);
      password = input.password ?? generatePassword();
      if (password.length < 8 || password.length > MAX_PASSWORD_LENGTH) throw new ValidationError(`password must be 8-${MAX_PASSWORD_LENGTH} characters`);
    } else if (input.username || input.password) {
      throw new ValidationError('a device with auth "none" has no username or password');
    }
    this.checkRules(auth, input.allowFrom ?? [], input.allowRecipients, input.upstream ?? undefined);
    const now = new Date().toISOString();
    const stored: StoredDevice = {
      name: input.name,
      auth,
      username,
      sealedPassword: password === undefined ? undefined : this.box.seal(password),
      allowFrom: input.allowFrom ?? [],
      allowRecipients: input.allowRecipients.map((r) => r.trim().toLowerCase()),
      upstream: input.upstream,
      maxMessageSize: input.maxMessageSize,
      enabled: input.enabled ?? true,
      createdAt: now,
      updatedAt: now,
    };
    await this.mutate((devices) => [...devices, stored]);
    this.options.events?.emit('device.created', { name: input.name });
    return { device: this.require(input.name), password };
  }

  async update(name: string, patch: DevicePatch): Promise<Device> {
    const current = this.requireApiDevice(name);
    const next: StoredDevice = {
      ...current,
      allowFrom: patch.allowFrom ?? current.allowFrom,
      allowRecipients: patch.allowRecipients?.map((r) => r.trim().toLowerCase()) ?? current.allowRecipients,
      upstream: patch.upstream === null ? undefined : (patch.upstream ?? current.upstream),
      maxMessageSize: patch.maxMessageSize ?? current.maxMessageSize,
      enabled: patch.enabled ?? current.enabled,
      updatedAt: new Date().toISOString(),
    };
    this.checkRules(next.auth, next.allowFrom, next.allowRecipients, next.upstream);
    await this.mutate((devices) => devices.map((d) => (d.name === name ? next : d)));
    this.options.events?.emit('device.updated', { name });
    return this.require(name);
  }

  async rotatePassword(name: string, password = generatePassword()): Promise<{ device: Device; password: string }> {
    const current = this.requireApiDevice(name);
    if (current.auth !== 'password') throw new ValidationError(`device '${name}' does not use a password`);
    if (password.length < 8 || password.length > MAX_PASSWORD_LENGTH) throw new ValidationError(`password must be 8-${MAX_PASSWORD_LENGTH} characters`);
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

  private checkRules(auth: 'password' | 'none', allowFrom: string[], allowRecipients: string[], upstream: string | undefined): void {
    const problem = checkDeviceRules({ auth, allowFrom, allowRecipients });
    if (problem) throw new ValidationError(`${problem.field}: ${problem.problem}`);
    if (upstream && !this.limits.upstreams.has(upstream)) throw new ValidationError(`upstream: no upstream named '${upstream}'`);
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
        secret: sealed === undefined ? undefined : () => this.openSealed(stored.name, sealed),
      });
    }
    this.apiEntries = entries;
  }
}
