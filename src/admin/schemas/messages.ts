/** Schemas of /api/messages (queue and message log). Bodies are never exposed; times are ISO strings. */
import { Type, type Static } from '@sinclair/typebox';
import { IsoTime } from './common.js';
import { HOLD_REASONS, MESSAGE_STATES } from '../../queue/index.js';

export const MessageStateSchema = Type.Union(MESSAGE_STATES.map((s) => Type.Literal(s)));
export const HoldReasonSchema = Type.Union(HOLD_REASONS.map((s) => Type.Literal(s)));

export const MessageParams = Type.Object({
  id: Type.String({ pattern: '^[0-9a-z]{9}[0-9a-f]{8}$', description: 'queue id, as in the "250 queued as <id>" reply' }),
});

export const MessageListQuery = Type.Object(
  {
    state: Type.Optional(Type.Array(MessageStateSchema, { description: 'one or more states (repeat the parameter)' })),
    device: Type.Optional(Type.String({ minLength: 1 })),
    upstream: Type.Optional(Type.String({ minLength: 1 })),
    since: Type.Optional(IsoTime('received at or after')),
    until: Type.Optional(IsoTime('received at or before')),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
  },
  { additionalProperties: false },
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
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
  items: Type.Array(MessageSummary),
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
    attempts: Type.Integer(),
    receivedAt: IsoTime(),
    updatedAt: IsoTime(),
    nextAttemptAt: Type.Optional(IsoTime()),
    lastAttemptAt: Type.Optional(IsoTime()),
    lastError: Type.Optional(AttemptErrorView),
    held: Type.Optional(Type.Object({ code: Type.String(), reason: Type.String() })),
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

export const QueueStatsView = Type.Object({
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'messages by state' }),
  oldestPendingAgeSeconds: Type.Number({ description: 'age of the oldest message not yet delivered or failed' }),
});
