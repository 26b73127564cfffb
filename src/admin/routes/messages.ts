/**
 * /api/messages: the queue and the message log in one list (delivered and failed records stay until
 * delivery.logRetention), filtered by state/device/upstream/time, so "did the scan from the second-floor
 * copier at 10:32 go out?" is one call. Retry, release (held) and delete act on one message.
 */
import type { QueuedMessage } from '../../queue/index.js';
import { ConflictError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, NoContent, errorResponses, iso } from '../schemas/common.js';
import { MessageDetail, MessageList, MessageListQuery, MessageParams, QueueStatsView, type MessageDetailT, type MessageSummaryT } from '../schemas/messages.js';

const TAGS = ['messages'];

export function registerMessageRoutes(app: AdminApp, deps: AdminDeps): void {
  app.get(
    '/api/messages',
    {
      schema: {
        summary: 'Queue and message log, newest first',
        tags: TAGS,
        security: BEARER_SECURITY,
        querystring: MessageListQuery,
        response: { 200: MessageList, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { state, device, upstream, since, until, limit, offset } = request.query;
      const sinceMs = since === undefined ? undefined : Date.parse(since);
      const untilMs = until === undefined ? undefined : Date.parse(until);
      // The queue filters all but `until`; paginate here so `total` counts exactly what matched.
      const matched = deps.queue
        .list({ state, device, upstream, since: sinceMs, limit: Number.MAX_SAFE_INTEGER })
        .items.filter((m) => untilMs === undefined || m.receivedAt <= untilMs);
      return { total: matched.length, limit, offset, items: matched.slice(offset, offset + limit).map(messageSummary) };
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
    '/api/messages/:id',
    {
      schema: {
        summary: 'One message: envelope, size, attempts, next attempt, last error (never the body)',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => messageDetail(deps.queue.require(request.params.id)),
  );

  app.post(
    '/api/messages/:id/retry',
    {
      schema: {
        summary: 'Attempt now (deferred, held or failed)',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const message = await deps.queue.retryNow(request.params.id);
      deps.delivery.kick();
      request.log.info({ queueId: message.id }, 'admin.message.retry');
      return messageDetail(message);
    },
  );

  app.post(
    '/api/messages/:id/release',
    {
      schema: {
        summary: 'Release a held message for delivery',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 200: MessageDetail, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const current = deps.queue.require(request.params.id);
      if (current.state !== 'held') throw new ConflictError(`message '${current.id}' is ${current.state}, not held`);
      const message = await deps.queue.retryNow(current.id);
      deps.delivery.kick();
      request.log.info({ queueId: message.id }, 'admin.message.release');
      return messageDetail(message);
    },
  );

  app.delete(
    '/api/messages/:id',
    {
      schema: {
        summary: 'Delete a message and its body',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: MessageParams,
        response: { 204: NoContent, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request, reply) => {
      await deps.queue.delete(request.params.id);
      request.log.info({ queueId: request.params.id }, 'admin.message.deleted');
      return reply.code(204).send(null);
    },
  );
}

function outcome(message: QueuedMessage): string {
  switch (message.state) {
    case 'delivered':
      return `delivered${message.upstreamResponse ? `: ${message.upstreamResponse}` : ''}`;
    case 'failed':
      return `failed: ${message.failReason ?? message.lastError?.message ?? 'unknown reason'}`;
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

export function messageDetail(message: QueuedMessage): MessageDetailT {
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
    attempts: message.attempts,
    receivedAt: iso(message.receivedAt),
    updatedAt: iso(message.updatedAt),
    nextAttemptAt: iso(message.nextAttemptAt),
    lastAttemptAt: iso(message.lastAttemptAt),
    lastError: message.lastError && { ...message.lastError, at: iso(message.lastError.at) },
    held: message.held,
    deliveredAt: iso(message.deliveredAt),
    failedAt: iso(message.failedAt),
    failReason: message.failReason,
    upstreamResponse: message.upstreamResponse,
    bodyRemoved: message.bodyRemoved ?? false,
  };
}
