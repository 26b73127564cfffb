/**
 * One delivery attempt of one message through one upstream: build the outgoing headers, send the pending
 * recipients in groups of maxRecipientsPerMessage (raw bytes streamed from the spool), classify what came
 * back, and record the outcome through the claim (one outcome call, which also keeps the attempt):
 *
 *   all recipients accepted         -> claim.delivered
 *   some refused for good           -> their results, then delivered (partly-failed) or failed (none accepted)
 *   temporary trouble               -> claim.deferred with back-off, or failed once maxLifetime has passed
 *   credentials refused             -> claim.held('upstream-auth-failed')
 *   quota / rate limit / TLS        -> upstream paused, message deferred to the end of the pause (no attempt counted)
 *   message refused for good        -> claim.failed with the upstream's reply
 */
import type { DeliveryConfig } from '../config/index.js';
import type { Device } from '../devices/index.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayEventBus } from '../shared/events.js';
import { nextRetryDelay, type Claim, type QueuedMessage, type RecipientStatus } from '../queue/index.js';
import { classifyUpstreamError, type Classification } from './classify.js';
import { buildOutgoingHeaders } from './headers.js';
import type { Upstream, UpstreamSendError } from './upstreams.js';

export interface AttemptContext {
  events?: GatewayEventBus;
  logger: Logger;
  hostname: string;
  delivery: DeliveryConfig;
  now: () => number;
  /** Tell the admin about a failure (optional notice mail); never throws. */
  notify: (message: QueuedMessage, reason: string, failedRecipients: RecipientStatus[]) => void;
  /** The upstream has answered: its connection slot may serve the next message while the outcome is written. */
  upstreamDone?: () => void;
}

/** Held because the upstream refused its credentials; released when the upstream's config changes. */
export const HOLD_UPSTREAM_AUTH = 'upstream-auth-failed';

interface Stop {
  err: UpstreamSendError;
  classification: Classification;
}

