/**
 * The one schema of config/gateway.yaml (TypeBox = JSON Schema + static types). Values that carry units
 * ("25MB", "5d") stay strings here and are resolved in index.ts. Every key is documented in
 * config/gateway.example.yaml; keep the two in step.
 */
import { Type, type Static } from '@sinclair/typebox';

const SIZE_TEXT = '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][iI]?)?[bB]?\\s*$';
const DURATION_TEXT = '^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)\\s*)+$|^\\d+$';

/** bytes, or a size such as "25MB" or "512KiB" */
const Size = (options: { default?: string | number; description?: string } = {}) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: SIZE_TEXT })], { title: 'size (bytes, or such as "25MB" or "512KiB")', ...options });
/** milliseconds, or a duration such as "90s", "5m", "5d" */
const Duration = (options: { default?: string | number; description?: string } = {}) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: DURATION_TEXT })], {
    title: 'duration (milliseconds, or such as "90s", "5m" or "5d")',
    ...options,
  });
const Port = (options: { default?: number; description?: string } = {}) => Type.Integer({ minimum: 0, maximum: 65535, ...options });
/** Login names the printer can hold: <= 63 chars of [A-Za-z0-9._@-] (WorkCentre 6505DN help). */
export const DEVICE_USERNAME_PATTERN = '^[A-Za-z0-9._@-]{1,63}$';
export const DEVICE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';

const TlsServerSchema = Type.Object(
  {
    certFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate; omitted = generated self-signed in dataDir' })),
    keyFile: Type.Optional(Type.String({ minLength: 1 })),
    legacyTls: Type.Union([Type.Boolean(), Type.Literal('starttls'), Type.Literal('tlsPort')], {
      default: false,
      description: 'allow TLS 1.0/1.1 and old ciphers (LAN-only compromise): true = both listeners, or only "starttls" (the plaintext port) or "tlsPort"',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const SmtpSchema = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0' }),
    port: Port({ default: 2525 }),
    hostname: Type.Optional(Type.String({ minLength: 1, description: 'name in the greeting and Received header' })),
    maxMessageSize: Size({ default: '25MB' }),
    maxRecipients: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    maxClients: Type.Integer({ minimum: 1, default: 100 }),
    maxConnectionsPerIp: Type.Integer({ minimum: 1, default: 10 }),
    socketTimeout: Duration({ default: '5m' }),
    closeTimeout: Duration({ default: '30s' }),
    maxSessionDuration: Duration({ default: '30m', description: 'a whole session, however active; bounds clients that drip one byte at a time' }),
    authLockout: Type.Object(
      {
        maxFailures: Type.Integer({ minimum: 1, default: 5 }),
        window: Duration({ default: '10m' }),
        duration: Duration({ default: '15m' }),
      },
      { additionalProperties: false, default: {} },
    ),
    starttls: Type.Boolean({ default: false, description: 'offer STARTTLS on the plaintext port (off: old printers break on it)' }),
    tlsPort: Type.Optional(Port({ description: 'also listen with implicit TLS (SMTPS) on this port' })),
    tls: TlsServerSchema,
  },
  { additionalProperties: false, default: {} },
);

export const Pop3Schema = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    host: Type.String({ default: '0.0.0.0' }),
    port: Port({ default: 110 }),
    authWindow: Duration({ default: '10m', description: 'how long a POP3 login authorises the address for SMTP' }),
    maxClients: Type.Integer({ minimum: 1, default: 50 }),
    socketTimeout: Duration({ default: '60s' }),
  },
  { additionalProperties: false, default: {} },
);

export const DeviceSchema = Type.Object(
  {
    name: Type.String({ pattern: DEVICE_NAME_PATTERN }),
    auth: Type.Union([Type.Literal('password'), Type.Literal('none')], { default: 'password' }),
    username: Type.Optional(Type.String({ pattern: DEVICE_USERNAME_PATTERN })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 31 })),
    passwordFile: Type.Optional(Type.String({ minLength: 1 })),
    passwordHash: Type.Optional(
      Type.String({
        pattern: '^scrypt\\$\\d+\\$\\d+\\$\\d+\\$[A-Za-z0-9+/]+={0,2}\\$[A-Za-z0-9+/]+={0,2}$',
        description: 'a hash from hashPassword(): scrypt$N$r$p$<salt base64>$<hash base64>',
      }),
    ),
    allowFrom: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    allowRecipients: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    upstream: Type.Optional(Type.String({ minLength: 1 })),
    maxMessageSize: Type.Optional(Size()),
    enabled: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

