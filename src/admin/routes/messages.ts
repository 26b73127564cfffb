/**
 * /api/messages: the queue and the message log in one list (delivered and failed records stay until
 * delivery.logRetention), filtered by state/device/upstream/time, so "did the scan from the second-floor
 * copier at 10:32 go out?" is one call. Retry, release (held) and delete act on one message.
 */
import { HOLD_RULES, parseTimeBound, type AttemptRecord, type ListFilter, type QueuedMessage } from '../../queue/index.js';
import { ValidationError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, errorResponses, iso } from '../schemas/common.js';
import {
  BulkBody,
  BulkResult,
  FlushResult,
  HoldBody,
  MessageDetail,
  MessageList,
  MessageListQuery,
  MessageParams,
  QueueStatsView,
  StatsView,
  type MessageDetailT,
  type MessageFilterT,
  type MessageSummaryT,
} from '../schemas/messages.js';

const TAGS = ['messages'];

/**
 * Each route: validate (schema), one domain call on the queue, build the view. Delivery hears about
 * retried, released and flushed messages through the queue's message.due event.
 */
export function registerMessageRoutes(app: AdminApp, deps: AdminDeps): void {
  const detail = (message: QueuedMessage) => messageDetail(message, deps.queue.attempts(message.id));
  const toFilter = (query: MessageFilterT): ListFilter => {
    const now = Date.now();
    const zone = deps.config().timeZone;
    return {
      state: query.state,
      device: query.device,
      upstream: query.upstream,
      recipient: query.recipient,
      subject: query.subject,
      since: timeBound(query.since, now, zone, 'since'),
      until: timeBound(query.until, now, zone, 'until'),
    };
  };

  app.get(
    '/api/messages',
    {
      schema: {
        summary: 'Queue and message log, newest first; every filter is answered from an index',
        tags: TAGS,
        security: BEARER_SECURITY,
        querystring: MessageListQuery,
        response: { 200: MessageList, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { limit, offset, cursor } = request.query;
      const result = deps.queue.list({ ...toFilter(request.query), limit, offset, cursor });
      return { total: result.total, limit, offset, items: result.items.map(messageSummary), nextCursor: result.nextCursor };
    },
  );

  app.get(
    '/api/queue/stats',
    {
      schema: {
        summary: 'Messages by state and the age of the oldest waiting one',
        tags: TAGS,
        security: BEARER_SECURITY,
        response: { 200: QueueStatsView, ...errorResponses(401) },
      },
    },
    async () => deps.queue.stats(),
  );

  app.get(
    '/api/stats',
    {
      schema: {
        summary: 'Per device today and this week, the queue, and 14 days of outcomes (days in the gateway timeZone)',
        tags: TAGS,
        security: BEARER_SECURITY,
        response: { 200: StatsView, ...errorResponses(401) },
      },
    },
    async () => {
      const stats = deps.queue.statistics(deps.config().timeZone);
      return { ...stats, generatedAt: new Date(stats.generatedAt).toISOString() };
    },
  );

  app.post(
    '/api/queue/flush',
    {
      schema: {
        summary: 'Every deferred message is due now (like postqueue -f)',
        tags: TAGS,
        security: BEARER_SECURITY,
        response: { 200: FlushResult, ...errorResponses(401) },
      },
    },
    async (request) => {
      const flushed = await deps.queue.flushDeferred();
      request.log.info({ flushed }, 'admin.queue.flushed');
      return { flushed };
    },
  );

  app.get(
    '/api/messages/:id',
    {
      schema: {
        summary: 'One message: envelope, size, every attempt with its reply, next attempt, hold (never the body)',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => detail(deps.queue.require(request.params.id)),
  );

  const actions = {
    retry: { summary: 'Attempt now (deferred, held, failed, partly-failed or quarantined)', run: (id: string) => deps.queue.retryNow(id) },
    release: { summary: 'Release a held message for delivery (any hold, admin holds included)', run: (id: string) => deps.queue.release(id) },
  } as const;
  for (const [action, { summary, run }] of Object.entries(actions)) {
    app.post(
      `/api/messages/:id/${action}`,
      {
        schema: {
          summary,
          tags: TAGS,
          security: BEARER_SECURITY,
          params: MessageParams,
          response: { 200: MessageDetail, ...errorResponses(400, 401, 404, 409) },
        },
      },
      async (request) => {
        const message = await run(request.params.id);
        request.log.info({ queueId: message.id }, `admin.message.${action}`);
        return detail(message);
      },
    );
  }

  app.post(
    '/api/messages/:id/hold',
    {
      schema: {
        summary: 'Hold a waiting message until an operator releases it',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        body: HoldBody,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const message = await deps.queue.hold(request.params.id, request.body?.note);
      request.log.info({ queueId: message.id }, 'admin.message.hold');
      return detail(message);
    },
  );

  app.delete(
    '/api/messages/:id',
    {
      schema: {
        summary: 'Delete a message and its body; answers the message as it was',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const view = detail(deps.queue.require(request.params.id));
      await deps.queue.delete(request.params.id);
      request.log.info({ queueId: request.params.id }, 'admin.message.deleted');
      return view;
    },
  );

  app.post(
    '/api/messages/bulk',
    {
      schema: {
        summary: 'Retry, release, hold or delete many messages: by ids, or by a filter (the list keys)',
        tags: TAGS,
        security: BEARER_SECURITY,
        body: BulkBody,
        response: { 200: BulkResult, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { action, ids, filter } = request.body;
      if ((ids === undefined) === (filter === undefined)) throw new ValidationError('give exactly one of ids or filter');
      const targets = ids ?? deps.queue.list({ ...toFilter(filter ?? {}), limit: BULK_LIMIT }).items.map((m) => m.id);
      const result = await deps.queue.bulk(action, targets);
      request.log.info({ action, matched: result.matched, changed: result.changed }, 'admin.messages.bulk');
      return result;
    },
  );
}

function timeBound(value: string | undefined, now: number, zone: string, key: 'since' | 'until'): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseTimeBound(value, now, zone, key);
  } catch (err) {
    throw err instanceof ValidationError ? new ValidationError(err.message, `querystring.${key}`) : err;
  }
}

/** A filter matching more than this acts on the newest ones only (repeat the call for the rest). */
const BULK_LIMIT = 5_000;

function outcome(message: QueuedMessage): string {
  switch (message.state) {
    case 'delivered':
      return `delivered${message.upstreamResponse ? `: ${message.upstreamResponse}` : ''}`;
    case 'partly-failed':
      return `partly failed: delivered to ${message.recipients.filter((r) => r.state === 'delivered').length} of ${message.recipients.length} recipients; ${message.recipients
        .filter((r) => r.state === 'failed')
        .map((r) => `${r.address}: ${r.response ?? 'refused'}`)
        .join('; ')}`;
    case 'failed':
      return `failed: ${message.failReason ?? message.lastError?.message ?? 'unknown reason'}`;
    case 'quarantined':
      return `quarantined: ${message.quarantine?.reason ?? 'cannot be used'}; the body is kept`;
    case 'held':
      return `held: ${message.held?.reason ?? 'waiting for release'}`;
    case 'deferred':
      return `deferred: ${message.lastError?.message ?? 'will retry'}`;
    case 'delivering':
      return 'being delivered now';
    default:
      return 'waiting for delivery';
  }
}

export function messageSummary(message: QueuedMessage): MessageSummaryT {
  return {
    id: message.id,
    state: message.state,
    device: message.device,
    upstream: message.upstream,
    from: message.envelope.mailFrom,
    recipients: message.envelope.rcptTo.length,
    subject: message.headers.subject,
    size: message.size,
    attempts: message.attempts,
    receivedAt: iso(message.receivedAt),
    updatedAt: iso(message.updatedAt),
    nextAttemptAt: iso(message.nextAttemptAt),
    deliveredAt: iso(message.deliveredAt),
    failedAt: iso(message.failedAt),
    outcome: outcome(message),
  };
}

export function messageDetail(message: QueuedMessage, attempts: AttemptRecord[] = []): MessageDetailT {
  const hold = message.held;
  return {
    id: message.id,
    state: message.state,
    device: message.device,
    upstream: message.upstream,
    envelope: { ...message.envelope, rcptTo: [...message.envelope.rcptTo] },
    recipients: message.recipients.map((r) => ({ address: r.address, state: r.state, response: r.response, at: iso(r.at) })),
    headers: { from: message.headers.from, to: message.headers.to, subject: message.headers.subject, messageId: message.headers.messageId },
    client: { ...message.client },
    size: message.size,
    sha256: message.sha256,
    attemptCount: message.attempts,
    attempts: attempts.map((a) => ({ ...a, at: iso(a.at) as string })),
    receivedAt: iso(message.receivedAt),
    updatedAt: iso(message.updatedAt),
    nextAttemptAt: iso(message.nextAttemptAt),
    lastAttemptAt: iso(message.lastAttemptAt),
    lastError: message.lastError && { ...message.lastError, at: iso(message.lastError.at) },
    held: hold && { code: hold.code, reason: hold.reason },
    hold: hold && {
      reason: hold.code,
      owner: hold.owner ?? HOLD_RULES[hold.code]?.owner ?? 'system',
      text: HOLD_RULES[hold.code]?.text ?? hold.reason,
      fix: HOLD_RULES[hold.code]?.fix ?? '',
      since: iso(hold.since ?? message.updatedAt) as string,
      detail: hold.reason,
      note: hold.note,
    },
    quarantine: message.quarantine && { reason: message.quarantine.reason, at: iso(message.quarantine.at) as string },
    deliveredAt: iso(message.deliveredAt),
    failedAt: iso(message.failedAt),
    failReason: message.failReason,
    upstreamResponse: message.upstreamResponse,
    bodyRemoved: message.bodyRemoved ?? false,
  };
}
