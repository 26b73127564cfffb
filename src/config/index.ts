/**
 * loadConfig(file, env): read YAML, apply env overrides, expand ${VAR}, read *File secrets, validate
 * against the one schema, resolve units and check safety rules. Any problem is a ConfigError naming the
 * file, the key path and what is wrong; nothing is silently replaced by a default.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../shared/errors.js';
import { checkDeviceRules } from '../shared/device-rules.js';
import { ConfigSchema, type RawConfig } from './schema.js';
import { formatKeyPath, interpolateEnv, resolveSecretFiles } from './interpolate.js';
import { parseDuration, parseSize } from './units.js';

export { parseDuration, parseSize, formatBytes } from './units.js';
export { DEVICE_USERNAME_PATTERN, DEVICE_NAME_PATTERN } from './schema.js';

export type LogLevel = RawConfig['log']['level'];
export type LegacyTls = boolean | 'starttls' | 'tlsPort';

export interface DeviceConfig {
  name: string;
  auth: 'password' | 'none';
  username?: string;
  /** Plaintext secret (needed for CRAM-MD5 and APOP). */
  password?: string;
  /** scrypt hash: PLAIN/LOGIN/USER-PASS only. */
  passwordHash?: string;
  allowFrom: string[];
  allowRecipients: string[];
  upstream?: string;
  /** Resolved: min(device setting, smtp.maxMessageSize, upstream.maxMessageSize). */
  maxMessageSize: number;
  enabled: boolean;
}

export interface UpstreamConfig {
  name: string;
  host: string;
  /** For tls/starttls: the port to use. For auto: unused (tlsPort then starttlsPort). */
  port: number;
  security: 'tls' | 'starttls' | 'auto';
  tlsPort: number;
  starttlsPort: number;
  auth: 'password' | 'oauth2';
  user: string;
  password?: string;
  oauth2?: { clientId: string; clientSecret?: string; refreshToken?: string; tokenUrl?: string; scope?: string };
  maxConnections: number;
  maxMessageSize: number;
  maxRecipientsPerMessage: number;
  fromMode: 'keep' | 'rewrite';
  ratePerMinute?: number;
  ratePerDay?: number;
  connectionTimeoutMs: number;
  socketTimeoutMs: number;
  tls: { ca?: string; caFile?: string; rejectUnauthorized: boolean; servername?: string; minVersion: 'TLSv1.2' | 'TLSv1.3' };
}

export interface SmtpConfig {
  host: string;
  port: number;
  hostname: string;
  maxMessageSize: number;
  maxRecipients: number;
  maxClients: number;
  maxConnectionsPerIp: number;
  socketTimeoutMs: number;
  closeTimeoutMs: number;
  maxSessionMs: number;
  authLockout: { maxFailures: number; windowMs: number; durationMs: number };
  starttls: boolean;
  tlsPort?: number;
  /** legacyTls: which device listeners accept TLS 1.0/1.1 and old ciphers. */
  tls: { certFile?: string; keyFile?: string; legacyTls: LegacyTls };
}

export interface Pop3Config {
  enabled: boolean;
  host: string;
  port: number;
  authWindowMs: number;
  maxClients: number;
  socketTimeoutMs: number;
}

export interface AdminConfig {
  enabled: boolean;
  host: string;
  port: number;
  /** Empty = a token is generated into dataDir/admin-token at start. */
  tokens: string[];
  publicSmtpHost?: string;
  /** The port printers dial when a port mapping differs from smtp.port (Docker: 25 -> 2525). */
  publicSmtpPort?: number;
  metricsToken: boolean;
}

export interface DeliveryConfig {
  concurrency: number;
  maxLifetimeMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  retentionMs: number;
  logRetentionMs: number;
  notifyAddress?: string;
  shutdownTimeoutMs: number;
}

export interface GatewayConfig {
  /** Absolute path of the file this came from. */
  file: string;
  dataDir: string;
  /** IANA zone for times of day in message-log queries and daily stats. */
  timeZone: string;
  store: { fsyncDirectory: boolean };
  log: { level: LogLevel };
  secretKey?: string;
  smtp: SmtpConfig;
  pop3: Pop3Config;
  admin: AdminConfig;
  delivery: DeliveryConfig;
  devices: DeviceConfig[];
  upstreams: UpstreamConfig[];
}

