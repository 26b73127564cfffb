/**
 * The one schema of config/gateway.yaml, and the one place a config key is added. TypeBox gives JSON
 * Schema validation and, through its decoded type, the config type every part reads: there is no second,
 * hand-written copy.
 *
 * To add a key: write it in the right `Section` below with a default (or `Type.Optional`), document it in
 * config/gateway.example.yaml (test/unit/config/example-documents-every-key.test.ts fails otherwise), and
 * read it as `config.<section>.<key>`. Rules between keys (an upstream that must exist, ports that must
 * differ) go in checks.ts.
 *
 * - `Size(...)` decodes "25MB" / "512KiB" / 1000 to bytes.
 * - `Duration('fieldMs', ...)` decodes "90s" / "5d" / 1000 to milliseconds and is read in code under the
 *   given name (`socketTimeout` in YAML is `socketTimeoutMs` in code), so a number's unit is in its name.
 * - `secret: true` marks a secret once. From that mark come: the `<key>File` variant (Docker secrets,
 *   interpolate.ts), log redaction (observability/logger.ts), masking in `scanrelay check-config`, and
 *   errors that never echo the value.
 */
import { resolve } from 'node:path';
import {
  type ObjectOptions,
  type StaticDecode,
  type TInteger,
  type TObject,
  type TProperties,
  type TSchema,
  type TString,
  type TTransform,
  type TUnion,
  Type,
} from '@sinclair/typebox';
import { DeviceFields } from '../devices/rules.js';
import { parseDuration, parseSize, SIZE_TEXT } from './units.js';

const DURATION_TEXT = '^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)\\s*)+$|^\\d+$';

interface UnitOptions {
  default?: string | number;
  description?: string;
}

type UnitText = TUnion<[TInteger, TString]>;

/** Bytes, written as bytes or a size such as "25MB" or "512KiB". */
export function Size(options: UnitOptions = {}): TTransform<UnitText, number> {
  const text = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: SIZE_TEXT })], {
    title: 'size (bytes, or such as "25MB" or "512KiB")',
    ...options,
  });
  return Type.Transform(text)
    .Decode((value) => parseSize(value) as number) // the pattern admits only what parseSize reads
    .Encode((bytes) => bytes);
}

/** A YAML key that code reads under another name (durations: with their unit, `window` -> `windowMs`). */
interface Renamed<N extends string> {
  readonly decodeAs: N;
}

/** Milliseconds, written as milliseconds or a duration such as "90s", "5m" or "1h30m"; read in code as `field`. */
export function Duration<const N extends string>(field: N, options: UnitOptions = {}): TTransform<UnitText, number> & Renamed<N> {
  const text = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: DURATION_TEXT })], {
    title: 'duration (milliseconds, or such as "90s", "5m" or "5d")',
    decodeAs: field,
    ...options,
  });
  return Type.Transform(text)
    .Decode((value) => parseDuration(value) as number)
    .Encode((ms) => ms) as TTransform<UnitText, number> & Renamed<N>;
}

const Port = (options: { default?: number; description?: string } = {}) => Type.Integer({ minimum: 0, maximum: 65535, ...options });

type RenamedKeys<P extends TProperties> = { [K in keyof P]: P[K] extends Renamed<string> ? K : never }[keyof P];
/** The decoded type of a section: its keys, with renamed ones under their code name. */
export type DecodedSection<P extends TProperties> = Omit<StaticDecode<TObject<P>>, RenamedKeys<P>> & {
  [K in keyof P as P[K] extends Renamed<infer N> ? N : never]: StaticDecode<P[K]>;
};

/**
 * A mapping of keys: unknown keys refused, renamed keys moved to their code name on decode, and a
 * `<key>File` key accepted beside every `secret: true` key. `derive` adds values computed from the
 * section itself (an upstream's port from its security mode).
 */
export function Section<P extends TProperties, R = DecodedSection<P>>(
  properties: P,
  options: ObjectOptions = {},
  derive?: (section: DecodedSection<P>) => R,
): TTransform<TObject<P>, R> {
  const renames = Object.entries(properties).flatMap(([key, schema]) =>
    typeof (schema as { decodeAs?: unknown }).decodeAs === 'string' ? [[key, (schema as unknown as Renamed<string>).decodeAs] as const] : [],
  );
  const secretFiles = Object.fromEntries(
    Object.entries(properties)
      .filter(([, schema]) => isSecret(schema))
      .map(([key]) => [`${key}File`, Type.Optional(Type.String({ minLength: 1, description: `file holding ${key} (read at load)` }))]),
  );
  const object = Type.Object({ ...properties, ...secretFiles }, { additionalProperties: false, ...options }) as unknown as TObject<P>;
  return Type.Transform(object)
    .Decode((value) => {
      const out: Record<string, unknown> = { ...value };
      for (const [from, to] of renames) {
        out[to] = out[from];
        delete out[from];
      }
      return derive ? derive(out as DecodedSection<P>) : (out as R);
    })
    .Encode(() => {
      throw new Error('config is never written back');
    });
}

