/** Schemas of /api/messages (queue and message log). Bodies are never exposed; times are ISO strings. */
import { Type, type Static } from '@sinclair/typebox';
import { IsoTime } from './common.js';
import { HOLD_REASONS, MESSAGE_STATES } from '../../queue/index.js';

export const MessageStateSchema = Type.Union(MESSAGE_STATES.map((s) => Type.Literal(s)));
export const HoldReasonSchema = Type.Union(HOLD_REASONS.map((s) => Type.Literal(s)));

function MessageIdSchema() {
  return Type.String({ pattern: '^[0-9a-z]{9}[0-9a-f]{8}$', description: 'queue id, as in the "250 queued as <id>" reply' });
}

export const MessageParams = Type.Object({ id: MessageIdSchema() });

const TIME_BOUND = 'ISO 8601 (2026-12-01T10:30:00Z), a time of day (10:30 = today in the gateway timeZone) or an age (30m, 2h, 3d)';

/** The filter keys shared by the list and by bulk actions. */
const filterKeys = {
  state: Type.Optional(Type.Array(MessageStateSchema, { description: 'one or more states (repeat the parameter)' })),
  device: Type.Optional(Type.String({ minLength: 1 })),
  upstream: Type.Optional(Type.String({ minLength: 1 })),
  recipient: Type.Optional(Type.String({ minLength: 3, maxLength: 320, description: 'exact envelope recipient, case-insensitive' })),
  subject: Type.Optional(Type.String({ minLength: 3, maxLength: 200, description: 'case-insensitive part of the subject (3 characters or more)' })),
  since: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: `received at or after: ${TIME_BOUND}` })),
  until: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: `received at or before: ${TIME_BOUND}` })),
};

export const MessageListQuery = Type.Object(
  {
    ...filterKeys,
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'nextCursor of the previous page (stable while messages arrive)' })),
  },
  { additionalProperties: false },
);

export const MessageFilter = Type.Object(filterKeys, { additionalProperties: false });

export const BulkBody = Type.Object(
  {
    action: Type.Union([Type.Literal('retry'), Type.Literal('release'), Type.Literal('hold'), Type.Literal('delete')]),
    ids: Type.Optional(Type.Array(MessageIdSchema(), { minItems: 1, maxItems: 1000 })),
    filter: Type.Optional(MessageFilter),
  },
  { additionalProperties: false },
);

export const BulkResult = Type.Object({
  matched: Type.Integer(),
  changed: Type.Integer(),
  skipped: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })),
});

export const HoldBody = Type.Union([
  Type.Object({ note: Type.Optional(Type.String({ maxLength: 500, description: 'why it is held (shown in the console)' })) }, { additionalProperties: false }),
  Type.Null(),
]);

export const FlushResult = Type.Object({ flushed: Type.Integer({ description: 'deferred messages made due now' }) });

const Counts = Type.Object({ received: Type.Integer(), delivered: Type.Integer(), failed: Type.Integer() });
export const StatsView = Type.Object(
  {
    generatedAt: IsoTime(),
    timeZone: Type.String(),
    devices: Type.Array(Type.Object({ device: Type.String(), today: Counts, week: Counts })),
    queue: Type.Object({
      queued: Type.Integer(),
      deferred: Type.Integer(),
      held: Type.Integer(),
      delivering: Type.Integer(),
      quarantined: Type.Integer(),
    }),
    daily: Type.Array(Type.Object({ day: Type.String({ description: 'YYYY-MM-DD in timeZone' }), delivered: Type.Integer(), failed: Type.Integer() })),
  },
  { title: 'Stats' },
);

const AttemptErrorView = Type.Object({
  at: IsoTime(),
  message: Type.String(),
  code: Type.Optional(Type.String()),
  responseCode: Type.Optional(Type.Integer()),
});

export const MessageSummary = Type.Object(
  {
    id: Type.String(),
    state: MessageStateSchema,
    device: Type.String(),
    upstream: Type.Optional(Type.String()),
    from: Type.String({ description: 'envelope sender' }),
    recipients: Type.Integer({ description: 'number of envelope recipients' }),
    subject: Type.Optional(Type.String()),
    size: Type.Integer(),
    attempts: Type.Integer(),
    receivedAt: IsoTime(),
    updatedAt: IsoTime(),
    nextAttemptAt: Type.Optional(IsoTime()),
    deliveredAt: Type.Optional(IsoTime()),
    failedAt: Type.Optional(IsoTime()),
    outcome: Type.String({ description: 'one line for the message log: delivered, waiting, why it failed or is held' }),
  },
  { title: 'MessageSummary' },
);

