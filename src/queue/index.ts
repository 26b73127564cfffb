/**
 * The durable queue and the message log. Bodies are files in dataDir/queue (spool.ts); everything else
 * is a row in the store database (store/database.ts). Delivery takes work through `claimDue`, which
 * hands out claims (claim.ts): the claim owns the lease, reads the body and records one outcome.
 *
 * Invariants (the accept path):
 * - Commit point: the row's durable group commit. `accept` resolves, and the printer hears 250, only
 *   after (1) the body file was fsynced under its temp name `<id>.part`, then (2) both its rename to
 *   `<id>.eml` and the transaction inserting the row (made durable by a WAL fdatasync shared by every
 *   accept committed meanwhile, store/database.ts) completed; (2) runs as one wait. Two fsyncs per
 *   message at most; fewer when accepts share a WAL fdatasync.
 * - What relies on the filesystem: the directory entries (the create of `<id>.part` and its rename to
 *   `<id>.eml`) are not fsynced on their own. On journaling filesystems (ext4, XFS, btrfs) the later
 *   fsync of the WAL commits the journal that holds them. Elsewhere set `store.fsyncDirectory: true`
 *   (one more fsync per message). Recovery also finishes a rename that did not survive: a row whose
 *   `<id>.eml` is missing but whose `<id>.part` has the recorded size gets it back.
 * - A `.part` file without a row is an unfinished transfer (never acknowledged): recovery removes it.
 *   An `.eml` without a row may have been acknowledged: it is quarantined, never removed.
 * - Delivered path: no fsync. The outcome row is written in the next non-durable group commit; the
 *   next durable commit (or checkpoint) makes it durable. At-least-once window: a crash after the
 *   upstream's 250 and before that makes the message due again (it is sent twice). Memory takes every
 *   outcome at once, so this process never sends it again; a refused write is retried until it lands.
 * - Memory holds only open messages (queued, deferred, held, being delivered); finished ones live in the
 *   database alone, so memory does not grow with history and start-up reads only what is in flight.
 * - Start-up in two steps: before the first new accept, the spool's listing and the last row's seq;
 *   then (the gateway: once SMTP listens) the open rows up to that seq, in batches. A file or row this
 *   run made is never judged by recovery: it is not in the listing, or its seq is newer.
 * - Nothing acknowledged is deleted except by an admin's delete or by logRetention of a finished
 *   message; quarantined messages are never removed by recovery or retention.
 */