/** True for a schema marked `secret: true` (the value is never logged, printed or echoed). */
export function isSecret(schema: TSchema): boolean {
  return (schema as { secret?: unknown }).secret === true;
}

const TlsServerSchema = Section(
  {
    certFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate; omitted = generated self-signed in dataDir' })),
    keyFile: Type.Optional(Type.String({ minLength: 1 })),
    legacyTls: Type.Union([Type.Boolean(), Type.Literal('starttls'), Type.Literal('tlsPort')], {
      default: false,
      description: 'allow TLS 1.0/1.1 and old ciphers (LAN-only compromise): true = both listeners, or only "starttls" (the plaintext port) or "tlsPort"',
    }),
  },
  { default: {} },
);

export const SmtpSchema = Section(
  {
    host: Type.String({ default: '0.0.0.0' }),
    port: Port({ default: 2525 }),
    hostname: Type.String({ minLength: 1, default: 'scanrelay', description: 'name in the greeting and Received header' }),
    maxMessageSize: Size({ default: '25MB' }),
    maxRecipients: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    maxClients: Type.Integer({ minimum: 1, default: 100 }),
    maxConnectionsPerIp: Type.Integer({ minimum: 1, default: 10 }),
    socketTimeout: Duration('socketTimeoutMs', { default: '5m' }),
    closeTimeout: Duration('closeTimeoutMs', { default: '30s' }),
    maxSessionDuration: Duration('maxSessionMs', {
      default: '30m',
      description: 'a whole session, however active; bounds clients that drip one byte at a time',
    }),
    preAuthTimeout: Duration('preAuthTimeoutMs', { default: '60s', description: 'time a session has to log in (or send MAIL, for devices without AUTH)' }),
    maxUnauthenticatedClients: Type.Integer({ minimum: 1, default: 50, description: 'sessions that have not logged in yet, all addresses together' }),
    reservedClients: Type.Integer({
      minimum: 0,
      default: 20,
      description: 'of maxClients, slots only addresses with a device may take (allowFrom, or logged in during the last day)',
    }),
    stressThreshold: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.8,
      description: 'share of maxClients or maxUnauthenticatedClients in use at which stress mode starts',
    }),
    stressPreAuthTimeout: Duration('stressPreAuthTimeoutMs', { default: '10s', description: 'preAuthTimeout while in stress mode' }),
    authFailureDelay: Duration('authFailureDelayMs', { default: '1s', description: 'every failed login is answered after this long, whatever failed' }),
    logDetailPerSession: Type.Integer({ minimum: 0, default: 20, description: 'detail log lines per session before sampling starts' }),
    logSampleEvery: Type.Integer({ minimum: 1, default: 1000, description: 'past logDetailPerSession, one detail line in this many is written' }),
    authLockout: Section(
      {
        maxFailures: Type.Integer({ minimum: 1, default: 5, description: 'failures of one login from one address' }),
        window: Duration('windowMs', { default: '10m' }),
        duration: Duration('durationMs', { default: '15m' }),
        maxFailuresPerAddress: Type.Integer({ minimum: 1, default: 20, description: 'failures of all logins from one address (IPv6: one /64)' }),
        maxFailuresPerUsername: Type.Integer({ minimum: 1, default: 30, description: "failures of one login from all addresses except the device's own" }),
        usernameWindow: Duration('usernameWindowMs', { default: '1h' }),
        usernameDuration: Duration('usernameDurationMs', { default: '1h' }),
      },
      { default: {} },
    ),
    starttls: Type.Boolean({ default: false, description: 'offer STARTTLS on the plaintext port (off: old printers break on it)' }),
    tlsPort: Type.Optional(Port({ description: 'also listen with implicit TLS (SMTPS) on this port' })),
    tls: TlsServerSchema,
  },
  { default: {} },
);