export const MessageList = Type.Object({
  total: Type.Integer({ description: 'exact number of messages matching the filter' }),
  limit: Type.Integer(),
  offset: Type.Integer(),
  items: Type.Array(MessageSummary),
  nextCursor: Type.Optional(Type.String({ description: 'pass as cursor for the next page' })),
});

const AttemptView = Type.Object({
  at: IsoTime(),
  upstream: Type.Optional(Type.String()),
  outcome: Type.Union(['delivered', 'deferred', 'held', 'failed', 'partly-failed', 'paused'].map((o) => Type.Literal(o))),
  reply: Type.Optional(Type.String({ description: "the upstream's own reply" })),
  code: Type.Optional(Type.String()),
  responseCode: Type.Optional(Type.Integer()),
});

const HoldView = Type.Object({
  reason: HoldReasonSchema,
  owner: Type.Union([Type.Literal('system'), Type.Literal('admin')]),
  text: Type.String({ description: 'what is wrong, in plain words' }),
  fix: Type.String({ description: 'what to do about it' }),
  since: IsoTime(),
  detail: Type.Optional(Type.String({ description: 'the particular cause' })),
  note: Type.Optional(Type.String()),
});

export const MessageDetail = Type.Object(
  {
    id: Type.String(),
    state: MessageStateSchema,
    device: Type.String(),
    upstream: Type.Optional(Type.String()),
    envelope: Type.Object({
      mailFrom: Type.String(),
      rcptTo: Type.Array(Type.String()),
      bodyType: Type.Union([Type.Literal('7bit'), Type.Literal('8bitmime')]),
      smtpUtf8: Type.Boolean(),
    }),
    recipients: Type.Array(
      Type.Object({
        address: Type.String(),
        state: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
        response: Type.Optional(Type.String()),
        at: Type.Optional(IsoTime()),
      }),
    ),
    headers: Type.Object(
      {
        from: Type.Optional(Type.String()),
        to: Type.Optional(Type.String()),
        subject: Type.Optional(Type.String()),
        messageId: Type.Optional(Type.String()),
      },
      { description: 'sniffed from the header block at receipt' },
    ),
    client: Type.Object({
      address: Type.String(),
      heloName: Type.Optional(Type.String()),
      sessionId: Type.String(),
      authMethod: Type.Optional(Type.String()),
    }),
    size: Type.Integer(),
    sha256: Type.String(),
    receivedAt: IsoTime(),
    updatedAt: IsoTime(),
    nextAttemptAt: Type.Optional(IsoTime()),
    lastAttemptAt: Type.Optional(IsoTime()),
    lastError: Type.Optional(AttemptErrorView),
    held: Type.Optional(Type.Object({ code: Type.String(), reason: Type.String() })),
    hold: Type.Optional(HoldView),
    quarantine: Type.Optional(Type.Object({ reason: Type.String(), at: IsoTime() })),
    attempts: Type.Array(AttemptView, { description: 'every attempt, oldest first' }),
    attemptCount: Type.Integer({ description: 'attempts that reached an upstream (a quota pause is not counted)' }),
    deliveredAt: Type.Optional(IsoTime()),
    failedAt: Type.Optional(IsoTime()),
    failReason: Type.Optional(Type.String()),
    upstreamResponse: Type.Optional(Type.String()),
    bodyRemoved: Type.Boolean({ description: 'the body was removed by retention; the record stays for the log' }),
  },
  { title: 'Message' },
);
export type MessageDetailT = Static<typeof MessageDetail>;
export type MessageSummaryT = Static<typeof MessageSummary>;
export type MessageFilterT = Static<typeof MessageFilter>;

export const QueueStatsView = Type.Object({
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'messages by state' }),
  oldestPendingAgeSeconds: Type.Number({ description: 'age of the oldest message not yet delivered or failed' }),
});