import { access, chmod, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { newQueueId, isQueueId } from '../shared/ids.js';
import { NotFoundError, ConflictError } from '../shared/errors.js';
import type { GatewayEventBus } from '../shared/events.js';
import { fileExists, fsyncDirectory } from '../shared/durable-fs.js';
import { StoreDatabase } from '../store/database.js';
import { spoolBody, toSpoolError, type SniffedHeaders } from './spool.js';
import { MESSAGE_STATES, OPEN_STATES, assertTransition, isOpenState, type MessageState } from './states.js';
import { HOLD_RULES, makeHold, releasedBy, type Hold, type HoldReason, type ReleaseEvent } from './holds.js';
import { MessageLog, parseRow, quarantinedPlaceholder, type ListFilter, type MessageStatsView, type ListResult } from './log.js';
import { QueueClaim, type ClaimHost } from './claim.js';

export { nextRetryDelay } from './schedule.js';
export { findHeaderEnd, parseHeaderBlock, type SniffedHeaders } from './spool.js';
export { MESSAGE_STATES, OPEN_STATES, FINISHED_STATES, assertTransition, canTransition, IllegalTransitionError, type MessageState } from './states.js';
export { HOLD_REASONS, HOLD_RULES, releasedBy, type Hold, type HoldReason, type ReleaseEvent } from './holds.js';
export type { Claim, DeferOptions, FailOptions, HoldOptions } from './claim.js';
export type { ListFilter, ListResult, MessageStatsView } from './log.js';
export { parseTimeBound, startOfDay, systemTimeZone } from './log.js';

export type StoredState = Exclude<MessageState, 'delivering'>;

/** An open message as `openMessages()` yields it. */
export interface OpenMessageSummary {
  readonly id: string;
  readonly device: string;
  readonly upstream?: string;
  readonly state: MessageState;
  readonly holdCode?: HoldReason;
}

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

export type AttemptOutcome = 'delivered' | 'deferred' | 'held' | 'failed' | 'partly-failed' | 'paused';

/** One attempt as the message log keeps it (every one, with the upstream's own reply). */
export interface AttemptRecord {
  at: number;
  upstream?: string;
  outcome: AttemptOutcome;
  reply?: string;
  code?: string;
  responseCode?: number;
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
  /** Attempts that reached an upstream (a quota pause is not counted). */
  attempts: number;
  nextAttemptAt?: number;
  lastAttemptAt?: number;
  lastError?: AttemptError;
  held?: Hold;
  deliveredAt?: number;
  failedAt?: number;
  failReason?: string;
  upstreamResponse?: string;
  bodyRemoved?: boolean;
  /** Why recovery could not use this message (its row or body); the body is kept. */
  quarantine?: { reason: string; at: number };
}

export interface AcceptInput {
  device: string;
  upstream?: string;
  envelope: Envelope;
  client: ClientInfo;
  maxSize: number;
  /** Set when the message must wait (e.g. the device has no upstream). */
  hold?: { code: HoldReason | string; reason: string };
}

export interface QueueStats {
  counts: Record<MessageState, number>;
  /** Age in seconds of the oldest message not yet delivered or failed (0 when none). */
  oldestPendingAgeSeconds: number;
}

export interface QueueOptions {
  dataDir: string;
  /** The store database; when absent the queue opens dataDir/store.db itself (and closes it in `close`). */
  database?: StoreDatabase;
  events: GatewayEventBus;
  now?: () => number;
  /** fsync the spool directory after each accept's rename (filesystems without ordered metadata). */
  fsyncDirectory?: boolean;
  /** The database refused a write (kept in memory, retried). */
  onPersistError?: (id: string, err: unknown) => void;
  /** Such a write has now landed. */
  onPersisted?: (id: string) => void;
  /** Recovery quarantined a message. */
  onQuarantined?: (id: string, reason: string) => void;
}

export type BulkAction = 'retry' | 'release' | 'hold' | 'delete';

export interface BulkResult {
  matched: number;
  changed: number;
  skipped: Array<{ id: string; reason: string }>;
}

interface OpenEntry {
  message: QueuedMessage;
  leased: boolean;
}

const FINISHED_COUNTED: readonly MessageState[] = ['delivered', 'partly-failed', 'failed', 'quarantined'];
/** Open rows read per turn of the event loop at start-up. */
const OPEN_ROWS_BATCH = 100;

export class Queue implements ClaimHost {
  readonly queueDir: string;
  readonly log: MessageLog;
  private readonly open = new Map<string, OpenEntry>();
  /** Counts of rows in states not kept in memory (kept up to date on every change). */
  private readonly finishedCounts = new Map<MessageState, number>();
  /** Snapshots whose row write the database refused: retried until they land. */
  private readonly unsaved = new Map<string, { message: QueuedMessage; attempts: AttemptRecord[]; timer?: NodeJS.Timeout; delayMs: number }>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  readonly events: GatewayEventBus;
  readonly now: () => number;
  private readonly db: StoreDatabase;
  private readonly ownsDatabase: boolean;
  private readonly statements;

  private constructor(private readonly options: QueueOptions) {
    this.queueDir = join(options.dataDir, 'queue');
    this.events = options.events;
    this.now = options.now ?? Date.now;
    this.ownsDatabase = options.database === undefined;
    this.db = options.database ?? StoreDatabase.open(join(options.dataDir, 'store.db'));
    this.log = new MessageLog(this.db);
    this.statements = {
      insert: this.db.prepare(
        `INSERT INTO messages (id, state, device, upstream, received_at, updated_at, finished_at, next_attempt_at, body_removed, doc)
         VALUES (@id, @state, @device, @upstream, @receivedAt, @updatedAt, @finishedAt, @nextAttemptAt, @bodyRemoved, @doc)`,
      ),
      insertIgnore: this.db.prepare(
        `INSERT OR IGNORE INTO messages (id, state, device, upstream, received_at, updated_at, finished_at, next_attempt_at, body_removed, doc)
         VALUES (@id, @state, @device, @upstream, @receivedAt, @updatedAt, @finishedAt, @nextAttemptAt, @bodyRemoved, @doc)`,
      ),
      recipient: this.db.prepare('INSERT INTO message_recipients (seq, address) VALUES (?, ?)'),
      subject: this.db.prepare('INSERT INTO message_subjects (rowid, subject) VALUES (?, ?)'),
      update: this.db.prepare(
        `UPDATE messages SET state = @state, device = @device, upstream = @upstream, updated_at = @updatedAt,
         finished_at = @finishedAt, next_attempt_at = @nextAttemptAt, body_removed = @bodyRemoved, doc = @doc WHERE id = @id`,
      ),
      attempt: this.db.prepare(
        `INSERT INTO attempts (seq, at, upstream, outcome, reply, code, response_code)
         SELECT seq, @at, @upstream, @outcome, @reply, @code, @responseCode FROM messages WHERE id = @id`,
      ),
      seqOf: this.db.prepare('SELECT seq FROM messages WHERE id = ?').pluck(),
      docOf: this.db.prepare('SELECT doc, state, device FROM messages WHERE id = ?'),
      remove: [
        this.db.prepare('DELETE FROM message_recipients WHERE seq = ?'),
        this.db.prepare('DELETE FROM message_subjects WHERE rowid = ?'),
        this.db.prepare('DELETE FROM attempts WHERE seq = ?'),
        this.db.prepare('DELETE FROM messages WHERE seq = ?'),
      ],
    };
  }

  /**
   * Opens the queue. With `openRowsLater`, only what must precede new accepts is done (the spool's
   * listing, the last row's seq); the open rows are read by `loadOpenRows()`, which the caller runs once
   * SMTP listens (app.ts), so a restart with 10,000 waiting scans greets printers at once.
   */
  static async open(options: QueueOptions & { openRowsLater?: boolean }): Promise<Queue> {
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const queue = new Queue(options);
    await queue.prepareRecovery();
    if (!options.openRowsLater) await queue.loadOpenRows();
    return queue;
  }

  /** Writes what is pending and closes the database when the queue opened it. */
  async close(): Promise<void> {
    await this.flush();
    if (this.ownsDatabase) this.db.close();
  }

  // ---- accept ----

  /** Streams the body to disk, then commits the row durably (group commit); resolves after both. */
  async accept(input: AcceptInput, body: Readable): Promise<QueuedMessage> {
    const startedAt = performance.now();
    const id = newQueueId(this.now());
    const part = this.partPath(id);
    const spooled = await spoolBody(body, part, input.maxSize);
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
      held: input.hold ? makeHold(input.hold.code, input.hold.reason, at) : undefined,
    };
    // The rename and the row's durable commit run at the same time (one wait instead of two): the body
    // is already fsynced, and a crash that keeps the row but not the rename leaves `<id>.part` with the
    // recorded size, which recovery renames (see the invariants above).
    const renamed = (async () => {
      await rename(part, this.bodyPath(id));
      if (this.options.fsyncDirectory) await fsyncDirectory(this.queueDir);
    })();
    const committed = this.track(this.db.commit(() => this.insertRow(message, false), { durable: true }));
    const [renameResult, commitResult] = await Promise.allSettled([renamed, committed]);
    if (renameResult.status === 'rejected' || commitResult.status === 'rejected') {
      // Never acknowledged: nothing of it may stay (a body without a row would be quarantined, a row
      // without a body too).
      if (commitResult.status === 'fulfilled') await this.track(this.db.commit(() => this.removeRow(id))).catch(() => undefined);
      await unlink(part).catch(() => undefined);
      await unlink(this.bodyPath(id)).catch(() => undefined);
      throw toSpoolError(renameResult.status === 'rejected' ? renameResult.reason : (commitResult as PromiseRejectedResult).reason);
    }
    this.open.set(id, { message, leased: false });
    this.events.emit('message.queued', {
      id,
      device: message.device,
      size: message.size,
      upstream: message.upstream,
      sessionId: message.client.sessionId,
      subject: message.headers.subject,
      acceptMs: performance.now() - startedAt,
    });
    if (message.held) this.announceHold(message);
    return this.copy(message);
  }

  // ---- reading ----

  get(id: string): QueuedMessage | undefined {
    const entry = this.open.get(id);
    if (entry) return this.view(entry);
    const unsaved = this.unsaved.get(id);
    if (unsaved) return this.copy(unsaved.message);
    const row = this.statements.docOf.get(id) as { doc: string; state: MessageState; device: string } | undefined;
    return row ? parseRow(id, row) : undefined;
  }

  require(id: string): QueuedMessage {
    const message = this.get(id);
    if (!message) throw new NotFoundError('message', id);
    return message;
  }

  /** Every attempt of a message, oldest first. */
  attempts(id: string): AttemptRecord[] {
    const pending = this.unsaved.get(id)?.attempts ?? [];
    return [...this.log.attempts(id), ...pending];
  }

  /** The message log, newest first (contract A filters; every filter answers from an index). */
  list(filter: ListFilter = {}): ListResult {
    const leased = [...this.open.values()].filter((e) => e.leased).map((e) => e.message.id);
    const result = this.log.list(filter, leased);
    // Open messages: memory is the truth (a write may still be in this tick's batch; "delivering").
    result.items = result.items.map((m) => {
      const entry = this.open.get(m.id);
      return entry ? this.view(entry) : m;
    });
    return result;
  }

  /**
   * What counting needs of each open message (queued, deferred, held, delivering), from memory, any
   * order: no copies, so a count over 10,000 waiting scans costs no clone of each.
   */
  *openMessages(): IterableIterator<OpenMessageSummary> {
    for (const { message, leased } of this.open.values())
      yield { id: message.id, device: message.device, upstream: message.upstream, state: leased ? 'delivering' : message.state, holdCode: message.held?.code };
  }

  stats(): QueueStats {
    const counts = Object.fromEntries(MESSAGE_STATES.map((s) => [s, this.finishedCounts.get(s) ?? 0])) as Record<MessageState, number>;
    for (const s of OPEN_STATES) counts[s] = 0;
    let oldest = Infinity;
    for (const entry of this.open.values()) {
      counts[entry.leased ? 'delivering' : entry.message.state]++;
      if (entry.message.receivedAt < oldest) oldest = entry.message.receivedAt;
    }
    return { counts, oldestPendingAgeSeconds: oldest === Infinity ? 0 : Math.max(0, (this.now() - oldest) / 1000) };
  }

  /** /api/stats: per device today and this week, the queue, and 14 days of outcomes in `timeZone`. */
  statistics(timeZone: string): MessageStatsView {
    const counts = this.stats().counts;
    return this.log.statistics(timeZone, this.now(), {
      queued: counts.queued,
      deferred: counts.deferred,
      held: counts.held,
      delivering: counts.delivering,
      quarantined: counts.quarantined,
    });
  }

  /** Deliveries per upstream since `since` (epoch ms). */
  sentSince(since: number): Map<string, number> {
    return this.log.sentSince(since);
  }

  /** Messages ready for an attempt (queued/deferred, due, not claimed), oldest due first. Read-only. */
  due(now = this.now()): QueuedMessage[] {
    const out: QueuedMessage[] = [];
    for (const entry of this.open.values()) if (isDue(entry, now)) out.push(this.view(entry));
    return out.sort(byDue);
  }

  /**
   * Claims due messages for delivery, oldest due first: each claim owns its message's lease until its
   * one outcome call. `pick` lets the caller skip messages it cannot start now (busy upstream); at most
   * `limit` claims.
   */
  /**
   * `pick` sees each due message as it is in memory, not a copy (a backlog of hundreds is looked at on
   * every pass while the upstreams are busy): it must only read.
   */
  claimDue(now = this.now(), options: { limit?: number; pick?: (message: Readonly<QueuedMessage>) => boolean } = {}): QueueClaim[] {
    const due: OpenEntry[] = [];
    for (const entry of this.open.values()) if (isDue(entry, now)) due.push(entry);
    due.sort((a, b) => byDue(a.message, b.message));
    const claims: QueueClaim[] = [];
    for (const entry of due) {
      if (claims.length >= (options.limit ?? Infinity)) break;
      if (options.pick && !options.pick(entry.message)) continue;
      entry.leased = true;
      claims.push(new QueueClaim(this, this.view(entry), entry.message.state));
    }
    return claims;
  }

  /** Earliest nextAttemptAt among waiting messages (for the worker's timer). */
  nextWakeAt(after?: number): number | undefined {
    let next: number | undefined;
    for (const entry of this.open.values()) {
      if (entry.leased || (entry.message.state !== 'queued' && entry.message.state !== 'deferred')) continue;
      const at = entry.message.nextAttemptAt ?? 0;
      if (after !== undefined && at <= after) continue;
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** Where a body lives (tests and tools; delivery reads bodies through its claim). */
  bodyPath(id: string): string {
    return join(this.queueDir, `${id}.eml`);
  }

  // ---- admin actions ----

  /** Admin: attempt now (deferred, held, failed, partly-failed, or quarantined with its body on disk). */
  async retryNow(id: string): Promise<QueuedMessage> {
    const message = this.requireForAction(id);
    if (message.state === 'queued') return message;
    assertTransition(id, message.state, 'queued');
    if (message.bodyRemoved) throw new ConflictError(`message '${id}' no longer has its body (removed after delivery.retention)`);
    if (!(await fileExists(this.bodyPath(id)))) throw new ConflictError(`message '${id}' has no body on disk; it cannot be sent again`);
    const next = this.copy(message);
    next.state = 'queued';
    next.nextAttemptAt = this.now();
    next.held = undefined;
    next.failedAt = undefined;
    next.failReason = undefined;
    next.quarantine = undefined;
    for (const r of next.recipients) if (r.state === 'failed') Object.assign(r, { state: 'pending', response: undefined, at: undefined });
    const result = await this.save(message.state, next, []);
    this.events.emit('message.due', { id, reason: 'retry' });
    return result;
  }

  /** Admin: release a held message (any hold reason). */
  async release(id: string): Promise<QueuedMessage> {
    const message = this.requireForAction(id);
    if (message.state !== 'held') throw new ConflictError(`message '${id}' is ${message.state}, not held`);
    return this.releaseOne(message, 'release');
  }

  /** Admin: hold a waiting message until an operator releases it. */
  async hold(id: string, note?: string): Promise<QueuedMessage> {
    const message = this.requireForAction(id);
    if (message.state === 'held' && message.held?.code === 'admin') return message;
    assertTransition(id, message.state, 'held');
    const next = this.copy(message);
    next.state = 'held';
    next.nextAttemptAt = undefined;
    next.held = makeHold('admin', note ? `held by an administrator: ${note}` : undefined, this.now(), note);
    const result = await this.save(message.state, next, []);
    this.announceHold(next);
    return result;
  }

  /**
   * Releases the held messages that `event` may release (holds.ts) and whose cause `causeGone` says is
   * gone. Returns how many went back to the queue.
   */
  async releaseHolds(event: ReleaseEvent, causeGone: (message: QueuedMessage) => boolean): Promise<number> {
    const targets = [...this.open.values()]
      .map((e) => e.message)
      .filter((m) => m.state === 'held' && m.held && releasedBy(m.held.code, event) && causeGone(this.copy(m)));
    for (const message of targets) await this.releaseOne(message, event === 'start-up' ? 'start' : event === 'config-reloaded' ? 'reload' : 'release');
    return targets.length;
  }

  /** Every deferred message becomes due now (like `postqueue -f`). */
  async flushDeferred(): Promise<number> {
    const now = this.now();
    const targets = [...this.open.values()].filter((e) => !e.leased && e.message.state === 'deferred' && (e.message.nextAttemptAt ?? 0) > now);
    for (const entry of targets) {
      const next = this.copy(entry.message);
      next.nextAttemptAt = now;
      await this.save('deferred', next, []);
    }
    if (targets.length > 0) this.events.emit('message.due', { reason: 'flush' });
    return targets.length;
  }

  /** Admin: remove a message and its body. A message being delivered cannot be deleted. */
  async delete(id: string): Promise<void> {
    const message = this.require(id);
    if (this.open.get(id)?.leased) throw new ConflictError(`message '${id}' is being delivered; try again in a moment`);
    await this.track(this.db.commit(() => this.removeRow(id)));
    if (this.open.delete(id)) {
      // open messages are counted from memory
    } else this.bumpFinished(message.state, -1);
    await unlink(this.bodyPath(id)).catch(ignoreMissing);
    this.events.emit('message.deleted', { id, device: message.device });
  }

  async bulk(action: BulkAction, ids: string[]): Promise<BulkResult> {
    const result: BulkResult = { matched: ids.length, changed: 0, skipped: [] };
    for (const id of ids) {
      try {
        const before = this.get(id);
        if (!before) throw new NotFoundError('message', id);
        // Compared with what this change left, not with a later read: the worker may claim a released
        // message (and even hold it again) before the change's write has landed.
        let after: QueuedMessage | undefined;
        if (action === 'retry') after = await this.retryNow(id);
        else if (action === 'release') after = await this.release(id);
        else if (action === 'hold') after = await this.hold(id);
        else await this.delete(id);
        const changed =
          after === undefined || after.state !== before.state || after.nextAttemptAt !== before.nextAttemptAt || after.held?.code !== before.held?.code;
        if (changed) result.changed++;
        else result.skipped.push({ id, reason: `already ${before.state}` });
      } catch (err) {
        result.skipped.push({ id, reason: (err as Error).message });
      }
    }
    return result;
  }

  /** Retention: drop delivered bodies after `bodyMs`, finished rows after `recordMs`. Quarantined rows stay. */
  async sweep(bodyMs: number, recordMs: number): Promise<{ bodiesRemoved: number; recordsRemoved: number }> {
    const now = this.now();
    let recordsRemoved = 0;
    let bodiesRemoved = 0;
    for (const { id, state } of this.log.finishedBefore(now - recordMs, 1_000)) {
      await this.track(this.db.commit(() => this.removeRow(id)));
      this.bumpFinished(state, -1);
      await unlink(this.bodyPath(id)).catch(() => undefined);
      recordsRemoved++;
    }
    for (const id of this.log.deliveredWithBodyBefore(now - bodyMs, 1_000)) {
      await unlink(this.bodyPath(id)).catch(() => undefined);
      const message = this.get(id);
      if (!message) continue;
      await this.save(message.state, { ...message, bodyRemoved: true, updatedAt: now }, []);
      bodiesRemoved++;
    }
    return { bodiesRemoved, recordsRemoved };
  }

  /** Waits for pending writes and tries once more the ones the database refused (shutdown). */
  async flush(): Promise<void> {
    for (const [id, entry] of this.unsaved) {
      clearTimeout(entry.timer);
      await this.persist(id).catch(() => undefined);
    }
    await Promise.allSettled([...this.pendingWrites]);
  }

  /** The spool directory exists and is a directory (readiness). */
  async isWritable(): Promise<boolean> {
    try {
      // A spool that is there but read-only (a read-only mount) cannot take a body either.
      await access(this.queueDir, constants.W_OK);
      return (await stat(this.queueDir)).isDirectory();
    } catch {
      return false;
    }
  }

  // ---- ClaimHost: the one way a claim changes its message ----

  /** @internal A claim's outcome: memory at once, the row in the next group commit (retried if refused). */
  async settle(next: QueuedMessage, attempt?: AttemptRecord): Promise<void> {
    const entry = this.open.get(next.id);
    if (!entry?.leased) throw new ConflictError(`message '${next.id}' is not claimed`);
    assertTransition(next.id, 'delivering', next.state);
    entry.leased = false;
    await this.save(entry.message.state, next, attempt ? [attempt] : []);
  }

  /** @internal Recipient results between groups (not an outcome; the claim keeps its lease). */
  async saveProgress(next: QueuedMessage): Promise<void> {
    const entry = this.open.get(next.id);
    if (!entry?.leased) throw new ConflictError(`message '${next.id}' is not claimed`);
    entry.message = this.copy(next);
    await this.writeRow(next, []);
  }

  /** @internal The claim gives its message back unchanged. */
  unclaim(id: string): void {
    const entry = this.open.get(id);
    if (entry) entry.leased = false;
  }

  // ---- internals ----

  private requireForAction(id: string): QueuedMessage {
    const message = this.require(id);
    if (this.open.get(id)?.leased) throw new ConflictError(`message '${id}' is being delivered; try again in a moment`);
    return message;
  }

  private async releaseOne(message: QueuedMessage, reason: 'release' | 'reload' | 'start'): Promise<QueuedMessage> {
    assertTransition(message.id, message.state, 'queued');
    const next = this.copy(message);
    next.state = 'queued';
    next.held = undefined;
    next.nextAttemptAt = this.now();
    const result = await this.save('held', next, []);
    this.events.emit('message.due', { id: message.id, reason });
    return result;
  }

  /**
   * Moves a message to its next state in memory at once, then writes its row. Resolves with the message
   * as this change left it (the worker may already have claimed it by the time the write has landed).
   */
  private async save(from: MessageState, next: QueuedMessage, attempts: AttemptRecord[]): Promise<QueuedMessage> {
    next.updatedAt = this.now();
    const wasOpen = isOpenState(from);
    const isOpen = isOpenState(next.state);
    if (isOpen) {
      const entry = this.open.get(next.id);
      if (entry) entry.message = this.copy(next);
      else this.open.set(next.id, { message: this.copy(next), leased: false });
    } else this.open.delete(next.id);
    if (!wasOpen) this.bumpFinished(from, -1);
    if (!isOpen) this.bumpFinished(next.state, 1);
    const result = this.copy(next);
    await this.writeRow(next, attempts);
    return result;
  }

  private async writeRow(message: QueuedMessage, attempts: AttemptRecord[]): Promise<void> {
    const snapshot = this.copy(message);
    const previous = this.unsaved.get(snapshot.id);
    const allAttempts = [...(previous?.attempts ?? []), ...attempts];
    if (previous) {
      // An earlier write of this message is waiting for a retry: this one replaces it.
      previous.message = snapshot;
      previous.attempts = allAttempts;
      return;
    }
    try {
      await this.track(this.db.commit(() => this.updateRow(snapshot, allAttempts)));
    } catch (err) {
      this.unsaved.set(snapshot.id, { message: snapshot, attempts: allAttempts, delayMs: 500 });
      this.options.onPersistError?.(snapshot.id, err);
      this.scheduleRetry(snapshot.id);
    }
  }

  private scheduleRetry(id: string): void {
    const entry = this.unsaved.get(id);
    if (!entry) return;
    entry.delayMs = Math.min(60_000, entry.delayMs * 2);
    entry.timer = setTimeout(() => void this.persist(id).catch(() => this.scheduleRetry(id)), entry.delayMs);
    entry.timer.unref();
  }

  private async persist(id: string): Promise<void> {
    const entry = this.unsaved.get(id);
    if (!entry) return;
    await this.track(this.db.commit(() => this.updateRow(entry.message, entry.attempts)));
    if (this.unsaved.get(id) === entry) this.unsaved.delete(id);
    this.options.onPersisted?.(id);
  }

  private updateRow(message: QueuedMessage, attempts: AttemptRecord[]): void {
    const changed = this.statements.update.run(rowParams(message)).changes;
    if (changed === 0) throw new NotFoundError('message', message.id);
    for (const a of attempts)
      this.statements.attempt.run({
        id: message.id,
        at: a.at,
        upstream: a.upstream ?? null,
        outcome: a.outcome,
        reply: a.reply ?? null,
        code: a.code ?? null,
        responseCode: a.responseCode ?? null,
      });
  }

  /** Inserts a message's row, its recipients and its subject; `ignoreExisting` for the import. Returns false when it existed. */
  insertRow(message: QueuedMessage, ignoreExisting: boolean, attempts: AttemptRecord[] = []): boolean {
    const info = (ignoreExisting ? this.statements.insertIgnore : this.statements.insert).run(rowParams(message));
    if (info.changes === 0) return false;
    const seq = info.lastInsertRowid;
    for (const address of new Set(message.envelope.rcptTo.map((a) => a.toLowerCase()))) this.statements.recipient.run(seq, address);
    if (message.headers.subject) this.statements.subject.run(seq, message.headers.subject);
    if (attempts.length > 0) this.updateRow(message, attempts);
    return true;
  }

  private removeRow(id: string): void {
    const seq = this.statements.seqOf.get(id);
    if (seq === undefined) return;
    for (const statement of this.statements.remove) statement.run(seq);
  }

  /** @internal Import: a finished or open message from the old journal (its row committed by the caller). */
  adoptImported(message: QueuedMessage): void {
    if (isOpenState(message.state)) {
      if (!this.open.has(message.id)) this.open.set(message.id, { message: this.copy(message), leased: false });
    } else this.bumpFinished(message.state, 1);
  }

  /** @internal The database, for the import and the auth-state tables. */
  get database(): StoreDatabase {
    return this.db;
  }

  private bumpFinished(state: MessageState, by: number): void {
    if (!FINISHED_COUNTED.includes(state)) return;
    this.finishedCounts.set(state, Math.max(0, (this.finishedCounts.get(state) ?? 0) + by));
  }

  private announceHold(message: QueuedMessage): void {
    const hold = message.held;
    if (!hold) return;
    this.events.emit('message.held', {
      id: message.id,
      device: message.device,
      upstream: message.upstream,
      reason: hold.reason,
      code: hold.code,
      fix: HOLD_RULES[hold.code].fix,
    });
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pendingWrites.add(promise);
    const done = () => this.pendingWrites.delete(promise);
    promise.then(done, done);
    return promise;
  }

  private view(entry: OpenEntry): QueuedMessage {
    const copy = this.copy(entry.message);
    if (entry.leased) copy.state = 'delivering';
    return copy;
  }

  private copy(message: QueuedMessage): QueuedMessage {
    return structuredClone(message);
  }

  partPath(id: string): string {
    return join(this.queueDir, `${id}.part`);
  }

  /**
   * Start-up: read only what is in flight. Unfinished transfers (`.part` without a row) are removed; a
   * row that cannot be read, or an open message whose body is missing, is quarantined with its reason;
   * an `.eml` without a row (and without an old-journal record waiting for the import) is quarantined.
   */
  /** What recovery knows before the first new accept: the spool as it was, and the last row of the previous run. */
  private recovery?: { names: Set<string>; lastSeq: number };

  private async prepareRecovery(): Promise<void> {
    await mkdir(this.options.dataDir, { recursive: true, mode: 0o700 });
    await chmod(this.options.dataDir, 0o700);
    await mkdir(this.queueDir, { recursive: true, mode: 0o700 });
    await chmod(this.queueDir, 0o700);
    // The old journal's temp directory: its files never got a 250.
    await rm(join(this.options.dataDir, 'tmp'), { recursive: true, force: true });
    // Taken before any new accept: a file or row that appears later is this run's own, never a leftover.
    this.recovery = { names: new Set(await readdir(this.queueDir)), lastSeq: this.log.lastSeq() };
  }

  /**
   * Reads the previous run's open rows into memory, 100 at a time with a turn of the event loop between
   * batches (SMTP sessions go on meanwhile), then deals with bodies without rows and rows without bodies.
   * Only rows up to the last seq of the previous run are read: accepts made meanwhile are already here.
   */
  async loadOpenRows(): Promise<void> {
    const recovery = this.recovery;
    if (!recovery) return;
    this.recovery = undefined;
    const { names, lastSeq } = recovery;
    for (const row of this.log.countsByState()) if (FINISHED_COUNTED.includes(row.state)) this.finishedCounts.set(row.state, row.count);
    const quarantine: Array<{ id: string; reason: string; message?: QueuedMessage; device?: string; insert?: boolean }> = [];
    const withoutBody: QueuedMessage[] = [];
    const seqs = this.log.openSeqs(lastSeq);
    const shared = new SharedStrings();
    for (let from = 0; from < seqs.length; from += OPEN_ROWS_BATCH) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      for (const row of this.log.openRowsBySeq(seqs.slice(from, from + OPEN_ROWS_BATCH))) {
        let message: QueuedMessage;
        try {
          message = JSON.parse(row.doc) as QueuedMessage;
          if (message.id !== row.id || !Array.isArray(message.recipients)) throw new Error('row does not describe its message');
        } catch (err) {
          quarantine.push({ id: row.id, device: row.device, reason: `its record in the database cannot be read (${(err as Error).message})` });
          continue;
        }
        message.state = shared.share(row.state);
        shared.shareFields(message);
        if (names.has(`${row.id}.eml`)) this.open.set(row.id, { message, leased: false });
        else withoutBody.push(message);
      }
    }
    for (const message of withoutBody) {
      const part = this.partPath(message.id);
      if (names.has(`${message.id}.part`) && (await stat(part)).size === message.size) {
        await rename(part, this.bodyPath(message.id));
        names.delete(`${message.id}.part`);
        this.open.set(message.id, { message, leased: false });
      } else {
        quarantine.push({ id: message.id, reason: 'its body file is missing from the spool', message });
      }
    }
    for (const name of names) {
      if (name.endsWith('.part')) {
        // Unfinished transfer of the previous run: the client never heard 250 and sends again.
        await unlink(join(this.queueDir, name)).catch(() => undefined);
        continue;
      }
      if (!name.endsWith('.eml')) continue;
      const id = name.slice(0, -4);
      if (!isQueueId(id) || this.open.has(id) || names.has(`${id}.json`)) continue;
      if (this.statements.seqOf.get(id) === undefined) quarantine.push({ id, reason: 'its body was found without a record', insert: true });
    }
    for (const item of quarantine) await this.quarantine(item);
  }

  private async quarantine(item: { id: string; reason: string; message?: QueuedMessage; device?: string; insert?: boolean }): Promise<void> {
    const at = this.now();
    let size = 0;
    try {
      size = (await stat(this.bodyPath(item.id))).size;
    } catch {
      // the body is what is missing
    }
    const message: QueuedMessage = item.message ? { ...item.message } : quarantinedPlaceholder(item.id, size, at, item.device);
    message.state = 'quarantined';
    message.nextAttemptAt = undefined;
    message.quarantine = { reason: item.reason, at };
    message.updatedAt = at;
    this.db.transaction(() => {
      if (item.insert) this.insertRow(message, true);
      else this.statements.update.run(rowParams(message));
    });
    this.bumpFinished('quarantined', 1);
    this.options.onQuarantined?.(item.id, item.reason);
  }
}

function isDue(entry: OpenEntry, now: number): boolean {
  const m = entry.message;
  return !entry.leased && (m.state === 'queued' || m.state === 'deferred') && (m.nextAttemptAt ?? 0) <= now;
}

function byDue(a: QueuedMessage, b: QueuedMessage): number {
  return (a.nextAttemptAt ?? 0) - (b.nextAttemptAt ?? 0) || (a.id < b.id ? -1 : 1);
}

export function rowParams(message: QueuedMessage): Record<string, unknown> {
  const stored = message.state === 'delivering' ? 'queued' : message.state;
  const finishedAt = message.deliveredAt ?? message.failedAt ?? null;
  return {
    id: message.id,
    state: stored,
    device: message.device,
    upstream: message.upstream ?? null,
    receivedAt: message.receivedAt,
    updatedAt: message.updatedAt,
    finishedAt: stored === 'delivered' || stored === 'partly-failed' || stored === 'failed' ? finishedAt : null,
    nextAttemptAt: message.nextAttemptAt ?? null,
    bodyRemoved: message.bodyRemoved ? 1 : 0,
    doc: JSON.stringify({ ...message, state: stored }),
  };
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

/**
 * One copy of each repeated string among the open messages a restart reads. Their rows repeat the same
 * few values (device, upstream, states, sender, recipients, client address): JSON.parse gives each row its
 * own copies, and with 10,000 waiting scans those copies were megabytes of the heap. Lives for one load.
 */
class SharedStrings {
  private readonly seen = new Map<string, string>();

  share<T extends string>(value: T): T {
    const known = this.seen.get(value);
    if (known !== undefined) return known as T;
    this.seen.set(value, value);
    return value;
  }

  shareFields(message: QueuedMessage): void {
    message.device = this.share(message.device);
    if (message.upstream !== undefined) message.upstream = this.share(message.upstream);
    const { envelope, headers, client } = message;
    envelope.mailFrom = this.share(envelope.mailFrom);
    envelope.bodyType = this.share(envelope.bodyType);
    envelope.rcptTo = envelope.rcptTo.map((address) => this.share(address));
    for (const recipient of message.recipients) {
      recipient.address = this.share(recipient.address);
      recipient.state = this.share(recipient.state);
    }
    if (headers.from !== undefined) headers.from = this.share(headers.from);
    if (headers.to !== undefined) headers.to = this.share(headers.to);
    client.address = this.share(client.address);
    if (client.heloName !== undefined) client.heloName = this.share(client.heloName);
    if (client.authMethod !== undefined) client.authMethod = this.share(client.authMethod);
    if (message.held) {
      message.held.code = this.share(message.held.code);
      message.held.reason = this.share(message.held.reason);
      message.held.owner = this.share(message.held.owner);
    }
  }
}