export const UpstreamSchema = Type.Object(
  {
    name: Type.String({ pattern: DEVICE_NAME_PATTERN }),
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Port()),
    security: Type.Union([Type.Literal('tls'), Type.Literal('starttls'), Type.Literal('auto')], { default: 'auto' }),
    tlsPort: Port({ default: 465, description: 'port tried for implicit TLS when security is auto' }),
    starttlsPort: Port({ default: 587, description: 'port tried for STARTTLS when security is auto' }),
    auth: Type.Union([Type.Literal('password'), Type.Literal('oauth2')], { default: 'password' }),
    user: Type.String({ minLength: 1 }),
    password: Type.Optional(Type.String({ minLength: 1 })),
    passwordFile: Type.Optional(Type.String({ minLength: 1 })),
    oauth2: Type.Optional(
      Type.Object(
        {
          clientId: Type.String({ minLength: 1 }),
          clientSecret: Type.Optional(Type.String({ minLength: 1 })),
          clientSecretFile: Type.Optional(Type.String({ minLength: 1 })),
          refreshToken: Type.Optional(Type.String({ minLength: 1 })),
          refreshTokenFile: Type.Optional(Type.String({ minLength: 1 })),
          tokenUrl: Type.Optional(
            Type.String({ minLength: 1, description: 'default: Google; use https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token for M365' }),
          ),
          scope: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    maxConnections: Type.Integer({ minimum: 1, maximum: 20, default: 2 }),
    maxMessageSize: Size({ default: '35882577', description: "the upstream's SIZE limit (Gmail: 35882577)" }),
    maxRecipientsPerMessage: Type.Integer({ minimum: 1, default: 100 }),
    fromMode: Type.Union([Type.Literal('keep'), Type.Literal('rewrite')], { default: 'keep' }),
    ratePerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
    ratePerDay: Type.Optional(Type.Integer({ minimum: 1 })),
    connectionTimeout: Duration({ default: '30s' }),
    socketTimeout: Duration({ default: '2m' }),
    tls: Type.Object(
      {
        ca: Type.Optional(Type.String({ minLength: 1, description: 'path to a PEM CA bundle to trust' })),
        rejectUnauthorized: Type.Boolean({ default: true }),
        servername: Type.Optional(Type.String()),
        minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2' }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export const DeliverySchema = Type.Object(
  {
    concurrency: Type.Integer({ minimum: 1, maximum: 100, default: 8 }),
    maxLifetime: Duration({ default: '5d' }),
    retryBase: Duration({ default: '1m', description: 'first retry delay; doubles per attempt, with jitter' }),
    retryMax: Duration({ default: '1h' }),
    retention: Duration({ default: '7d', description: 'how long delivered bodies stay on disk' }),
    logRetention: Duration({ default: '30d', description: 'how long delivered/failed records stay in the message log' }),
    notifyAddress: Type.Optional(Type.String({ minLength: 3, description: 'admin address told about failed messages' })),
    shutdownTimeout: Duration({ default: '20s' }),
  },
  { additionalProperties: false, default: {} },
);

export const AdminSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true }),
    host: Type.String({ default: '127.0.0.1' }),
    port: Port({ default: 8025 }),
    tokens: Type.Optional(Type.Array(Type.String({ minLength: 16 }))),
    tokensFile: Type.Optional(Type.String({ minLength: 1, description: 'file with one token per line' })),
    publicSmtpHost: Type.Optional(Type.String({ description: 'the address printers should type as SMTP Server Address' })),
    publicSmtpPort: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'the port printers should type when it differs from smtp.port (port mapping)' }),
    ),
    metricsToken: Type.Optional(Type.Boolean({ default: false, description: 'require a token on /metrics too' })),
  },
  { additionalProperties: false, default: {} },
);

export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ default: './data' }),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    timeZone: Type.Optional(
      Type.String({ minLength: 1, description: "IANA time zone for the message log's times of day and daily stats; default the system's" }),
    ),
    store: Type.Object(
      {
        fsyncDirectory: Type.Boolean({
          default: false,
          description: 'fsync the spool directory after each accepted message (filesystems that do not order metadata with data)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    secretKey: Type.Optional(Type.String({ minLength: 32, description: 'key that encrypts API-created device secrets' })),
    secretKeyFile: Type.Optional(Type.String({ minLength: 1 })),
    smtp: SmtpSchema,
    pop3: Pop3Schema,
    admin: AdminSchema,
    delivery: DeliverySchema,
    devices: Type.Array(DeviceSchema, { default: [] }),
    upstreams: Type.Array(UpstreamSchema, { default: [] }),
  },
  { additionalProperties: false },
);

export type RawConfig = Static<typeof ConfigSchema>;