/** Environment overrides for the few settings a container or test changes without editing the file. */
const ENV_OVERRIDES: Array<[string, string[], 'string' | 'number']> = [
  ['SCANRELAY_DATA_DIR', ['dataDir'], 'string'],
  ['SCANRELAY_LOG_LEVEL', ['log', 'level'], 'string'],
  ['SCANRELAY_SMTP_HOST', ['smtp', 'host'], 'string'],
  ['SCANRELAY_SMTP_PORT', ['smtp', 'port'], 'number'],
  ['SCANRELAY_ADMIN_HOST', ['admin', 'host'], 'string'],
  ['SCANRELAY_ADMIN_PORT', ['admin', 'port'], 'number'],
  ['SCANRELAY_POP3_PORT', ['pop3', 'port'], 'number'],
];

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SCANRELAY_CONFIG || 'config/gateway.yaml';
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const absolute = resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(absolute, '', `cannot read the config file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseConfig(text, absolute, env);
}

/** Same as loadConfig for YAML text already in hand (tests, the API's dry runs). */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}` : '';
    throw new ConfigError(file, where, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof document !== 'object' || Array.isArray(document) || document === null) {
    throw new ConfigError(file, '', 'the top level must be a mapping of keys');
  }
  applyEnvOverrides(document as Record<string, unknown>, env);
  const expanded = coerceScalars(ConfigSchema, resolveSecretFiles(interpolateEnv(document, env, file), file));
  // TypeBox's defaulting turns a mapping where a list belongs into an empty list: a forgotten "-" would
  // silently drop every device. Refuse it before defaults are applied.
  for (const key of ['devices', 'upstreams'] as const) {
    const value = (expanded as Record<string, unknown>)[key];
    if (value === null)
      (expanded as Record<string, unknown>)[key] = []; // "devices:" with nothing under it
    else if (value !== undefined && !Array.isArray(value)) {
      throw new ConfigError(file, key, 'must be a list: start each entry with "- " (e.g. "- name: ...")');
    }
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(expanded));
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError) {
    const keyPath = firstError.path
      .split('/')
      .filter(Boolean)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    const secret = keyPath.some((part) => typeof part === 'string' && SECRET_KEY.test(part));
    throw new ConfigError(file, formatKeyPath(keyPath), describeSchemaError(firstError.message, secret ? undefined : firstError.value, firstError.schema));
  }
  return deepFreeze(resolveConfig(withDefaults as RawConfig, file));
}

function applyEnvOverrides(document: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, path, kind] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let target = document;
    for (const key of path.slice(0, -1)) {
      if (typeof target[key] !== 'object' || target[key] === null) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    target[path[path.length - 1]] = kind === 'number' && /^\d+$/.test(value) ? Number(value) : value;
  }
}

/** Key names whose values are never echoed in an error (the message may reach a terminal or a log). */
const SECRET_KEY = /password|secret|token/i;

function describeSchemaError(message: string, value: unknown, schema: { description?: string; pattern?: string; title?: string }): string {
  const shown = typeof value === 'string' ? ` (got a string of ${value.length} characters)` : value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  const hint = schema.description ? `; expected ${schema.description}` : '';
  // TypeBox 0.34 words it "Unexpected property"; older releases "additional properties".
  if (/additional properties|unexpected property/i.test(message)) return 'unknown key';
  if (/union/i.test(message) && schema.title) return `not a valid ${schema.title}${hint}${typeof value === 'string' ? '' : shown}`;
  return `${message}${hint}${typeof value === 'string' ? '' : shown}`;
}

/**
 * ${VAR} values are always text: where the schema wants an integer or a boolean, "2525" and "true" become
 * 2525 and true. Keys of string type keep numeric-looking text as it is (a password "0123" stays "0123").
 */
function coerceScalars(schema: TSchema, value: unknown): unknown {
  if (typeof value === 'string') {
    const text = value.trim();
    if (schema.type === 'integer' && /^-?\d+$/.test(text)) return Number(text);
    if (schema.type === 'boolean' && /^(true|false)$/i.test(text)) return text.toLowerCase() === 'true';
    return value;
  }
  if (Array.isArray(value)) return schema.type === 'array' && schema.items ? value.map((item) => coerceScalars(schema.items as TSchema, item)) : value;
  if (value !== null && typeof value === 'object' && schema.type === 'object' && schema.properties) {
    const properties = schema.properties as Record<string, TSchema>;
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, properties[key] ? coerceScalars(properties[key], item) : item]));
  }
  return value;
}