export async function attemptDelivery(ctx: AttemptContext, claim: Claim, device: Device, upstream: Upstream): Promise<void> {
  const message = claim.message;
  const log = ctx.logger.child({ queueId: message.id, device: device.name, upstream: upstream.name });

  let block: Buffer | undefined;
  let fd: number;
  try {
    block = await claim.readHead(message.headers.headerBytes ?? 0);
    fd = await claim.bodyDescriptor();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fail(ctx, claim, upstream, 'the spooled message body is missing', [], log);
    return;
  }
  const headers = buildOutgoingHeaders(block, message.headers, {
    queueId: message.id,
    receivedAt: message.receivedAt,
    hostname: ctx.hostname,
    deviceName: device.name,
    client: message.client,
    account: upstream.config.user,
    fromMode: upstream.config.fromMode,
  });
  if (headers.rewriteSkipped) log.warn('delivery.from-rewrite-skipped: header block longer than 64 KiB or without an end; From kept as sent');
  const size = headers.prefix.length + message.size - headers.skipBytes;
  if (size > upstream.config.maxMessageSize) {
    await fail(ctx, claim, upstream, `message is ${size} bytes; upstream '${upstream.name}' accepts at most ${upstream.config.maxMessageSize}`, [], log);
    return;
  }

  const pending = message.recipients.filter((r) => r.state === 'pending').map((r) => r.address);
  const groups = chunk(pending, upstream.config.maxRecipientsPerMessage);
  ctx.events?.emit('message.attempt', { id: message.id, device: device.name, upstream: upstream.name });
  const startedAt = ctx.now();

  const accepted = new Set<string>();
  const failed: RecipientStatus[] = [];
  const deferredReasons: string[] = [];
  let unsaved: RecipientStatus[] = [];
  let response: string | undefined;
  let stop: Stop | undefined;

  const recordRejections = (errors: UpstreamSendError[], at: number) => {
    for (const rejection of errors) {
      if (!rejection.recipient) continue;
      const c = classifyUpstreamError(rejection);
      if (c.action === 'fail-recipient' || c.action === 'fail-message') {
        const status: RecipientStatus = { address: rejection.recipient, state: 'failed', response: c.reason, at };
        failed.push(status);
        unsaved.push(status);
      } else {
        deferredReasons.push(`${rejection.recipient}: ${c.reason}`);
      }
    }
  };

  for (let i = 0; i < groups.length && !stop; i++) {
    try {
      const info = await upstream.send({
        to: groups[i],
        size,
        use8BitMime: message.has8bit || message.envelope.bodyType === '8bitmime',
        messageId: headers.messageId,
        head: headers.prefix,
        body: { fd, start: headers.skipBytes },
      });
      const at = ctx.now();
      upstream.noteSuccess(at);
      response = info.response;
      // Nothing refused means the whole group went, even if nodemailer re-wrote an address in `accepted`
      // (it parses envelope strings as address lists): never re-send a group the upstream took.
      const acceptedNow = info.rejected.length === 0 && info.rejectedErrors.length === 0 ? groups[i] : info.accepted;
      for (const address of acceptedNow) {
        accepted.add(address.toLowerCase());
        unsaved.push({ address, state: 'delivered', response: info.response, at });
      }
      recordRejections(info.rejectedErrors, at);
    } catch (caught) {
      const err = caught as UpstreamSendError;
      const classification = classifyUpstreamError(err);
      const perRecipient =
        err.rejectedErrors && err.rejectedErrors.length > 0 && classification.action !== 'hold-upstream' && classification.action !== 'pause-upstream';
      upstream.noteFailure(err, classification.upstreamState, ctx.now());
      if (perRecipient) recordRejections(err.rejectedErrors ?? [], ctx.now());
      else stop = { err, classification };
    }
    // Between groups, results are saved so a crash does not re-send to recipients already done.
    if (i < groups.length - 1 && unsaved.length > 0) {
      await claim.saveRecipients(unsaved);
      unsaved = [];
    }
  }

  ctx.upstreamDone?.();
  const remaining = pending.filter((a) => !accepted.has(a.toLowerCase()) && !failed.some((f) => f.address.toLowerCase() === a.toLowerCase()));
  const deliveredBefore = message.recipients.some((r) => r.state === 'delivered');
  const durationMs = ctx.now() - startedAt;

  // Everything accepted in one go is the common case: one durable write (markDelivered).
  const allAccepted = remaining.length === 0 && failed.length === 0;
  if (unsaved.length > 0 && !allAccepted) await claim.saveRecipients(unsaved);
  const reply = lastReply(stop, response);

  if (stop?.classification.action === 'hold-upstream') {
    const reason = `upstream '${upstream.name}' refused its credentials (${stop.classification.reason}); fix them in the config and reload`;
    await claim.held(HOLD_UPSTREAM_AUTH, { detail: reason, upstream: upstream.name, reply, error: errorFacts(stop), attempted: true });
    log.error({ reason: stop.classification.reason, durationMs }, 'delivery.held');
    return;
  }
  if (stop?.classification.action === 'pause-upstream') {
    const until = upstream.pause(stop.classification.pause ?? 'short', ctx.delivery, ctx.now());
    // A pause is the upstream's limit, not this message's failure: no attempt is counted.
    await claim.deferred({ upstream: upstream.name, error: errorFacts(stop), nextAttemptAt: until, reply, paused: true });
    log.warn(
      { reason: stop.classification.reason, category: stop.classification.category, pausedUntil: new Date(until).toISOString(), durationMs },
      'delivery.deferred',
    );
    return;
  }
  if (stop?.classification.action === 'fail-message' || stop?.classification.action === 'fail-recipient') {
    await fail(ctx, claim, upstream, stop.classification.reason, failed, log, stop);
    return;
  }

  if (remaining.length === 0) {
    if (accepted.size > 0 || deliveredBefore) {
      await claim.delivered({ upstream: upstream.name, reply: response });
      log.info({ recipients: accepted.size, refused: failed.length, response, durationMs, size }, 'delivery.delivered');
      if (failed.length > 0) ctx.notify(message, 'some recipients were refused by the upstream', failed);
    } else {
      await fail(ctx, claim, upstream, failed.map((f) => `${f.address}: ${f.response}`).join('; '), failed, log);
    }
    return;
  }

  // Something is still pending: a temporary failure of the whole attempt or of some recipients.
  const reason = stop?.classification.reason ?? `recipients deferred by the upstream: ${deferredReasons.join('; ')}`;
  const now = ctx.now();
  const expiresAt = message.receivedAt + ctx.delivery.maxLifetimeMs;
  if (now >= expiresAt) {
    const attempts = message.attempts + 1;
    await fail(
      ctx,
      claim,
      upstream,
      `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} over ${formatAge(now - message.receivedAt)}: ${reason}`,
      failed,
      log,
      stop,
    );
    return;
  }
  const nextAttemptAt = Math.min(now + nextRetryDelay(message.attempts + 1, ctx.delivery.retryBaseMs, ctx.delivery.retryMaxMs), expiresAt);
  await claim.deferred({ upstream: upstream.name, error: stop ? errorFacts(stop) : { message: reason }, nextAttemptAt, reply });
  log.warn(
    { reason, category: stop?.classification.category, nextAttemptAt: new Date(nextAttemptAt).toISOString(), attempts: message.attempts + 1, durationMs },
    'delivery.deferred',
  );
}

async function fail(
  ctx: AttemptContext,
  claim: Claim,
  upstream: Upstream,
  reason: string,
  failedRecipients: RecipientStatus[],
  log: Logger,
  stop?: Stop,
): Promise<void> {
  const message = claim.message;
  await claim.failed({ reason, upstream: upstream.name, error: stop ? errorFacts(stop) : undefined, reply: stop?.err.response, attempted: stop !== undefined });
  log.error({ reason }, 'delivery.failed');
  const pendingAsFailed =
    failedRecipients.length > 0
      ? failedRecipients
      : message.recipients.filter((r) => r.state === 'pending').map((r) => ({ ...r, state: 'failed' as const, response: reason }));
  ctx.notify(message, reason, pendingAsFailed);
}

/** The upstream's own words: its reply to the failing command, else the last 250. */
function lastReply(stop: Stop | undefined, response: string | undefined): string | undefined {
  return stop?.err.response ?? response;
}

function errorFacts(stop: Stop): { message: string; code?: string; responseCode?: number } {
  return { message: stop.classification.reason, code: stop.err.code, responseCode: stop.err.responseCode };
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += Math.max(1, size)) out.push(items.slice(i, i + Math.max(1, size)));
  return out;
}

function formatAge(ms: number): string {
  if (ms >= 86_400_000) return `${(ms / 86_400_000).toFixed(1)} days`;
  if (ms >= 3_600_000) return `${(ms / 3_600_000).toFixed(1)} hours`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} minutes`;
  return `${Math.round(ms / 1000)} seconds`;
}
