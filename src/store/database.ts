/**
 * The gateway's one database file (dataDir/store.db, SQLite in WAL mode through better-sqlite3). Nothing
 * else imports better-sqlite3: parts get a `StoreDatabase` and use its prepared statements and `commit`.
 *
 * What lives here: queue metadata and the message log (one row per message, attempts, recipients, a
 * trigram index of subjects), API-created devices, device status and counters, upstream state worth
 * keeping, auth lock-outs. Message bodies are files (queue/spool.ts).
 *
 * Invariants:
 * - Every write goes through `commit(work, { durable })`. Calls made in the same tick share ONE
 *   transaction (group commit). SQLite runs with `synchronous=OFF` and no automatic checkpoints: it
 *   writes WAL frames and never fsyncs, so the event loop never waits for the disk. This module does
 *   every sync itself, off the event loop (libuv's thread pool), as below.
 * - Durability is an fdatasync of the WAL file run on libuv's thread pool, off the event loop. A
 *   durable write's promise resolves only after an fdatasync that STARTED after its transaction
 *   committed has completed: that is the accept path's commit point, the same guarantee as
 *   synchronous=FULL (which fsyncs the WAL inside every commit, on the caller's thread). While one
 *   fdatasync runs, the batches committed meanwhile wait for the next one, so one fsync covers many
 *   accepts (group commit across ticks). Non-durable writes resolve at commit; the next WAL fdatasync or
 *   checkpoint makes them durable, in order, since the WAL is sequential.
 * - Why an fd of our own is enough: fdatasync flushes the file (inode), whichever descriptor wrote it.
 *   The WAL keeps its inode while the database is open (a checkpoint rewinds it, it is not replaced);
 *   frames a checkpoint already copied were synced into the database file by that checkpoint.
 * - Checkpoints (WAL frames copied into store.db) are this module's too, every CHECKPOINT_BATCHES
 *   batches or CHECKPOINT_MS: (1) fdatasync the WAL, so every frame about to be copied is on disk;
 *   (2) `wal_checkpoint(PASSIVE)` on this thread, page writes only; (3) fdatasync store.db, so the
 *   copied pages are on disk before the next write may rewind the WAL over their frames. New writes
 *   wait in `pending` from (1) to (3) (only commits wait; sessions go on). What SQLite does with
 *   synchronous=NORMAL, without the two fsyncs on the event loop.
 * - close() sets synchronous=FULL first: the checkpoint SQLite makes when it closes syncs both files
 *   before it deletes the WAL.
 * - Each write runs in its own savepoint: one failing write rejects only its caller.
 * - Schema changes are forward migrations, applied in order at open; `schema_version` says how far.
 */
import Sqlite from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export type Statement = Sqlite.Statement;

/** SQLite's words for a file it cannot trust (better-sqlite3 error codes). */
export function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}
type Row = Record<string, unknown>;

/** A checkpoint after this many write batches, or CHECKPOINT_MS after the last one if anything was written. */
const CHECKPOINT_BATCHES = 200;
const CHECKPOINT_MS = 2_000;

/**
 * Page cache, 2 MiB: reading 10,000 open rows at start fills whatever is allowed, and that memory stays.
 * At 8 MiB the message-log queries over 100k rows were only ~10% faster (the OS page cache serves the rest),
 * at 6 MiB more RSS (bench:restart).
 */
const CACHE_KIB = 2 * 1024;