function resolveConfig(raw: RawConfig, file: string): GatewayConfig {
  const size = (value: string | number, key: string): number => {
    const parsed = parseSize(value);
    if (parsed === undefined) throw new ConfigError(file, key, `"${value}" is not a size such as 25MB`);
    return parsed;
  };
  const duration = (value: string | number, key: string): number => {
    const parsed = parseDuration(value);
    if (parsed === undefined) throw new ConfigError(file, key, `"${value}" is not a duration such as 90s or 5d`);
    return parsed;
  };

  const smtpMax = size(raw.smtp.maxMessageSize, 'smtp.maxMessageSize');
  if (smtpMax < 1024) throw new ConfigError(file, 'smtp.maxMessageSize', 'must be at least 1KB');
  if (Boolean(raw.smtp.tls.certFile) !== Boolean(raw.smtp.tls.keyFile)) {
    throw new ConfigError(file, 'smtp.tls', 'set both certFile and keyFile, or neither (a self-signed certificate is generated)');
  }

  const upstreams = raw.upstreams.map((u, i): UpstreamConfig => {
    const key = (k: string) => `upstreams[${i}].${k}`;
    if (raw.upstreams.findIndex((other) => other.name === u.name) !== i) throw new ConfigError(file, key('name'), `duplicate upstream name "${u.name}"`);
    if (u.auth === 'password' && !u.password) throw new ConfigError(file, key('password'), 'required when auth is password (or set passwordFile)');
    if (u.auth === 'oauth2') {
      if (!u.oauth2) throw new ConfigError(file, key('oauth2'), 'required when auth is oauth2');
      if (!u.oauth2.refreshToken) throw new ConfigError(file, key('oauth2.refreshToken'), 'required (or set refreshTokenFile)');
      if (!u.oauth2.clientSecret) throw new ConfigError(file, key('oauth2.clientSecret'), 'required (or set clientSecretFile)');
    }
    let ca: string | undefined;
    if (u.tls.ca) {
      try {
        ca = readFileSync(u.tls.ca, 'utf8');
      } catch (err) {
        throw new ConfigError(file, key('tls.ca'), `cannot read ${u.tls.ca} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const defaultPort = u.security === 'starttls' ? u.starttlsPort : u.tlsPort;
    return {
      name: u.name,
      host: u.host,
      port: u.port ?? defaultPort,
      security: u.security,
      tlsPort: u.tlsPort,
      starttlsPort: u.starttlsPort,
      auth: u.auth,
      user: u.user,
      password: u.password,
      oauth2: u.oauth2 && {
        clientId: u.oauth2.clientId,
        clientSecret: u.oauth2.clientSecret,
        refreshToken: u.oauth2.refreshToken,
        tokenUrl: u.oauth2.tokenUrl,
        scope: u.oauth2.scope,
      },
      maxConnections: u.maxConnections,
      maxMessageSize: size(u.maxMessageSize, key('maxMessageSize')),
      maxRecipientsPerMessage: u.maxRecipientsPerMessage,
      fromMode: u.fromMode,
      ratePerMinute: u.ratePerMinute,
      ratePerDay: u.ratePerDay,
      connectionTimeoutMs: duration(u.connectionTimeout, key('connectionTimeout')),
      socketTimeoutMs: duration(u.socketTimeout, key('socketTimeout')),
      tls: { ca, caFile: u.tls.ca, rejectUnauthorized: u.tls.rejectUnauthorized, servername: u.tls.servername, minVersion: u.tls.minVersion },
    };
  });

  const devices = raw.devices.map((d, i) => resolveDevice(d, i, { file, smtpMax, upstreams, all: raw.devices, size }));

  return {
    file,
    dataDir: resolve(raw.dataDir),
    timeZone: resolveTimeZone(file, raw.timeZone),
    store: { fsyncDirectory: raw.store.fsyncDirectory },
    log: { level: raw.log.level },
    secretKey: raw.secretKey,
    smtp: {
      host: raw.smtp.host,
      port: raw.smtp.port,
      hostname: raw.smtp.hostname ?? 'scanrelay',
      maxMessageSize: smtpMax,
      maxRecipients: raw.smtp.maxRecipients,
      maxClients: raw.smtp.maxClients,
      maxConnectionsPerIp: raw.smtp.maxConnectionsPerIp,
      socketTimeoutMs: duration(raw.smtp.socketTimeout, 'smtp.socketTimeout'),
      closeTimeoutMs: duration(raw.smtp.closeTimeout, 'smtp.closeTimeout'),
      maxSessionMs: duration(raw.smtp.maxSessionDuration, 'smtp.maxSessionDuration'),
      authLockout: {
        maxFailures: raw.smtp.authLockout.maxFailures,
        windowMs: duration(raw.smtp.authLockout.window, 'smtp.authLockout.window'),
        durationMs: duration(raw.smtp.authLockout.duration, 'smtp.authLockout.duration'),
      },
      starttls: raw.smtp.starttls,
      tlsPort: raw.smtp.tlsPort,
      tls: { certFile: raw.smtp.tls.certFile, keyFile: raw.smtp.tls.keyFile, legacyTls: raw.smtp.tls.legacyTls },
    },
    pop3: {
      enabled: raw.pop3.enabled,
      host: raw.pop3.host,
      port: raw.pop3.port,
      maxClients: raw.pop3.maxClients,
      authWindowMs: duration(raw.pop3.authWindow, 'pop3.authWindow'),
      socketTimeoutMs: duration(raw.pop3.socketTimeout, 'pop3.socketTimeout'),
    },
    admin: {
      enabled: raw.admin.enabled,
      host: raw.admin.host,
      port: raw.admin.port,
      tokens: raw.admin.tokens ?? [],
      publicSmtpHost: raw.admin.publicSmtpHost,
      publicSmtpPort: raw.admin.publicSmtpPort,
      metricsToken: raw.admin.metricsToken ?? false,
    },
    delivery: {
      concurrency: raw.delivery.concurrency,
      maxLifetimeMs: duration(raw.delivery.maxLifetime, 'delivery.maxLifetime'),
      retryBaseMs: duration(raw.delivery.retryBase, 'delivery.retryBase'),
      retryMaxMs: duration(raw.delivery.retryMax, 'delivery.retryMax'),
      retentionMs: duration(raw.delivery.retention, 'delivery.retention'),
      logRetentionMs: duration(raw.delivery.logRetention, 'delivery.logRetention'),
      notifyAddress: raw.delivery.notifyAddress,
      shutdownTimeoutMs: duration(raw.delivery.shutdownTimeout, 'delivery.shutdownTimeout'),
    },
    devices,
    upstreams,
  };
}

function resolveTimeZone(file: string, zone: string | undefined): string {
  if (zone === undefined) return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw new ConfigError(file, 'timeZone', `'${zone}' is not a time zone; use an IANA name such as Europe/Berlin or America/New_York`);
  }
  return zone;
}

interface DeviceContext {
  file: string;
  smtpMax: number;
  upstreams: UpstreamConfig[];
  all: RawConfig['devices'];
  size: (value: string | number, key: string) => number;
}

/** A device rule set that is safe to run: identified, pinned when unauthenticated, never an open relay. */
function resolveDevice(d: RawConfig['devices'][number], i: number, ctx: DeviceContext): DeviceConfig {
  const { file } = ctx;
  const key = (k: string) => `devices[${i}].${k}`;
  if (ctx.all.findIndex((other) => other.name === d.name) !== i) throw new ConfigError(file, key('name'), `duplicate device name "${d.name}"`);
  if (d.auth === 'password') {
    if (!d.username) throw new ConfigError(file, key('username'), 'required when auth is password');
    const lower = d.username.toLowerCase();
    if (ctx.all.findIndex((other) => other.username?.toLowerCase() === lower) !== i) {
      throw new ConfigError(file, key('username'), `duplicate username "${d.username}"`);
    }
    if (!d.password && !d.passwordHash) throw new ConfigError(file, key('password'), 'required: set password, passwordFile or passwordHash');
    if (d.password && d.passwordHash) throw new ConfigError(file, key('passwordHash'), 'set either password or passwordHash, not both');
    if (d.password && d.password.length > 31) throw new ConfigError(file, key('password'), 'longer than the 31 characters a printer can hold');
    if (d.passwordHash && !usableScryptParameters(d.passwordHash)) {
      throw new ConfigError(file, key('passwordHash'), 'scrypt parameters out of range: N must be a power of two >= 2, p >= 1, and 128*N*r at most 256 MiB');
    }
  } else if (d.username || d.password || d.passwordHash) {
    throw new ConfigError(file, key('auth'), 'auth is none: remove username/password, or set auth: password');
  }

  const problem = checkDeviceRules(d);
  if (problem) throw new ConfigError(file, key(problem.field), problem.problem);
  const allowFrom = d.allowFrom ?? [];
  const allowRecipients = d.allowRecipients ?? [];

  const upstream = d.upstream ? ctx.upstreams.find((u) => u.name === d.upstream) : undefined;
  if (d.upstream && !upstream) throw new ConfigError(file, key('upstream'), `no upstream named "${d.upstream}"`);
  const ownMax = d.maxMessageSize === undefined ? undefined : ctx.size(d.maxMessageSize, key('maxMessageSize'));
  const maxMessageSize = deviceSizeLimit(ownMax, ctx.smtpMax, upstream?.maxMessageSize);

  return {
    name: d.name,
    auth: d.auth,
    username: d.username,
    password: d.password,
    passwordHash: d.passwordHash,
    allowFrom,
    allowRecipients: allowRecipients.map((r) => r.trim().toLowerCase()),
    upstream: d.upstream,
    maxMessageSize,
    enabled: d.enabled,
  };
}

/** N, r and p of a scrypt$N$r$p$salt$hash string that node:crypto can verify within bounded memory. */
function usableScryptParameters(hash: string): boolean {
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

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