export const Pop3Schema = Section(
  {
    enabled: Type.Boolean({ default: false }),
    host: Type.String({ default: '0.0.0.0' }),
    port: Port({ default: 110 }),
    authWindow: Duration('authWindowMs', { default: '10m', description: 'how long a POP3 login authorises the address for SMTP' }),
    maxClients: Type.Integer({ minimum: 1, default: 50 }),
    maxConnectionsPerIp: Type.Integer({ minimum: 1, default: 5 }),
    socketTimeout: Duration('socketTimeoutMs', { default: '60s' }),
    sessionTimeout: Duration('sessionTimeoutMs', { default: '2m', description: 'a whole POP3 session, however active' }),
  },
  { default: {} },
);

/** A device in the file. Field rules (patterns, lengths) are the device rulebook's (devices/rules.ts). */
export const DeviceSchema = Section({
  name: DeviceFields.name,
  auth: Type.Union([Type.Literal('password'), Type.Literal('none')], { default: 'password' }),
  username: Type.Optional(DeviceFields.username),
  password: Type.Optional(DeviceFields.password),
  passwordHash: Type.Optional(
    Type.String({
      pattern: '^scrypt\\$\\d+\\$\\d+\\$\\d+\\$[A-Za-z0-9+/]+={0,2}\\$[A-Za-z0-9+/]+={0,2}$',
      description: 'a hash from hashPassword(): scrypt$N$r$p$<salt base64>$<hash base64>',
      secret: true,
    }),
  ),
  allowFrom: DeviceFields.allowFrom({ default: [] }),
  allowRecipients: DeviceFields.allowRecipients({ default: [] }),
  allowSenders: Type.Optional(DeviceFields.allowSenders()),
  upstream: Type.Optional(Type.String({ minLength: 1 })),
  maxMessageSize: Type.Optional(Size()),
  enabled: Type.Boolean({ default: true }),
});

export const UpstreamSchema = Section(
  {
    name: DeviceFields.name,
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Port({ description: 'for tls/starttls; default tlsPort or starttlsPort' })),
    security: Type.Union([Type.Literal('tls'), Type.Literal('starttls'), Type.Literal('auto')], { default: 'auto' }),
    tlsPort: Port({ default: 465, description: 'port tried for implicit TLS when security is auto' }),
    starttlsPort: Port({ default: 587, description: 'port tried for STARTTLS when security is auto' }),
    auth: Type.Union([Type.Literal('password'), Type.Literal('oauth2')], { default: 'password' }),
    user: Type.String({ minLength: 1 }),
    password: Type.Optional(Type.String({ minLength: 1, secret: true })),
    oauth2: Type.Optional(
      Section({
        clientId: Type.String({ minLength: 1 }),
        clientSecret: Type.Optional(Type.String({ minLength: 1, secret: true })),
        refreshToken: Type.Optional(Type.String({ minLength: 1, secret: true })),
        tokenUrl: Type.Optional(
          Type.String({ minLength: 1, description: 'default: Google; use https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token for M365' }),
        ),
        scope: Type.Optional(Type.String()),
      }),
    ),
    maxConnections: Type.Integer({ minimum: 1, maximum: 20, default: 2 }),
    maxMessageSize: Size({ default: '35882577', description: "the upstream's SIZE limit (Gmail: 35882577)" }),
    maxRecipientsPerMessage: Type.Integer({ minimum: 1, default: 100 }),
    fromMode: Type.Union([Type.Literal('keep'), Type.Literal('rewrite')], { default: 'keep' }),
    ratePerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
    ratePerDay: Type.Optional(Type.Integer({ minimum: 1 })),
    connectionTimeout: Duration('connectionTimeoutMs', { default: '30s' }),
    socketTimeout: Duration('socketTimeoutMs', { default: '2m' }),
    tls: Section(
      {
        ca: Type.Optional(Type.String({ minLength: 1, description: 'path to a PEM CA bundle to trust' })),
        rejectUnauthorized: Type.Boolean({ default: true }),
        servername: Type.Optional(Type.String()),
        minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2' }),
      },
      { default: {} },
      // `ca` names a file; code reads its PEM text as `ca` and the file name as `caFile` (checks.ts reads it).
      ({ ca, ...tls }) => ({ ...tls, caFile: ca, ca: undefined as string | undefined }),
    ),
  },
  {},
  // For tls/starttls the port to dial; auto tries tlsPort then starttlsPort.
  (upstream) => ({ ...upstream, port: upstream.port ?? (upstream.security === 'starttls' ? upstream.starttlsPort : upstream.tlsPort) }),
);

