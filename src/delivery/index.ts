/**
 * The delivery worker: takes due messages from the queue and re-sends them through their device's
 * upstream account. A new message is attempted at once (kick); otherwise a timer wakes the worker at the
 * queue's next due time. Concurrency is bounded overall (delivery.concurrency) and per upstream
 * (maxConnections). One attempt is attempt.ts; transports and upstream state are upstreams.ts; what an
 * error means is classify.ts; the outgoing headers are headers.ts.
 *
 * Messages that cannot go are held, not failed: no device, no upstream (code no-upstream, released by
 * app.ts on reload), or an upstream whose credentials were refused (upstream-auth-failed, released here
 * when that upstream's config changes, on admin retryUpstream/verify, and at start).
 * Must not import: inbound, admin, pop3.
 */
import type { DeliveryConfig, UpstreamConfig } from '../config/index.js';
import type { Device, DeviceRegistry } from '../devices/index.js';
import type { Claim, HoldReason, Queue, QueuedMessage, RecipientStatus, ReleaseEvent } from '../queue/index.js';
import type { GatewayEventBus } from '../shared/events.js';
import type { UpstreamState } from './upstream-states.js';
import type { Logger } from '../observability/logger.js';
import { NotFoundError, errorMessage } from '../shared/errors.js';
import { attemptDelivery, HOLD_UPSTREAM_AUTH, type AttemptContext } from './attempt.js';
import { classifyUpstreamError, describeUpstreamError } from './classify.js';
import { generatedMessageId, rfc5322Date } from './headers.js';
import { buildFailureNotice } from './notify.js';
import { SmtpThread } from './smtp-thread.js';
import { Upstream, type UpstreamSendError, type UpstreamStatePersistence } from './upstreams.js';

export { classifyUpstreamError, CLASSIFICATION_TABLE, type Classification, type DeliveryAction } from './classify.js';
export { HOLD_UPSTREAM_AUTH } from './attempt.js';
export {
  UPSTREAM_STATES,
  assertUpstreamTransition,
  canUpstreamTransition,
  IllegalUpstreamTransitionError,
  type UpstreamState,
} from './upstream-states.js';

export interface UpstreamStatus {
  name: string;
  host: string;
  port: number;
  security: UpstreamConfig['security'];
  user: string;
  auth: UpstreamConfig['auth'];
  state: UpstreamState;
  lastSuccessAt?: number;
  lastError?: { at: number; message: string; code?: string; responseCode?: number };
  /** Messages of this upstream not yet delivered or failed (queued, deferred, held, delivering). */
  waiting: number;
  /** The endpoint in use (for auto: the one that worked; absent until known). */
  activePort?: number;
  activeSecurity?: 'tls' | 'starttls';
  /** Set while the upstream is paused (quota, rate limit, TLS failure). */
  pausedUntil?: number;
  /** Deliveries running now. */
  inFlight: number;
  /** Messages held because the credentials were refused. */
  held: number;
  /** What security `auto` picked (kept across restarts). */
  securityChosen?: 'tls' | 'starttls';
  /** A quota pause and its end. */
  quotaPausedUntil?: number;
  /** Messages this upstream delivered since midnight in the gateway's time zone. */
  sentToday: number;
  /** ratePerDay, or Gmail's documented 2,000 a day for Workspace accounts when unset. */
  dailyLimit?: number;
}

export interface DeliveryDeps {
  queue: Queue;
  devices: DeviceRegistry;
  events: GatewayEventBus;
  logger: Logger;
  config: () => DeliveryConfig;
  upstreams: readonly UpstreamConfig[];
  hostname: string;
  /** Clock (tests). */
  now?: () => number;
  /** Upstream state kept across restarts (what auto chose, a quota pause). */
  upstreamState?: UpstreamStatePersistence;
  /** Messages each upstream sent since `since` (epoch ms), for sentToday. */
  sentSince?: (since: number) => Map<string, number>;
  /** Start of today in the gateway's time zone (epoch ms). */
  startOfToday?: () => number;
}

