/** Request and response schemas of /api/devices (also the OpenAPI source). Passwords appear only in the create and rotate answers. */
import { Type, type Static } from '@sinclair/typebox';
import { SIZE_TEXT } from '../../config/units.js';
import { DeviceFields, MIN_DEVICE_MESSAGE_SIZE } from '../../devices/index.js';
import { IsoTime } from './common.js';

// Field rules come from the device rulebook (devices/rules.ts), the same ones a config-file device meets.
export const DeviceName = DeviceFields.name;
export const DeviceParams = Type.Object({ name: DeviceName });

// `secret` marks config keys for redaction; it is not a JSON Schema keyword the API's validator knows.
const { secret: _secret, ...PasswordRule } = DeviceFields.password;
const Recipients = DeviceFields.allowRecipients({ minItems: 1 });
const Senders = DeviceFields.allowSenders({ minItems: 1 });
const AllowFrom = DeviceFields.allowFrom();
const MaxMessageSize = Type.Union([Type.Integer({ minimum: MIN_DEVICE_MESSAGE_SIZE }), Type.String({ pattern: SIZE_TEXT })], {
  description: 'bytes, or a size such as "10MB"; capped by smtp.maxMessageSize and the upstream limit',
});

export const PrinterState = Type.Union(
  [Type.Literal('Stop'), Type.Literal('Not connected'), Type.Literal('Connection in progress'), Type.Literal('Operating'), Type.Literal('Unable to connect')],
  { description: "the printer's own words (WorkCentre 6505DN SMTP Server Connection Status) for the last scan's whole trip" },
);

export const DeviceStatusView = Type.Object({
  state: PrinterState,
  lastSeenAt: Type.Optional(IsoTime('last login or transmission')),
  lastSeenAddress: Type.Optional(Type.String()),
  lastMessageAt: Type.Optional(IsoTime('last message received into the queue')),
  lastDeliveredAt: Type.Optional(IsoTime()),
  lastError: Type.Optional(Type.Object({ at: IsoTime(), message: Type.String() })),
  recentAuthFailures: Type.Integer({ minimum: 0, description: 'failed logins naming this device in the last hour' }),
  lastAuthFailureAt: Type.Optional(IsoTime()),
  lastAuthMethod: Type.Optional(Type.String({ description: 'how it last proved itself: PLAIN, LOGIN, CRAM-MD5, POP3-USER, POP3-APOP' })),
  popGrant: Type.Optional(Type.Object({ address: Type.String(), expiresAt: IsoTime() }, { description: 'a live POP-before-SMTP authorisation' })),
  counts: Type.Object(
    {
      received: Type.Integer({ minimum: 0 }),
      delivered: Type.Integer({ minimum: 0 }),
      failed: Type.Integer({ minimum: 0 }),
      queued: Type.Integer({ minimum: 0, description: 'messages still in the queue (queued, deferred, held, delivering)' }),
    },
    { description: 'received/delivered/failed since the gateway started; queued from the queue itself' },
  ),
});

export const DeviceView = Type.Object(
  {
    name: Type.String(),
    managedBy: Type.Union([Type.Literal('config'), Type.Literal('api')], { description: 'config-file devices are read-only here' }),
    enabled: Type.Boolean(),
    auth: Type.Union([Type.Literal('password'), Type.Literal('none')]),
    username: Type.Optional(Type.String({ description: 'SMTP login name' })),
    allowFrom: Type.Array(Type.String()),
    allowRecipients: Type.Array(Type.String()),
    allowSenders: Type.Optional(Type.Array(Type.String(), { description: 'allowed senders; absent = any' })),
    upstream: Type.Optional(Type.String()),
    maxMessageSize: Type.Integer({ description: 'effective limit in bytes' }),
    supportsChallengeAuth: Type.Boolean({ description: 'CRAM-MD5 and APOP possible (plaintext secret available)' }),
    createdAt: Type.Optional(IsoTime()),
    updatedAt: Type.Optional(IsoTime()),
    status: DeviceStatusView,
  },
  { title: 'Device' },
);
export type DeviceViewT = Static<typeof DeviceView>;

export const DeviceList = Type.Object({ items: Type.Array(DeviceView), total: Type.Integer() });

/** What to type into the printer's "Email Server" page (WorkCentre 6505DN CentreWare IS). */
export const PrinterSetup = Type.Object({
  page: Type.String({ description: 'where the values go on the printer' }),
  smtpServerAddress: Type.String({ description: '"SMTP Server Address"' }),
  smtpServerPortNumber: Type.Integer({ description: '"SMTP Server Port Number"' }),
  emailSendAuthentication: Type.String({ description: '"Email Send Authentication"' }),
  loginName: Type.Optional(Type.String({ description: '"Login Name"' })),
  password: Type.Optional(Type.String({ description: '"Password" (shown once)' })),
  senderAddresses: Type.Optional(
    Type.Array(Type.String(), {
      description: "the only sender (From) addresses the gateway takes from this device: set the printer's own e-mail address to one of them",
    }),
  ),
  note: Type.Optional(Type.String()),
});

export const DeviceCreated = Type.Object({
  device: DeviceView,
  password: Type.Optional(Type.String({ description: 'shown once; it cannot be read back later' })),
  printerSetup: PrinterSetup,
});

export const PasswordRotated = Type.Object({
  device: DeviceView,
  password: Type.String({ description: 'shown once' }),
  printerSetup: PrinterSetup,
});

export const CreateDeviceBody = Type.Object(
  {
    name: DeviceName,
    auth: Type.Optional(Type.Union([Type.Literal('password'), Type.Literal('none')], { default: 'password' })),
    username: Type.Optional(
      Type.String({ ...DeviceFields.username, description: `${DeviceFields.username.description}; generated from the name when omitted` }),
    ),
    password: Type.Optional(Type.String({ ...PasswordRule, description: `${PasswordRule.description}; generated (24 chars) when omitted` })),
    allowFrom: Type.Optional(AllowFrom),
    allowRecipients: Recipients,
    allowSenders: Type.Optional(Senders),
    upstream: Type.Optional(Type.String({ minLength: 1 })),
    maxMessageSize: Type.Optional(MaxMessageSize),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const PatchDeviceBody = Type.Object(
  {
    allowRecipients: Type.Optional(Recipients),
    allowSenders: Type.Optional(Type.Union([Senders, Type.Null()], { description: 'null removes the sender rules (any sender)' })),
    allowFrom: Type.Optional(AllowFrom),
    upstream: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()], { description: 'null removes the upstream' })),
    enabled: Type.Optional(Type.Boolean()),
    maxMessageSize: Type.Optional(MaxMessageSize),
  },
  { additionalProperties: false, minProperties: 1 },
);

/** The body is optional: Fastify validates a missing body as null. */
export const RotatePasswordBody = Type.Union([
  Type.Object(
    {
      password: Type.Optional(Type.String({ ...PasswordRule, description: `${PasswordRule.description}; generated when omitted` })),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);
