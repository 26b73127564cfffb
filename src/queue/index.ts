/**
 * The durable queue: spooled bodies plus one fsynced JSON record per message (the journal) in
 * dataDir/queue. `accept` resolves only once body and record are on disk, which is when the printer may
 * hear 250. State changes (deferred, held, delivered, failed) are each one durable record write. State is
 * also kept in memory for the worker and the admin API. At start, the directory is reconciled: temp
 * files and bodies without a record (never acknowledged) are removed.
 */
import { mkdir, readdir, readFile, rename, unlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { writeFileDurable, fsyncDirectory } from '../shared/durable-fs.js';
import { newQueueId, isQueueId } from '../shared/ids.js';
import { NotFoundError, ConflictError } from '../shared/errors.js';
import type { GatewayEventBus } from '../shared/events.js';
import { spoolBody, toSpoolError, type SniffedHeaders } from './spool.js';

export { nextRetryDelay } from './schedule.js';
export { findHeaderEnd, parseHeaderBlock, type SniffedHeaders } from './spool.js';

export type MessageState = 'queued' | 'deferred' | 'held' | 'delivering' | 'delivered' | 'failed';
export type StoredState = Exclude<MessageState, 'delivering'>;

export interface Envelope {
  mailFrom: string;
  rcptTo: string[];
  bodyType: '7bit' | '8bitmime';
  smtpUtf8: boolean;
}

export interface RecipientStatus {
  address: string;
  state: 'pending' | 'delivered' | 'failed';
  response?: string;
  at?: number;
}

export interface AttemptError {
  message: string;
  /** nodemailer code (EAUTH, ESOCKET...) or gateway code. */
  code?: string;
  responseCode?: number;
  at: number;
}

export interface ClientInfo {
  address: string;
  heloName?: string;
  sessionId: string;
  authMethod?: string;
}

/** One message: envelope and state, never the body. Times are epoch milliseconds. */
export interface QueuedMessage {
  id: string;
  state: MessageState;
  device: string;
  /** Upstream at the last attempt (or at accept time). */
  upstream?: string;
  envelope: Envelope;
  recipients: RecipientStatus[];
  size: number;
  sha256: string;
  has8bit: boolean;
  headers: SniffedHeaders;
  client: ClientInfo;
  receivedAt: number;
  updatedAt: number;
  attempts: number;
  nextAttemptAt?: number;
  lastAttemptAt?: number;
  lastError?: AttemptError;
  held?: { code: string; reason: string };
  deliveredAt?: number;
  failedAt?: number;
  failReason?: string;
  upstreamResponse?: string;
  bodyRemoved?: boolean;
}

export interface AcceptInput {
  device: string;
  upstream?: string;
  envelope: Envelope;
  client: ClientInfo;
  maxSize: number;
  /** Set when the message must wait (e.g. the device has no upstream). */
  hold?: { code: string; reason: string };
}

export interface ListFilter {
  state?: MessageState | MessageState[];
  device?: string;
  upstream?: string;
  since?: number;
  limit?: number;
  offset?: number;
}

export interface QueueStats {
  counts: Record<MessageState, number>;
  /** Age in seconds of the oldest message not yet delivered or failed (0 when none). */
  oldestPendingAgeSeconds: number;
}

export interface QueueOptions {
  dataDir: string;
  events: GatewayEventBus;
  now?: () => number;
  /** The disk refused a record after the upstream accepted the message (kept in memory, retried). */
  onPersistError?: (id: string, err: unknown) => void;
  /** Such a record has now been written. */
  onPersisted?: (id: string) => void;
}

const OPEN_STATES: ReadonlySet<MessageState> = new Set(['queued', 'deferred', 'held', 'delivering']);

export class Queue {
  readonly queueDir: string;
  readonly tmpDir: string;
  private readonly messages = new Map<string, QueuedMessage>();
  private readonly leased = new Set<string>();
  /** Per-message write chain: record writes for one message never overlap or reorder. */
  private readonly writes = new Map<string, Promise<void>>();
  /** Records the disk refused after the upstream accepted the message: retried in the background. */
  private readonly persistRetries = new Map<string, NodeJS.Timeout>();
  private readonly persistDelays = new Map<string, number>();
  private readonly events: GatewayEventBus;
  private readonly now: () => number;

  private constructor(private readonly options: QueueOptions) {
    this.queueDir = join(options.dataDir, 'queue');
    this.tmpDir = join(options.dataDir, 'tmp');
    this.events = options.events;
    this.now = options.now ?? Date.now;
  }

  static async open(options: QueueOptions): Promise<Queue> {
    const queue = new Queue(options);
    await queue.recover();
    return queue;
  }

  /** Streams the body to disk, then writes the record; resolves after both are fsynced. */
  async accept(input: AcceptInput, body: Readable): Promise<QueuedMessage> {
    const id = newQueueId(this.now());
    const tmpBody = join(this.tmpDir, `${id}.eml`);
    const spooled = await spoolBody(body, tmpBody, input.maxSize);
    const at = this.now();
    const message: QueuedMessage = {
      id,
      state: input.hold ? 'held' : 'queued',
      device: input.device,
      upstream: input.upstream,
      envelope: input.envelope,
      recipients: input.envelope.rcptTo.map((address) => ({ address, state: 'pending' })),
      size: spooled.size,
      sha256: spooled.sha256,
      has8bit: spooled.has8bit,
      headers: spooled.headers,
      client: input.client,
      receivedAt: at,
      updatedAt: at,
      attempts: 0,
      nextAttemptAt: input.hold ? undefined : at,
      held: input.hold,
    };
    try {
      await rename(tmpBody, this.bodyPath(id));
      await writeFileDurable(this.recordPath(id), JSON.stringify(stripState(message)), { tmpDir: this.tmpDir });
    } catch (err) {
      // Nothing of an unacknowledged message may stay: a record whose directory fsync failed would come
      // back at start-up as a bogus failed message.
      await unlink(tmpBody).catch(() => undefined);
      await unlink(this.bodyPath(id)).catch(() => undefined);
      await unlink(this.recordPath(id)).catch(() => undefined);
      await fsyncDirectory(this.queueDir).catch(() => undefined);
      // A full disk at the record write is still "full" (452), not a generic local error.
      throw toSpoolError(err);
    }
    this.messages.set(id, message);
    this.events.emit('message.queued', { id, device: message.device, size: message.size, upstream: message.upstream });
    if (input.hold) this.events.emit('message.held', { id, device: message.device, upstream: message.upstream, reason: input.hold.reason });
    return { ...message };
  }

  get(id: string): QueuedMessage | undefined {
    const message = this.messages.get(id);
    return message && this.view(message);
  }

  require(id: string): QueuedMessage {
    const message = this.get(id);
    if (!message) throw new NotFoundError('message', id);
    return message;
  }

  /** Newest first. */
  list(filter: ListFilter = {}): { total: number; items: QueuedMessage[] } {
    const states = filter.state === undefined ? undefined : new Set(Array.isArray(filter.state) ? filter.state : [filter.state]);
    const matched: QueuedMessage[] = [];
    for (const message of this.messages.values()) {
      const view = this.view(message);
      if (states && !states.has(view.state)) continue;
      if (filter.device && view.device !== filter.device) continue;
      if (filter.upstream && view.upstream !== filter.upstream) continue;
      if (filter.since && view.receivedAt < filter.since) continue;
      matched.push(view);
    }
    matched.sort((a, b) => b.receivedAt - a.receivedAt || (a.id < b.id ? 1 : -1));
    const offset = filter.offset ?? 0;
    return { total: matched.length, items: matched.slice(offset, offset + (filter.limit ?? 50)) };
  }

  stats(): QueueStats {
    const counts: Record<MessageState, number> = { queued: 0, deferred: 0, held: 0, delivering: 0, delivered: 0, failed: 0 };
    let oldest = Infinity;
    for (const message of this.messages.values()) {
      const state = this.leased.has(message.id) ? 'delivering' : message.state;
      counts[state]++;
      if (OPEN_STATES.has(state) && message.receivedAt < oldest) oldest = message.receivedAt;
    }
    return { counts, oldestPendingAgeSeconds: oldest === Infinity ? 0 : Math.max(0, (this.now() - oldest) / 1000) };
  }

  /** Messages ready for an attempt (queued/deferred, due, not leased), oldest first. */
  due(now = this.now()): QueuedMessage[] {
    const out: QueuedMessage[] = [];
    for (const message of this.messages.values()) {
      if ((message.state === 'queued' || message.state === 'deferred') && !this.leased.has(message.id) && (message.nextAttemptAt ?? 0) <= now) {
        out.push({ ...message });
      }
    }
    return out.sort((a, b) => (a.nextAttemptAt ?? 0) - (b.nextAttemptAt ?? 0) || (a.id < b.id ? -1 : 1));
  }

  /** Earliest nextAttemptAt among waiting messages (for the worker's timer). */
  nextWakeAt(): number | undefined {
    let next: number | undefined;
    for (const message of this.messages.values()) {
      if ((message.state === 'queued' || message.state === 'deferred') && !this.leased.has(message.id)) {
        const at = message.nextAttemptAt ?? 0;
        if (next === undefined || at < next) next = at;
      }
    }
    return next;
  }

  /** Claims a message for one delivery attempt (in memory: a crash simply makes it due again). */
  lease(id: string): boolean {
    const message = this.messages.get(id);
    if (!message || this.leased.has(id) || (message.state !== 'queued' && message.state !== 'deferred')) return false;
    this.leased.add(id);
    return true;
  }

  unlease(id: string): void {
    this.leased.delete(id);
  }

  bodyPath(id: string): string {
    return join(this.queueDir, `${id}.eml`);
  }

  /** Counts the attempt; call before sending so a crash mid-send still shows it. Not fsynced (advisory). */
  noteAttempt(id: string, upstream: string): void {
    const message = this.messages.get(id);
    if (!message) return;
    message.attempts++;
    message.lastAttemptAt = this.now();
    message.upstream = upstream;
    this.events.emit('message.attempt', { id, device: message.device, upstream });
  }

  /** Per-recipient results of a partly successful attempt; pending ones stay for the next attempt. */
  async setRecipientResults(id: string, results: RecipientStatus[]): Promise<void> {
    await this.update(id, { upstreamAccepted: true }, (message) => {
      for (const result of results) {
        const target = message.recipients.find((r) => r.address.toLowerCase() === result.address.toLowerCase());
        if (target) Object.assign(target, result);
      }
    });
  }

  async markDelivered(id: string, details: { upstream: string; response?: string }): Promise<void> {
    const at = this.now();
    const message = await this.update(id, { upstreamAccepted: true }, (m) => {
      m.state = 'delivered';
      m.deliveredAt = at;
      m.upstream = details.upstream;
      m.upstreamResponse = details.response;
      m.nextAttemptAt = undefined;
      m.held = undefined;
      for (const r of m.recipients) if (r.state === 'pending') Object.assign(r, { state: 'delivered', response: details.response, at });
    });
    this.leased.delete(id);
    this.events.emit('message.delivered', { id, device: message.device, upstream: details.upstream, latencyMs: at - message.receivedAt, size: message.size });
  }

  async markDeferred(id: string, error: Omit<AttemptError, 'at'>, nextAttemptAt: number): Promise<void> {
    const message = await this.update(id, {}, (m) => {
      m.state = 'deferred';
      m.lastError = { ...error, at: this.now() };
      m.nextAttemptAt = nextAttemptAt;
    });
    this.leased.delete(id);
    this.events.emit('message.deferred', { id, device: message.device, upstream: message.upstream, reason: error.message, nextAttemptAt });
  }

  /** Keeps the message queued but out of the worker's way until released (e.g. no upstream). */
  async markHeld(id: string, held: { code: string; reason: string }): Promise<void> {
    const message = await this.update(id, {}, (m) => {
      m.state = 'held';
      m.held = held;
      m.nextAttemptAt = undefined;
    });
    this.leased.delete(id);
    this.events.emit('message.held', { id, device: message.device, upstream: message.upstream, reason: held.reason });
  }

  async markFailed(id: string, reason: string, error?: Omit<AttemptError, 'at'>): Promise<void> {
    const at = this.now();
    const message = await this.update(id, {}, (m) => {
      m.state = 'failed';
      m.failedAt = at;
      m.failReason = reason;
      m.nextAttemptAt = undefined;
      if (error) m.lastError = { ...error, at };
      for (const r of m.recipients) if (r.state === 'pending') Object.assign(r, { state: 'failed', response: reason, at });
    });
    this.leased.delete(id);
    this.events.emit('message.failed', { id, device: message.device, upstream: message.upstream, reason });
  }

  /** Admin: attempt now (deferred, held or failed with its body still on disk). */
  async retryNow(id: string): Promise<QueuedMessage> {
    const current = this.require(id);
    if (current.state === 'delivered' || current.state === 'delivering') throw new ConflictError(`message '${id}' is ${current.state}`);
    if (current.bodyRemoved) throw new ConflictError(`message '${id}' no longer has its body`);
    await this.update(id, {}, (m) => {
      m.state = 'queued';
      m.nextAttemptAt = this.now();
      m.held = undefined;
      m.failedAt = undefined;
      m.failReason = undefined;
      for (const r of m.recipients) if (r.state === 'failed') Object.assign(r, { state: 'pending', response: undefined, at: undefined });
    });
    return this.require(id);
  }

  /** Re-queues held messages matching the predicate (after a config fix). Returns how many. */
  async releaseHeld(predicate: (message: QueuedMessage) => boolean): Promise<number> {
    const targets = [...this.messages.values()].filter((m) => m.state === 'held' && predicate({ ...m }));
    for (const message of targets) await this.retryNow(message.id);
    return targets.length;
  }

  /** Admin: remove a message and its body. A message being delivered cannot be deleted. */
  async delete(id: string): Promise<void> {
    const message = this.require(id);
    if (this.leased.has(id)) throw new ConflictError(`message '${id}' is being delivered; try again in a moment`);
    await this.removeFiles(id);
    this.messages.delete(id);
    this.events.emit('message.deleted', { id, device: message.device });
  }

  /** Retention: drop delivered bodies after `bodyMs`, delivered/failed records after `recordMs`. */
  async sweep(bodyMs: number, recordMs: number): Promise<{ bodiesRemoved: number; recordsRemoved: number }> {
    const now = this.now();
    let bodiesRemoved = 0;
    let recordsRemoved = 0;
    for (const message of [...this.messages.values()]) {
      const finishedAt = message.deliveredAt ?? message.failedAt;
      if (finishedAt === undefined) continue;
      if (now - finishedAt >= recordMs) {
        await this.removeFiles(message.id);
        this.messages.delete(message.id);
        recordsRemoved++;
      } else if (message.state === 'delivered' && !message.bodyRemoved && now - finishedAt >= bodyMs) {
        await unlink(this.bodyPath(message.id)).catch(() => undefined);
        await this.update(message.id, {}, (m) => {
          m.bodyRemoved = true;
        });
        bodiesRemoved++;
      }
    }
    return { bodiesRemoved, recordsRemoved };
  }

  /** Waits for pending record writes (shutdown). */
  /** Waits for pending record writes and tries once more the ones the disk refused (shutdown). */
  async flush(): Promise<void> {
    for (const [id, timer] of this.persistRetries) {
      clearTimeout(timer);
      this.persistRetries.delete(id);
      if (this.messages.has(id)) await this.update(id, { upstreamAccepted: true }, () => undefined).catch(() => undefined);
    }
    for (const timer of this.persistRetries.values()) clearTimeout(timer);
    this.persistRetries.clear();
    await Promise.all([...this.writes.values()]);
  }

  // ---- internals ----

  private view(message: QueuedMessage): QueuedMessage {
    return { ...message, state: this.leased.has(message.id) ? 'delivering' : message.state, recipients: message.recipients.map((r) => ({ ...r })) };
  }

  private recordPath(id: string): string {
    return join(this.queueDir, `${id}.json`);
  }

  /**
   * Applies a change and persists the record durably, serialised per message: each update changes a copy
   * of the latest state, and memory takes the copy once the disk has it, so the two agree.
   *
   * Exception, `upstreamAccepted`: the upstream has already said 250, so the change must hold even if the
   * disk refuses the record (full, read-only). Memory takes it at once, so the message is never sent again
   * by this process, and the record write is retried in the background until it succeeds. Only a crash
   * before that can re-send it (at-least-once).
   */
  private async update(id: string, options: { upstreamAccepted?: boolean }, change: (message: QueuedMessage) => void): Promise<QueuedMessage> {
    if (!this.messages.has(id)) throw new NotFoundError('message', id);
    const previous = this.writes.get(id) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const current = this.messages.get(id);
        if (!current) throw new NotFoundError('message', id);
        const next = structuredClone(current);
        change(next);
        next.updatedAt = this.now();
        try {
          await writeFileDurable(this.recordPath(id), JSON.stringify(stripState(next)), { tmpDir: this.tmpDir });
          if (this.persistDelays.delete(id)) this.options.onPersisted?.(id);
        } catch (err) {
          if (!options.upstreamAccepted) throw err;
          this.options.onPersistError?.(id, err);
          this.schedulePersistRetry(id);
        }
        if (this.messages.has(id)) this.messages.set(id, next);
        return next;
      });
    // Kept only to order later updates; its rejection is the caller's (through `run`), never unhandled.
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.writes.set(id, settled);
    try {
      return { ...(await run) };
    } finally {
      if (this.writes.get(id) === settled) this.writes.delete(id);
    }
  }

  /** Retries writing the in-memory record of `id` until the disk takes it, backing off up to a minute. */
  private schedulePersistRetry(id: string): void {
    if (this.persistRetries.has(id)) return;
    const delayMs = Math.min(60_000, (this.persistDelays.get(id) ?? 500) * 2);
    this.persistDelays.set(id, delayMs);
    const timer = setTimeout(() => {
      this.persistRetries.delete(id);
      if (this.messages.has(id)) void this.update(id, { upstreamAccepted: true }, () => undefined).catch(() => undefined);
      else this.persistDelays.delete(id);
    }, delayMs);
    timer.unref();
    this.persistRetries.set(id, timer);
  }

  private async removeFiles(id: string): Promise<void> {
    await unlink(this.recordPath(id)).catch(ignoreMissing);
    await unlink(this.bodyPath(id)).catch(ignoreMissing);
    await fsyncDirectory(this.queueDir);
  }

  /** Start-up reconciliation of the journal with the spool directory. */
  private async recover(): Promise<void> {
    await mkdir(this.queueDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    // Temp files belong to transfers that never got a 250: the client retries them.
    for (const name of await readdir(this.tmpDir)) await unlink(join(this.tmpDir, name)).catch(() => undefined);
    const names = new Set(await readdir(this.queueDir));
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -5);
      if (!isQueueId(id)) continue;
      let message: QueuedMessage;
      try {
        message = JSON.parse(await readFile(join(this.queueDir, name), 'utf8')) as QueuedMessage;
      } catch {
        await rename(join(this.queueDir, name), join(this.queueDir, `${name}.corrupt`)).catch(() => undefined);
        continue;
      }
      if (!names.has(`${id}.eml`) && !message.bodyRemoved && message.state !== 'delivered') {
        message.state = 'failed';
        message.failReason = 'spool file missing at start-up';
        message.failedAt = this.now();
        await writeFileDurable(this.recordPath(id), JSON.stringify(message), { tmpDir: this.tmpDir });
      }
      this.messages.set(id, message);
    }
    for (const name of names) {
      if (!name.endsWith('.eml')) continue;
      const id = name.slice(0, -4);
      // A body without its record was never acknowledged (crash between the two writes).
      if (!this.messages.has(id)) await unlink(join(this.queueDir, name)).catch(() => undefined);
    }
    await fsyncDirectory(this.queueDir);
  }

  /** Free bytes check helper for readiness probes: the queue directory exists and is a directory. */
  async isWritable(): Promise<boolean> {
    try {
      return (await stat(this.queueDir)).isDirectory();
    } catch {
      return false;
    }
  }
}

function stripState(message: QueuedMessage): QueuedMessage {
  return message.state === 'delivering' ? { ...message, state: 'queued' } : message;
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