export interface DeliveryWorker {
  start(): void;
  /** Stops claiming messages, waits up to timeoutMs for attempts in flight. */
  stop(timeoutMs: number): Promise<void>;
  /** A message became due (new, retried, released): look now. */
  kick(): void;
  setUpstreams(upstreams: readonly UpstreamConfig[]): void;
  upstreamStatus(): UpstreamStatus[];
  /** Connect, TLS and AUTH now; report the upstream's answer (admin "verify"). On success a held upstream resumes. */
  verify(upstream: string): Promise<UpstreamCheckResult>;
  /** Send a small test message through the upstream to `to` (admin "test"). */
  sendTest(upstream: string, to: string): Promise<UpstreamCheckResult>;
  /** Admin: forget the upstream's failure state and pause, release its held messages, try again now. Returns how many were released. */
  retryUpstream(upstream: string): Promise<number>;
}

export interface UpstreamCheckResult {
  ok: boolean;
  /** Port and security actually used. */
  port?: number;
  security?: 'tls' | 'starttls';
  response?: string;
  error?: { message: string; code?: string; responseCode?: number };
  durationMs: number;
}

type Plan =
  | { kind: 'send'; device: Device; upstream: Upstream }
  | { kind: 'hold'; code: HoldReason; reason: string }
  | { kind: 'wait'; until: number }
  | { kind: 'busy' };

const MAX_TIMER_MS = 2 ** 31 - 1;
/** Google's documented daily sending limit for a Workspace account (FACTS §3). */
const GMAIL_WORKSPACE_DAILY_LIMIT = 2_000;
/** After an unexpected error (disk, bug), the message waits this long before the worker looks again. */
const COOLDOWN_MS = 5_000;

export function createDeliveryWorker(deps: DeliveryDeps): DeliveryWorker {
  return new QueueDeliveryWorker(deps);
}

class QueueDeliveryWorker implements DeliveryWorker {
  private readonly upstreams = new Map<string, Upstream>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly cooldown = new Map<string, number>();
  /** nodemailer and TLS run on their own thread, so the main event loop stays free for the printers. */
  private readonly smtp: SmtpThread;
  private readonly now: () => number;
  private started = false;
  private stopping = false;
  private pumpQueued = false;
  private timer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;

