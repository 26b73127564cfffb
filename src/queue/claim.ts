/**
 * A claim: one delivery attempt's hold on one message. It owns the lease from `claimDue` until its one
 * outcome call (`delivered`, `deferred`, `held`, `failed`) or `release` (given back unchanged). It opens
 * the body for the sender (`readHead`, `bodyDescriptor`: one open file per claim), so delivery never sees
 * where bodies live, and it is where every attempt gets recorded with its upstream, time, reply and outcome.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ConflictError } from '../shared/errors.js';
import type { GatewayEventBus } from '../shared/events.js';
import { HOLD_RULES, makeHold, type HoldReason } from './holds.js';
import type { AttemptError, AttemptRecord, QueuedMessage, RecipientStatus } from './index.js';

/** What a claim needs from the queue (implemented by Queue; internal to this folder). */
export interface ClaimHost {
  readonly events: GatewayEventBus;
  readonly now: () => number;
  bodyPath(id: string): string;
  settle(next: QueuedMessage, attempt?: AttemptRecord): Promise<void>;
  saveProgress(next: QueuedMessage): Promise<void>;
  unclaim(id: string): void;
}

export interface DeferOptions {
  upstream?: string;
  error: Omit<AttemptError, 'at'>;
  nextAttemptAt: number;
  /** The upstream's own reply text, when it answered. */
  reply?: string;
  /** A quota or rate pause: the message waits without an attempt being counted. */
  paused?: boolean;
}

export interface HoldOptions {
  /** The particular cause, in words (which upstream, its reply). */
  detail: string;
  upstream?: string;
  reply?: string;
  error?: Omit<AttemptError, 'at'>;
  /** Whether an upstream was actually tried (counted as an attempt). */
  attempted?: boolean;
}

export interface FailOptions {
  reason: string;
  upstream?: string;
  reply?: string;
  error?: Omit<AttemptError, 'at'>;
  /** Whether an upstream was actually tried (counted as an attempt). */
  attempted?: boolean;
}

export interface Claim {
  /** The claimed message (state `delivering`). */
  readonly message: QueuedMessage;
  /** The first `bytes` bytes of the body, or undefined when the body is shorter. Rejects with ENOENT when the body is gone. */
  readHead(bytes: number): Promise<Buffer | undefined>;
  /**
   * The body's open file descriptor, for the SMTP client thread to read from (positioned reads only).
   * It stays open until the claim's outcome call or release; the reader must be done by then.
   */
  bodyDescriptor(): Promise<number>;
  /** Per-recipient results between groups, so a crash does not re-send to recipients already done. */
  saveRecipients(results: RecipientStatus[]): Promise<void>;
  /** The upstream took every pending recipient (or the rest were refused for good: partly-failed). */
  delivered(details: { upstream: string; reply?: string }): Promise<void>;
  deferred(options: DeferOptions): Promise<void>;
  held(reason: HoldReason, options: HoldOptions): Promise<void>;
  failed(options: FailOptions): Promise<void>;
  /** Gives the message back unchanged (nothing was attempted). */
  release(): void;
}

export class QueueClaim implements Claim {
  private done = false;
  private current: QueuedMessage;
  private body?: Promise<FileHandle>;

  constructor(
    private readonly host: ClaimHost,
    readonly message: QueuedMessage,
    /** The state its row keeps while claimed (queued or deferred). */
    private readonly storedState: QueuedMessage['state'],
  ) {
    this.current = structuredClone(message);
  }

  async readHead(bytes: number): Promise<Buffer | undefined> {
    const handle = await this.openBody();
    if (bytes <= 0) return undefined;
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return bytesRead === bytes ? buffer : undefined;
  }

  async bodyDescriptor(): Promise<number> {
    return (await this.openBody()).fd;
  }

  private openBody(): Promise<FileHandle> {
    this.assertOpen();
    this.body ??= open(this.host.bodyPath(this.message.id), 'r');
    return this.body;
  }

  /** Closed in the background: nothing waits for it, and a failed close loses nothing. */
  private closeBody(): void {
    const body = this.body;
    this.body = undefined;
    body?.then((handle) => handle.close()).catch(() => undefined);
  }

  async saveRecipients(results: RecipientStatus[]): Promise<void> {
    this.assertOpen();
    applyRecipients(this.current, results);
    await this.host.saveProgress(this.stored());
  }

