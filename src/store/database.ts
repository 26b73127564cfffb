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
 *   transaction (group commit), committed with `synchronous=NORMAL`: SQLite writes the WAL frames and
 *   does not fsync, so the event loop never waits for the disk.
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
 * - Each write runs in its own savepoint: one failing write rejects only its caller.
 * - Schema changes are forward migrations, applied in order at open; `schema_version` says how far.
 */
import Sqlite from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export type Statement = Sqlite.Statement;
type Row = Record<string, unknown>;

/** Page cache: 8 MiB keeps the hot index pages of ~100k log rows in memory within the 130 MB target. */
const CACHE_KIB = 8 * 1024;

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
  /** Batches, writes and WAL fdatasyncs (figures for the bench and tests). */
  readonly commitStats = { batches: 0, durableBatches: 0, writes: 0, walSyncs: 0 };

  private constructor(path: string) {
    this.path = path;
    const fresh = !existsSync(path);
    this.db = new Sqlite(path);
    // SQLite creates -wal and -shm with the database file's mode, so 0600 here covers them too.
    if (fresh) chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    // Commits never fsync on this thread: durable writes are synced by syncWal(), off the event loop.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
    this.db.pragma('foreign_keys = OFF');
    this.db.pragma('temp_store = MEMORY');
    for (const file of [`${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
  }

  /**
   * Opens (creating and migrating) the database. `integrityCheck`: PRAGMA quick_check, throwing
   * IntegrityError; 'after-crash' runs it only when the last run did not close the database (its WAL
   * file is still there: a clean close checkpoints and removes it), so a clean restart does not read
   * the whole file.
   */
  static open(path: string, options: { integrityCheck?: boolean | 'after-crash' } = {}): StoreDatabase {
    const check = options.integrityCheck === 'after-crash' ? existsSync(`${path}-wal`) : options.integrityCheck === true;
    let store: StoreDatabase;
    try {
      store = new StoreDatabase(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw new IntegrityError(`the database ${path} cannot be read: ${(err as Error).message}`);
      throw err;
    }
    if (check) {
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

  /** Current `PRAGMA synchronous` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA). */
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

  /** Rows one at a time (start-up reads 10,000 open rows without holding them all). No other statement may run until it ends. */
  iterate<T = Row>(sql: string, ...params: unknown[]): IterableIterator<T> {
    return this.db.prepare(sql).iterate(...params) as IterableIterator<T>;
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
    this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0 || this.closed) {
      for (const write of batch) write.reject(new Error('the database is closed'));
      return;
    }
    const durable = batch.some((w) => w.durable);
    const results: Array<{ ok: boolean; value: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const write of batch) {
          try {
            results.push({ ok: true, value: this.db.transaction(write.work)() });
          } catch (err) {
            results.push({ ok: false, value: err });
          }
        }
      })();
    } catch (err) {
      for (const write of batch) write.reject(err);
      return;
    }
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