  constructor(private readonly deps: DeliveryDeps) {
    this.now = deps.now ?? Date.now;
    this.smtp = new SmtpThread(deps.logger);
    for (const config of deps.upstreams) this.upstreams.set(config.name, this.createUpstream(config));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.deps.events.on('message.queued', this.onDue);
    this.deps.events.on('message.due', this.onDue);
    this.deps.events.on('device.created', this.onDeviceChanged);
    this.deps.events.on('device.updated', this.onDeviceChanged);
    // Held messages from a previous run whose cause is gone go now (a device that has an upstream since;
    // credentials that may have been fixed get one new try).
    void this.releaseHolds('start-up').finally(() => this.kick());
    this.scheduleSweep();
  }

  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.deps.events.off('message.queued', this.onDue);
    this.deps.events.off('message.due', this.onDue);
    this.deps.events.off('device.created', this.onDeviceChanged);
    this.deps.events.off('device.updated', this.onDeviceChanged);
    clearTimeout(this.timer);
    clearTimeout(this.sweepTimer);
    const settled = () => Promise.allSettled([...this.inFlight.values()]).then(() => true);
    if (this.inFlight.size > 0) {
      this.deps.logger.info({ inFlight: this.inFlight.size, timeoutMs }, 'delivery.draining');
      const drained = await Promise.race([settled(), delay(timeoutMs).then(() => false)]);
      if (!drained) {
        // Cut what is still running: those messages stay queued and go again after the restart.
        this.deps.logger.warn({ inFlight: this.inFlight.size }, 'delivery.drain-timeout: closing upstream connections');
        for (const upstream of this.upstreams.values()) upstream.close(true);
        await Promise.race([settled(), delay(2_000)]);
      }
    }
    for (const upstream of this.upstreams.values()) upstream.close(false);
    await this.smtp.stop();
  }

  private readonly onDue = (event?: { id?: string; reason?: string }) => {
    // An operator's release or retry gives refused credentials one new try (holds.ts: `operator` releases
    // every reason); otherwise the scan would be held again at once, unsent. A new refusal holds it again.
    if (event?.id && (event.reason === 'release' || event.reason === 'retry')) {
      const message = this.deps.queue.get(event.id);
      const device = message && this.deps.devices.get(message.device);
      const upstream = device?.upstream ? this.upstreams.get(device.upstream) : undefined;
      if (upstream?.state === 'auth-failed') upstream.reset();
    }
    this.kick();
  };
  private readonly onDeviceChanged = ({ name }: { name: string }) =>
    void this.releaseHolds('device-has-upstream', (_upstream, m) => m.device === name).finally(() => this.kick());

  kick(): void {
    if (!this.started || this.stopping || this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => this.pump());
  }

  setUpstreams(next: readonly UpstreamConfig[]): void {
    const names = new Set(next.map((u) => u.name));
    for (const [name, upstream] of this.upstreams) {
      if (names.has(name)) continue;
      upstream.close(false);
      this.upstreams.delete(name);
      this.deps.events.emit('upstream.removed', { upstream: name });
      this.deps.logger.info({ upstream: name }, 'upstream.removed');
    }
    for (const config of next) {
      const current = this.upstreams.get(config.name);
      if (!current) {
        this.upstreams.set(config.name, this.createUpstream(config));
        this.deps.logger.info({ upstream: config.name }, 'upstream.added');
        continue;
      }
      if (JSON.stringify(current.config) === JSON.stringify(config)) continue;
      current.reconfigure(config);
      this.deps.logger.info({ upstream: config.name }, 'upstream.reconfigured');
    }
    // Messages held for refused credentials go again when their upstream (possibly a newly mapped one)
    // is no longer known to refuse them: changed credentials reset the state to unknown.
    void this.releaseHolds('config-reloaded').finally(() => this.kick());
  }

  upstreamStatus(): UpstreamStatus[] {
    const waiting = new Map<string, number>();
    const held = new Map<string, number>();
    for (const message of this.deps.queue.openMessages()) {
      const name = this.upstreamNameOf(message);
      if (!name) continue;
      waiting.set(name, (waiting.get(name) ?? 0) + 1);
      if (message.holdCode === HOLD_UPSTREAM_AUTH) held.set(name, (held.get(name) ?? 0) + 1);
    }
    const now = this.now();
    const sent = this.deps.sentSince?.(this.deps.startOfToday?.() ?? now - 86_400_000) ?? new Map<string, number>();
    return [...this.upstreams.values()].map((u) => ({
      name: u.name,
      host: u.config.host,
      port: u.endpoint?.port ?? u.config.port,
      security: u.config.security,
      user: u.config.user,
      auth: u.config.auth,
      state: u.state,
      lastSuccessAt: u.lastSuccessAt,
      lastError: u.lastError && { ...u.lastError },
      waiting: waiting.get(u.name) ?? 0,
      activePort: u.endpoint?.port,
      activeSecurity: u.endpoint?.security,
      pausedUntil: u.pausedUntil !== undefined && u.pausedUntil > now ? u.pausedUntil : undefined,
      inFlight: u.busy,
      held: held.get(u.name) ?? 0,
      securityChosen: u.config.security === 'auto' ? u.endpoint?.security : undefined,
      quotaPausedUntil: u.state === 'quota-paused' && u.pausedUntil !== undefined && u.pausedUntil > now ? u.pausedUntil : undefined,
      sentToday: sent.get(u.name) ?? 0,
      dailyLimit: u.config.ratePerDay ?? (/(^|\.)gmail\.com$|(^|\.)googlemail\.com$/i.test(u.config.host) ? GMAIL_WORKSPACE_DAILY_LIMIT : undefined),
    }));
  }

  async verify(name: string): Promise<UpstreamCheckResult> {
    const upstream = this.requireUpstream(name);
    const startedAt = this.now();
    try {
      const endpoint = await upstream.verify();
      const wasHeld = upstream.state === 'auth-failed';
      upstream.noteSuccess(this.now(), { loginOnly: true });
      // Released here too (idempotent) so the answer comes after the held messages are queued again.
      if (wasHeld) await this.releaseHolds('credentials-proven', (n) => n === name);
      this.kick();
      return { ok: true, port: endpoint.port, security: endpoint.security, response: 'connected, TLS and AUTH accepted', durationMs: this.now() - startedAt };
    } catch (err) {
      return this.checkFailed(upstream, err as UpstreamSendError, startedAt);
    }
  }

  async sendTest(name: string, to: string): Promise<UpstreamCheckResult> {
    const upstream = this.requireUpstream(name);
    const startedAt = this.now();
    const raw = testMessage(upstream.config.user, to, this.deps.hostname, startedAt);
    try {
      const info = await upstream.send({ to: [to], size: raw.length, use8BitMime: false, head: raw });
      upstream.noteSuccess(this.now());
      if (info.accepted.length === 0) {
        const rejection = info.rejectedErrors[0];
        return {
          ok: false,
          error: { message: rejection ? describeUpstreamError(rejection) : 'recipient refused', responseCode: rejection?.responseCode },
          durationMs: this.now() - startedAt,
          port: upstream.endpoint?.port,
          security: upstream.endpoint?.security,
        };
      }
      return { ok: true, port: upstream.endpoint?.port, security: upstream.endpoint?.security, response: info.response, durationMs: this.now() - startedAt };
    } catch (err) {
      return this.checkFailed(upstream, err as UpstreamSendError, startedAt);
    }
  }

  async retryUpstream(name: string): Promise<number> {
    const upstream = this.requireUpstream(name);
    upstream.reset();
    const released = await this.deps.queue.releaseHolds('operator', (m) => m.held?.code === HOLD_UPSTREAM_AUTH && this.upstreamNameOf(m) === name);
    this.kick();
    return released;
  }

  // ---- scheduling ----

  private pump(): void {
    this.pumpQueued = false;
    if (!this.started || this.stopping) return;
    clearTimeout(this.timer);
    const now = this.now();
    const { concurrency } = this.deps.config();
    let blockedWake: number | undefined;
    const plans = new Map<string, Plan>();
    const left: Array<{ id: string; why: 'busy' | 'waiting' }> = [];
    // The queue hands out claims for the due messages this worker can start now; a message it cannot
    // (upstream busy, paused or pacing, cooling down after an error) stays unclaimed.
    const claims = this.deps.queue.claimDue(now, {
      limit: Math.max(0, concurrency - this.inFlight.size),
      pick: (message) => {
        if (this.inFlight.has(message.id)) return false;
        const cooldown = this.cooldown.get(message.id);
        if (cooldown !== undefined && cooldown > now) {
          blockedWake = Math.min(blockedWake ?? Infinity, cooldown);
          left.push({ id: message.id, why: 'waiting' });
          return false;
        }
        const plan = this.plan(message, now);
        if (plan.kind === 'busy') {
          left.push({ id: message.id, why: 'busy' });
          return false;
        }
        if (plan.kind === 'wait') {
          blockedWake = Math.min(blockedWake ?? Infinity, plan.until);
          left.push({ id: message.id, why: 'waiting' });
          return false;
        }
        if (plan.kind === 'send') {
          // Reserved now so the next message's plan sees this slot taken.
          plan.upstream.busy++;
          plan.upstream.pacing.record(now);
        }
        plans.set(message.id, plan);
        return true;
      },
    });
    for (const claim of claims) this.run(claim, plans.get(claim.message.id) as Plan);
    this.scheduleWake(now, blockedWake);
    // What this pass decided, for whoever must know that a due message was left on purpose (tests, the doctor).
    if (this.deps.events.listenerCount('delivery.decided') > 0) this.deps.events.emit('delivery.decided', { started: claims.map((c) => c.message.id), left });
  }

  /** Decides, without side effects on the queue, what happens to a due message now. */
  private plan(message: Readonly<QueuedMessage>, now: number): Plan {
    const device = this.deps.devices.get(message.device);
    if (!device) return { kind: 'hold', code: 'no-upstream', reason: `device '${message.device}' no longer exists` };
    if (!device.upstream) return { kind: 'hold', code: 'no-upstream', reason: `device '${device.name}' has no upstream configured` };
    const upstream = this.upstreams.get(device.upstream);
    if (!upstream) return { kind: 'hold', code: 'no-upstream', reason: `upstream '${device.upstream}' of device '${device.name}' is not configured` };
    if (upstream.state === 'auth-failed') {
      return {
        kind: 'hold',
        code: HOLD_UPSTREAM_AUTH,
        reason: `upstream '${upstream.name}' refused its credentials (${upstream.lastError?.message ?? 'auth failed'}); fix them in the config and reload`,
      };
    }
    const blockedUntil = upstream.blockedUntil(now);
    if (blockedUntil > now) return { kind: 'wait', until: blockedUntil };
    if (upstream.busy >= upstream.config.maxConnections) return { kind: 'busy' };
    return { kind: 'send', device, upstream };
  }

  private run(claim: Claim, plan: Plan): void {
    const message = claim.message;
    const upstream = plan.kind === 'send' ? plan.upstream : undefined;
    // The slot is freed once the upstream has answered, not after the outcome is written: the message
    // itself stays claimed until then, so it cannot be picked twice.
    let holdsSlot = upstream !== undefined;
    const releaseSlot = () => {
      if (!holdsSlot || !upstream) return;
      holdsSlot = false;
      upstream.busy--;
      this.kick();
    };
    const task = (async () => {
      try {
        if (plan.kind === 'hold') {
          await claim.held(plan.code, { detail: plan.reason });
        } else if (plan.kind === 'send') {
          await attemptDelivery({ ...this.attemptContext(), upstreamDone: releaseSlot }, claim, plan.device, plan.upstream);
        } else claim.release();
        this.cooldown.delete(message.id);
      } catch (err) {
        // Not an upstream verdict (disk trouble, a bug): leave the message as it was and look again later.
        this.deps.logger.error({ queueId: message.id, err: errorMessage(err) }, 'delivery.error');
        this.cooldown.set(message.id, this.now() + COOLDOWN_MS);
        claim.release();
      } finally {
        releaseSlot();
        this.inFlight.delete(message.id);
        this.kick();
      }
    })();
    this.inFlight.set(message.id, task);
  }

  private scheduleWake(now: number, blockedWake: number | undefined): void {
    let next = this.deps.queue.nextWakeAt();
    if (blockedWake !== undefined) {
      // Due messages are waiting for a pause or pacing: wake when that ends, or when a later one is due.
      next = Math.min(blockedWake, this.nextFutureDue(now) ?? Infinity);
    } else if (next !== undefined && next <= now) {
      // Due messages wait for a free slot; the end of an attempt in flight wakes the worker.
      next = this.inFlight.size > 0 ? undefined : now + 1_000;
    }
    if (next === undefined || !Number.isFinite(next)) return;
    this.timer = setTimeout(() => this.kick(), Math.min(MAX_TIMER_MS, Math.max(10, next - now)));
    this.timer.unref();
  }

  private nextFutureDue(now: number): number | undefined {
    return this.deps.queue.nextWakeAt(now);
  }

  private scheduleSweep(): void {
    const { retentionMs, logRetentionMs } = this.deps.config();
    const interval = Math.min(10 * 60_000, Math.max(1_000, Math.min(retentionMs, logRetentionMs) / 2));
    this.sweepTimer = setTimeout(() => {
      const config = this.deps.config();
      this.deps.queue
        .sweep(config.retentionMs, config.logRetentionMs)
        .then((result) => {
          if (result.bodiesRemoved || result.recordsRemoved) this.deps.logger.info(result, 'queue.retention.swept');
        })
        .catch((err) => this.deps.logger.error({ err: errorMessage(err) }, 'queue.retention.failed'))
        .finally(() => {
          if (!this.stopping) this.scheduleSweep();
        });
    }, interval);
    this.sweepTimer.unref();
  }

  // ---- helpers ----

  private createUpstream(config: UpstreamConfig): Upstream {
    return new Upstream(config, {
      logger: this.deps.logger,
      events: this.deps.events,
      hostname: this.deps.hostname,
      now: this.now,
      persistence: this.deps.upstreamState,
      smtp: this.smtp,
      // Whatever proved the credentials good again (a send on another connection, a test, a verify):
      // the messages held for them go now.
      onCredentialsAccepted: () => void this.releaseHolds('credentials-proven', (n) => n === config.name).finally(() => this.kick()),
    });
  }

  private requireUpstream(name: string): Upstream {
    const upstream = this.upstreams.get(name);
    if (!upstream) throw new NotFoundError('upstream', name);
    return upstream;
  }

  private upstreamNameOf(message: Pick<QueuedMessage, 'device' | 'upstream'>): string | undefined {
    return this.deps.devices.get(message.device)?.upstream ?? message.upstream;
  }

  /**
   * Releases what `event` may release (queue/holds.ts says which reason) once its cause is gone: the
   * device has a configured upstream (no-upstream), or the upstream no longer refuses (upstream-auth-failed).
   */
  private async releaseHolds(event: ReleaseEvent, only?: (upstreamName: string | undefined, message: QueuedMessage) => boolean): Promise<number> {
    try {
      const released = await this.deps.queue.releaseHolds(event, (m) => {
        const name = this.upstreamNameOf(m);
        if (only && !only(name, m)) return false;
        if (m.held?.code === 'no-upstream') {
          const device = this.deps.devices.get(m.device);
          return device?.upstream !== undefined && this.upstreams.has(device.upstream);
        }
        if (m.held?.code === HOLD_UPSTREAM_AUTH) {
          const upstream = name === undefined ? undefined : this.upstreams.get(name);
          return upstream !== undefined && upstream.state !== 'auth-failed';
        }
        return false;
      });
      if (released > 0) this.deps.logger.info({ released, event }, 'delivery.released');
      return released;
    } catch (err) {
      this.deps.logger.error({ err: errorMessage(err) }, 'delivery.release-failed');
      return 0;
    }
  }

  private checkFailed(upstream: Upstream, err: UpstreamSendError, startedAt: number): UpstreamCheckResult {
    const classification = classifyUpstreamError(err);
    upstream.noteFailure(err, classification.upstreamState, this.now());
    return {
      ok: false,
      port: upstream.endpoint?.port,
      security: upstream.endpoint?.security,
      error: { message: classification.reason, code: err.code, responseCode: err.responseCode },
      durationMs: this.now() - startedAt,
    };
  }

  private attemptContext(): AttemptContext {
    return {
      events: this.deps.events,
      logger: this.deps.logger,
      hostname: this.deps.hostname,
      delivery: this.deps.config(),
      now: this.now,
      notify: (message, reason, failed) => this.notify(message, reason, failed),
    };
  }

  /** Optional failure notice to delivery.notifyAddress, through the message's upstream or any working one. */
  private notify(message: QueuedMessage, reason: string, failedRecipients: RecipientStatus[]): void {
    const to = this.deps.config().notifyAddress;
    if (!to) return;
    const usable = (u: Upstream | undefined) => u !== undefined && u.state !== 'auth-failed' && u.state !== 'tls-failed';
    const own = this.upstreams.get(this.upstreamNameOf(message) ?? '');
    const upstream = usable(own) ? own : [...this.upstreams.values()].find((u) => u.state === 'up');
    if (!upstream) {
      this.deps.logger.warn({ queueId: message.id }, 'delivery.notice-skipped: no working upstream');
      return;
    }
    const raw = buildFailureNotice({ message, reason, failedRecipients, from: upstream.config.user, to, hostname: this.deps.hostname, now: this.now() });
    upstream.send({ to: [to], size: raw.length, use8BitMime: false, head: raw }).then(
      () => this.deps.logger.info({ queueId: message.id, upstream: upstream.name }, 'delivery.notice-sent'),
      (err: UpstreamSendError) =>
        this.deps.logger.warn({ queueId: message.id, upstream: upstream.name, err: describeUpstreamError(err) }, 'delivery.notice-failed'),
    );
  }
}

function testMessage(from: string, to: string, hostname: string, now: number): Buffer {
  const head = [
    `From: "scanrelay" <${from}>`,
    `To: <${to}>`,
    'Subject: scanrelay upstream test',
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: ${generatedMessageId({ queueId: `test.${now.toString(36)}`, hostname })}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\nThis is a test message sent by scanrelay through this upstream account.\r\n`, 'ascii');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