  async delivered(details: { upstream: string; reply?: string }): Promise<void> {
    const at = this.host.now();
    const next = this.begin(details.upstream, at, true);
    for (const r of next.recipients) if (r.state === 'pending') Object.assign(r, { state: 'delivered', response: details.reply, at });
    const partly = next.recipients.some((r) => r.state === 'failed');
    next.state = partly ? 'partly-failed' : 'delivered';
    next.deliveredAt = at;
    next.upstreamResponse = details.reply;
    next.nextAttemptAt = undefined;
    next.held = undefined;
    await this.finish(next, { at, upstream: details.upstream, outcome: next.state, reply: details.reply });
    const latencyMs = at - next.receivedAt;
    this.host.events.emit('message.delivered', {
      id: next.id,
      device: next.device,
      upstream: details.upstream,
      latencyMs,
      size: next.size,
      reply: details.reply,
      attempt: next.attempts,
      partly,
    });
  }

  async deferred(options: DeferOptions): Promise<void> {
    const at = this.host.now();
    const next = this.begin(options.upstream, at, !options.paused);
    next.state = 'deferred';
    next.lastError = { ...options.error, at };
    next.nextAttemptAt = options.nextAttemptAt;
    await this.finish(next, attemptOf(at, options.paused ? 'paused' : 'deferred', options.upstream, options.reply, options.error));
    this.host.events.emit('message.deferred', {
      id: next.id,
      device: next.device,
      upstream: next.upstream,
      reason: options.error.message,
      nextAttemptAt: options.nextAttemptAt,
      reply: options.reply,
      attempt: next.attempts,
    });
  }

  async held(reason: HoldReason, options: HoldOptions): Promise<void> {
    const at = this.host.now();
    const next = this.begin(options.upstream, at, options.attempted ?? false);
    next.state = 'held';
    next.held = makeHold(reason, options.detail, at);
    next.nextAttemptAt = undefined;
    if (options.error) next.lastError = { ...options.error, at };
    await this.finish(next, options.attempted ? attemptOf(at, 'held', options.upstream, options.reply, options.error) : undefined);
    this.host.events.emit('message.held', {
      id: next.id,
      device: next.device,
      upstream: next.upstream,
      reason: options.detail,
      code: reason,
      fix: HOLD_RULES[reason].fix,
      reply: options.reply,
      attempt: next.attempts,
      attempted: options.attempted ?? false,
    });
  }

  async failed(options: FailOptions): Promise<void> {
    const at = this.host.now();
    const next = this.begin(options.upstream, at, options.attempted ?? false);
    next.state = 'failed';
    next.failedAt = at;
    next.failReason = options.reason;
    next.nextAttemptAt = undefined;
    if (options.error) next.lastError = { ...options.error, at };
    for (const r of next.recipients) if (r.state === 'pending') Object.assign(r, { state: 'failed', response: options.reason, at });
    await this.finish(next, attemptOf(at, 'failed', options.upstream, options.reply ?? options.reason, options.error));
    this.host.events.emit('message.failed', {
      id: next.id,
      device: next.device,
      upstream: next.upstream,
      reason: options.reason,
      reply: options.reply,
      attempt: next.attempts,
    });
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.closeBody();
    this.host.unclaim(this.message.id);
  }

  private begin(upstream: string | undefined, at: number, countAttempt: boolean): QueuedMessage {
    this.assertOpen();
    this.done = true;
    this.closeBody();
    const next = this.stored();
    if (upstream) next.upstream = upstream;
    if (countAttempt) {
      next.attempts++;
      next.lastAttemptAt = at;
    }
    return next;
  }

  private async finish(next: QueuedMessage, attempt: AttemptRecord | undefined): Promise<void> {
    await this.host.settle(next, attempt);
  }

  private stored(): QueuedMessage {
    const copy = structuredClone(this.current);
    copy.state = this.storedState;
    return copy;
  }

  private assertOpen(): void {
    if (this.done) throw new ConflictError(`the claim on message '${this.message.id}' already has its outcome`);
  }
}

function applyRecipients(message: QueuedMessage, results: RecipientStatus[]): void {
  for (const result of results) {
    const target = message.recipients.find((r) => r.address.toLowerCase() === result.address.toLowerCase());
    if (target) Object.assign(target, result);
  }
}

function attemptOf(
  at: number,
  outcome: AttemptRecord['outcome'],
  upstream: string | undefined,
  reply: string | undefined,
  error: Omit<AttemptError, 'at'> | undefined,
): AttemptRecord {
  return { at, upstream, outcome, reply: reply ?? error?.message, code: error?.code, responseCode: error?.responseCode };
}