const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        device TEXT NOT NULL,
        upstream TEXT,
        received_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER,
        next_attempt_at INTEGER,
        body_removed INTEGER NOT NULL DEFAULT 0,
        doc TEXT NOT NULL
      );
      CREATE INDEX messages_by_received ON messages (received_at, seq);
      CREATE INDEX messages_by_state ON messages (state, received_at, seq);
      CREATE INDEX messages_by_device ON messages (device, received_at, seq);
      CREATE INDEX messages_by_upstream ON messages (upstream, received_at, seq);
      CREATE INDEX messages_by_finished ON messages (finished_at) WHERE finished_at IS NOT NULL;
      CREATE INDEX messages_with_body ON messages (finished_at) WHERE finished_at IS NOT NULL AND body_removed = 0;
      CREATE TABLE message_recipients (
        seq INTEGER NOT NULL,
        address TEXT NOT NULL COLLATE NOCASE
      );
      CREATE INDEX recipients_by_address ON message_recipients (address, seq);
      CREATE INDEX recipients_by_seq ON message_recipients (seq);
      CREATE VIRTUAL TABLE message_subjects USING fts5 (subject, tokenize = 'trigram');
      CREATE TABLE attempts (
        seq INTEGER NOT NULL,
        at INTEGER NOT NULL,
        upstream TEXT,
        outcome TEXT NOT NULL,
        reply TEXT,
        code TEXT,
        response_code INTEGER
      );
      CREATE INDEX attempts_by_seq ON attempts (seq, at);
      CREATE INDEX attempts_by_time ON attempts (at, outcome);
      CREATE TABLE devices (name TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE device_status (name TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE upstream_state (name TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE auth_lockouts (key TEXT PRIMARY KEY, until INTEGER NOT NULL, failures INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE auth_seen (device TEXT NOT NULL, address TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (device, address)) WITHOUT ROWID;
      CREATE INDEX auth_seen_by_time ON auth_seen (at);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    `,
  },
];

export interface CommitOptions {
  /** Must survive power loss before the promise resolves (fsync of the WAL, shared by the batch). */
  durable?: boolean;
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export class IntegrityError extends Error {
  readonly code = 'SCANRELAY_STORE_CORRUPT';
}

interface SyncWaiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface PendingWrite {
  work: () => unknown;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class StoreDatabase {
  readonly path: string;
  /** The last run did not close this database (crash, kill -9, power loss): its WAL file was still there. */
  readonly uncleanStop: boolean;
  /** A write met a damaged page (SQLite said so): store/health.ts raises the alarm. The write itself is rejected as usual. */
  onCorruption?: (err: unknown) => void;
  private readonly db: Sqlite.Database;
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Read-only descriptor of the WAL file, for the off-thread fdatasync (opened at the first one). */
  private walFd?: number;
  /** Durable writes committed and waiting for the next WAL fdatasync to start. */
  private syncWaiters: SyncWaiter[] = [];
  /** Those covered by the fdatasync running now. */
  private syncing?: SyncWaiter[];
  /** Read-only descriptor of store.db, for the checkpoint's fdatasync. */
  private dbFd?: number;
  /** The checkpoint cycle running now (writes wait for it). */
  private checkpointing?: Promise<void>;
  private batchesSinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private checkpointTimer?: NodeJS.Timeout;
  /** Batches, writes, WAL fdatasyncs and checkpoints (figures for the bench and tests). */
  readonly commitStats = { batches: 0, durableBatches: 0, writes: 0, walSyncs: 0, checkpoints: 0 };

  private constructor(path: string) {
    this.path = path;
    // Before SQLite opens it, which makes the WAL file; a clean close checkpoints and removes it.
    this.uncleanStop = existsSync(`${path}-wal`);
    const fresh = !existsSync(path);
    this.db = new Sqlite(path);
    // SQLite creates -wal and -shm with the database file's mode, so 0600 here covers them too.
    if (fresh) chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    // SQLite never fsyncs on this thread: durable writes are synced by syncWal(), checkpoints by
    // checkpoint(), both off the event loop (see the invariants above).
    this.db.pragma('synchronous = OFF');
    this.db.pragma('wal_autocheckpoint = 0');
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    this.db.pragma('foreign_keys = OFF');
    this.db.pragma('temp_store = MEMORY');
    for (const file of [`${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
  }

  /**
   * Opens (creating and migrating) the database. `integrityCheck`: PRAGMA quick_check first, throwing
   * IntegrityError (it reads the whole file; after an unclean stop the gateway runs it in the background
   * instead, integrity.ts).
   */
  static open(path: string, options: { integrityCheck?: boolean } = {}): StoreDatabase {
    let store: StoreDatabase;
    try {
      store = new StoreDatabase(path);
    } catch (err) {
      if (isCorruptionError(err)) throw new IntegrityError(`the database ${path} cannot be read: ${(err as Error).message}`);
      throw err;
    }
    if (options.integrityCheck) {
      let problems: string[];
      try {
        problems = (store.db.pragma('quick_check', { simple: false }) as Array<{ quick_check: string }>).map((r) => r.quick_check);
      } catch (err) {
        problems = [(err as Error).message];
      }
      if (problems.length !== 1 || problems[0] !== 'ok') {
        store.db.close();
        throw new IntegrityError(`the database ${path} failed its integrity check: ${problems.slice(0, 3).join('; ')}`);
      }
    }
    store.migrate();
    return store;
  }

  get schemaVersion(): number {
    return (this.db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
  }

  /** Current `PRAGMA synchronous` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA): OFF, this module syncs itself. */
  synchronous(): number {
    return this.db.pragma('synchronous', { simple: true }) as number;
  }

  prepare(sql: string): Statement {
    return this.db.prepare(sql);
  }

  /** Runs SQL outside the write batch (tests: temp triggers that make writes fail). */
  exec(sql: string): void {
    this.db.exec(sql);
  }

  /** Reads run at once, outside the write batch (they see what has been committed). */
  all<T = Row>(sql: string, ...params: unknown[]): T[] {
    return this.db.prepare(sql).all(...params) as T[];
  }

  get<T = Row>(sql: string, ...params: unknown[]): T | undefined {
    return this.db.prepare(sql).get(...params) as T | undefined;
  }

  /** Plan of a query (tests prove that each message-log filter uses an index). */
  explain(sql: string, ...params: unknown[]): string[] {
    return (this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
  }

  /**
   * Queues `work` (synchronous statements) for the next group commit and resolves with its result once
   * the batch has committed (durably when `durable`).
   */
  commit<T>(work: () => T, options: CommitOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the database is closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, durable: options.durable ?? false, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Runs `work` in its own transaction now and makes it durable before returning (start-up, import,
   * tests): the WAL is fdatasynced on this thread, so keep it to batches, not single messages.
   */
  transaction<T>(work: () => T): T {
    // A checkpoint cycle between its copy and its store.db sync must not see the WAL rewound under it:
    // finish its syncs here first (rare: start-up and the import write this way).
    if (this.checkpointing) this.finishCheckpointSyncs();
    const result = this.db.transaction(work)();
    fdatasyncSync(this.openWal());
    this.commitStats.walSyncs++;
    return result;
  }

  /** Writes everything pending now (shutdown). */
  flushNow(): void {
    this.flush();
  }

  close(): void {
    if (this.closed) return;
    clearTimeout(this.checkpointTimer);
    // A checkpoint cycle may be half way: finish its syncs here, then write what waited for it.
    if (this.checkpointing) {
      this.finishCheckpointSyncs();
      this.checkpointing = undefined;
    }
    this.flush();
    this.closed = true;
    // Writes still waiting for their fdatasync get it now, on this thread, before the file is closed.
    const waiting = [...(this.syncing ?? []), ...this.syncWaiters];
    this.syncing = undefined;
    this.syncWaiters = [];
    try {
      if (waiting.length > 0) fdatasyncSync(this.openWal());
      for (const waiter of waiting) waiter.resolve();
    } catch (err) {
      for (const waiter of waiting) waiter.reject(err);
    }
    // The checkpoint SQLite makes on close must sync store.db before it deletes the WAL.
    this.db.pragma('synchronous = FULL');
    this.db.close();
    for (const fd of [this.walFd, this.dbFd]) if (fd !== undefined) closeSync(fd);
    this.walFd = undefined;
    this.dbFd = undefined;
  }

  private flush(): void {
    this.flushScheduled = false;
    // Writes wait while a checkpoint cycle runs; it flushes them when it ends.
    if (this.checkpointing && !this.closed) return;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0 || this.closed) {
      for (const write of batch) write.reject(new Error('the database is closed'));
      return;
    }
    const durable = batch.some((w) => w.durable);
    const results: Array<{ ok: boolean; value: unknown }> = [];
    // One report per batch: a damaged page fails the write's savepoint, and then often the whole transaction.
    let damaged: unknown;
    try {
      this.db.transaction(() => {
        for (const write of batch) {
          try {
            results.push({ ok: true, value: this.db.transaction(write.work)() });
          } catch (err) {
            if (damaged === undefined && isCorruptionError(err)) damaged = err;
            results.push({ ok: false, value: err });
          }
        }
      })();
    } catch (err) {
      if (damaged === undefined && isCorruptionError(err)) damaged = err;
      if (damaged !== undefined) this.onCorruption?.(damaged);
      for (const write of batch) write.reject(err);
      return;
    }
    if (damaged !== undefined) this.onCorruption?.(damaged);
    this.commitStats.batches++;
    if (durable) this.commitStats.durableBatches++;
    this.commitStats.writes += batch.length;
    batch.forEach((write, i) => {
      const { ok, value } = results[i];
      if (!ok) write.reject(value);
      else if (!write.durable) write.resolve(value);
      else this.syncWaiters.push({ resolve: () => write.resolve(value), reject: write.reject });
    });
    if (durable) this.syncWal();
    this.batchesSinceCheckpoint++;
    this.maybeCheckpoint();
  }

  private maybeCheckpoint(): void {
    if (this.checkpointing || this.closed || this.batchesSinceCheckpoint === 0) return;
    const due = this.batchesSinceCheckpoint >= CHECKPOINT_BATCHES || Date.now() - this.lastCheckpointAt >= CHECKPOINT_MS;
    if (!due) {
      // Writes that stop still get checkpointed (a quiet gateway keeps a short WAL).
      if (!this.checkpointTimer) {
        this.checkpointTimer = setTimeout(() => {
          this.checkpointTimer = undefined;
          this.maybeCheckpoint();
        }, CHECKPOINT_MS);
        this.checkpointTimer.unref();
      }
      return;
    }
    this.checkpointing = this.checkpoint().finally(() => {
      this.checkpointing = undefined;
      this.batchesSinceCheckpoint = 0;
      this.lastCheckpointAt = Date.now();
      if (this.pending.length > 0 && !this.flushScheduled && !this.closed) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** The cycle of the invariants: sync the WAL, copy its frames, sync store.db. A failed sync is retried (writes wait). */
  private async checkpoint(): Promise<void> {
    for (let delayMs = 100; ; delayMs = Math.min(5_000, delayMs * 2)) {
      try {
        await datasync(this.openWal());
        if (this.closed) return;
        this.db.pragma('wal_checkpoint(PASSIVE)');
        await datasync(this.openDb());
        this.commitStats.checkpoints++;
        return;
      } catch {
        if (this.closed) return;
        await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
      }
    }
  }

  /** Starts the WAL fdatasync for the waiting durable writes, unless one is running (it chains on). */
  private syncWal(): void {
    if (this.syncing || this.syncWaiters.length === 0 || this.closed) return;
    const covered = this.syncWaiters;
    this.syncWaiters = [];
    this.syncing = covered;
    let fd: number;
    try {
      fd = this.openWal();
    } catch (err) {
      this.finishSync(covered, err);
      return;
    }
    fdatasync(fd, (err) => this.finishSync(covered, err));
  }

  private finishSync(covered: SyncWaiter[], err: unknown): void {
    if (this.syncing !== covered) return; // close() already synced and settled them
    this.syncing = undefined;
    this.commitStats.walSyncs++;
    for (const waiter of covered) {
      if (err) waiter.reject(new Error(`the database log could not be written to disk: ${(err as Error).message}`));
      else waiter.resolve();
    }
    this.syncWal();
  }

  private openWal(): number {
    this.walFd ??= openSync(`${this.path}-wal`, 'r');
    return this.walFd;
  }

  /** Both syncs of a checkpoint cycle, now and on this thread (close, and a direct transaction during a cycle). */
  private finishCheckpointSyncs(): void {
    fdatasyncSync(this.openWal());
    fdatasyncSync(this.openDb());
  }

  private openDb(): number {
    this.dbFd ??= openSync(this.path, 'r');
    return this.dbFd;
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    const current = this.schemaVersion;
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(migration.sql);
        this.db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(migration.version, Date.now());
      })();
    }
  }
}