export const DeliverySchema = Section(
  {
    concurrency: Type.Integer({ minimum: 1, maximum: 100, default: 8 }),
    maxLifetime: Duration('maxLifetimeMs', { default: '5d' }),
    retryBase: Duration('retryBaseMs', { default: '1m', description: 'first retry delay; doubles per attempt, with jitter' }),
    retryMax: Duration('retryMaxMs', { default: '1h' }),
    retention: Duration('retentionMs', { default: '7d', description: 'how long delivered bodies stay on disk' }),
    logRetention: Duration('logRetentionMs', { default: '30d', description: 'how long delivered/failed records stay in the message log' }),
    notifyAddress: Type.Optional(Type.String({ minLength: 3, description: 'admin address told about failed messages' })),
    shutdownTimeout: Duration('shutdownTimeoutMs', { default: '20s' }),
  },
  { default: {} },
);

export const AdminSchema = Section(
  {
    enabled: Type.Boolean({ default: true }),
    host: Type.String({ default: '127.0.0.1' }),
    port: Port({ default: 8025 }),
    tokens: Type.Array(Type.String({ minLength: 16 }), {
      default: [],
      secret: true,
      description: 'bearer tokens; empty = one generated into dataDir/admin-token at start',
    }),
    publicSmtpHost: Type.Optional(Type.String({ description: 'the address printers should type as SMTP Server Address' })),
    publicSmtpPort: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'the port printers should type when it differs from smtp.port (port mapping)' }),
    ),
    metricsToken: Type.Boolean({ default: false, description: 'require a token on /metrics too' }),
    sessionIdleTimeout: Duration('sessionIdleTimeoutMs', {
      default: '30m',
      description: 'a web console session ends after this long without a request',
    }),
  },
  { default: {} },
);

export const ConfigSchema = Section({
  dataDir: Type.Transform(Type.String({ default: './data' }))
    .Decode((path) => resolve(path))
    .Encode((path) => path),
  log: Section(
    {
      level: Type.Union(
        [
          Type.Literal('fatal'),
          Type.Literal('error'),
          Type.Literal('warn'),
          Type.Literal('info'),
          Type.Literal('debug'),
          Type.Literal('trace'),
          Type.Literal('silent'),
        ],
        { default: 'info' },
      ),
      format: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
        default: 'auto',
        description: 'auto: human-readable lines when stdout is a terminal, JSON lines otherwise',
      }),
    },
    { default: {} },
  ),
  timeZone: Type.Optional(
    Type.String({ minLength: 1, description: "IANA time zone for the message log's times of day and daily stats; default the system's" }),
  ),
  store: Section(
    {
      fsyncDirectory: Type.Boolean({
        default: false,
        description: 'fsync the spool directory after each accepted message (filesystems that do not order metadata with data)',
      }),
    },
    { default: {} },
  ),
  secretKey: Type.Optional(Type.String({ minLength: 32, secret: true, description: 'key that encrypts API-created device secrets' })),
  smtp: SmtpSchema,
  pop3: Pop3Schema,
  admin: AdminSchema,
  delivery: DeliverySchema,
  devices: Type.Array(DeviceSchema, { default: [] }),
  upstreams: Type.Array(UpstreamSchema, { default: [] }),
});

/** The config as the schema decodes it (before the rules between keys in checks.ts). */
export type DecodedConfig = StaticDecode<typeof ConfigSchema>;

/**
 * Every key path of the schema with its schema, arrays as `devices[]` (for docs, masking and tests).
 * The generated `<key>File` variants are included.
 */
export function schemaKeyPaths(schema: TSchema = ConfigSchema, prefix = ''): Array<{ path: string; schema: TSchema }> {
  const out: Array<{ path: string; schema: TSchema }> = [];
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  if (properties) {
    for (const [key, child] of Object.entries(properties)) {
      const path = prefix ? `${prefix}.${key}` : key;
      out.push({ path, schema: child });
      out.push(...schemaKeyPaths(child, path));
    }
  }
  const items = (schema as { items?: TSchema }).items;
  if (items && (schema as { type?: string }).type === 'array') out.push(...schemaKeyPaths(items, `${prefix}[]`));
  return out;
}

/** Names of every key marked secret (password, passwordHash, tokens, ...), for log redaction. */
export function secretKeyNames(): string[] {
  const names = new Set<string>();
  for (const { path, schema } of schemaKeyPaths()) if (isSecret(schema)) names.add(path.slice(path.lastIndexOf('.') + 1));
  return [...names].sort();
}
