/**
 * The store database's health: what the gateway does when SQLite says store.db is damaged, at open, after an
 * unclean stop, or while it runs. The scans' bodies are files in queue/ and nothing here touches them.
 *
 * Invariants:
 * - Open (`openStore`): a database SQLite cannot read at all, or one whose last check failed (CHECK_FAILED_FILE
 *   is there) and that fails `PRAGMA quick_check` again, is not used: the start is refused with the steps to
 *   recover (StoreCorruptError). A check that passes removes the marker.
 * - After an unclean stop the whole file is checked once SMTP listens, in a child process (integrity.ts),
 *   because that read grows with the message log. A failed check leaves the marker (durably), logs
 *   `store.corrupt`, and the caller stops the gateway.
 * - A damaged page met while running (a write, or a read for the admin API) does not stop the gateway: scans
 *   are still accepted. It is said once (`store.damaged` in the log, the `store.damaged` event for the metric)
 *   and leaves the marker, so the next start checks first.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { writeFileDurable } from '../shared/durable-fs.js';
import { errorMessage } from '../shared/errors.js';
import type { GatewayEventBus } from '../shared/events.js';
import { IntegrityError, StoreDatabase } from './database.js';
import { checkIntegrityInBackground, type IntegrityCheck, type IntegrityOutcome } from './integrity.js';

/** Left by a check that failed, or by damage met while running: the next start checks before it opens anything. */
export const CHECK_FAILED_FILE = 'store.db.check-failed';

export class StoreCorruptError extends Error {
  readonly code = 'SCANRELAY_STORE_CORRUPT';
}

/**
 * Opens dataDir/store.db (see the invariants above). `health` runs the background check and raises the
 * alarm; the database reports damaged writes to it.
 */
export function openStore(dataDir: string, logger: Logger, events: GatewayEventBus): { database: StoreDatabase; health: StoreHealth } {
  const path = join(dataDir, 'store.db');
  const marker = join(dataDir, CHECK_FAILED_FILE);
  const failedBefore = existsSync(marker);
  let database: StoreDatabase;
  try {
    database = StoreDatabase.open(path, { integrityCheck: failedBefore });
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw corruptError(dataDir, logger, err.message);
  }
  if (failedBefore) {
    rmSync(marker);
    logger.warn({ part: 'store' }, 'store.check.ok: the store database passes its check now (the last check had failed)');
  }
  const health = new StoreHealth(dataDir, database, logger, events, database.uncleanStop && !failedBefore);
  database.onCorruption = (err) => health.damaged(err);
  return { database, health };
}

export class StoreHealth {
  private readonly log: Logger;
  private check?: IntegrityCheck;
  private checked?: Promise<IntegrityOutcome>;
  private damage?: string;

  constructor(
    private readonly dataDir: string,
    private readonly database: StoreDatabase,
    private readonly logger: Logger,
    private readonly events: GatewayEventBus,
    /** The last run did not close the database, and no check has run since. */
    readonly needsCheck: boolean,
  ) {
    this.log = logger.child({ part: 'store' });
  }

  /**
   * After an unclean stop: starts the whole-file check (call once SMTP listens). On a failed check,
   * `onCorrupt` is called with the error to stop with; its rejection is logged.
   */
  startBackgroundCheck(onCorrupt: (err: StoreCorruptError) => Promise<void>): void {
    if (!this.needsCheck || this.check) return;
    this.log.info('store.check.started: the last run did not stop cleanly; checking the store database in the background');
    this.check = checkIntegrityInBackground(this.database.path);
    this.checked = this.check.done.then(async (outcome) => {
      if (outcome.kind === 'ok') this.log.info({ ms: outcome.ms }, 'store.check.ok: the store database passed its check');
      if (outcome.kind === 'unchecked') this.log.warn({ ms: outcome.ms, err: outcome.error }, 'store.check.skipped: could not run the check');
      if (outcome.kind === 'corrupt') {
        const err = await this.foundCorrupt(`the database ${this.database.path} failed its integrity check: ${outcome.problems.slice(0, 3).join('; ')}`);
        await onCorrupt(err).catch((stopErr: unknown) => this.logger.error({ err: errorMessage(stopErr) }, 'gateway.stop failed'));
      }
      return outcome;
    });
  }

  /** The background check's outcome; undefined when none was started. */
  checkOutcome(): Promise<IntegrityOutcome> | undefined {
    return this.checked;
  }

  /** Stops a running check (before the database closes: its connection must not outlive the gateway's). */
  async cancelCheck(): Promise<void> {
    await this.check?.cancel();
  }

  /** A damaged page met at start (reading the open rows): leaves the marker; the error to refuse the start with. */
  async unreadableAtStart(err: unknown): Promise<StoreCorruptError> {
    return this.foundCorrupt(`the database ${this.database.path} cannot be read: ${errorMessage(err)}`);
  }

  /** A damaged page met while running: said once; the gateway goes on (see the invariants). */
  damaged(err: unknown): void {
    if (this.damage !== undefined) return;
    const problem = errorMessage(err);
    this.damage = problem;
    this.events.emit('store.damaged', { problem });
    void markCheckFailed(this.dataDir, this.logger, `the database ${this.database.path} has a damaged page: ${problem}`).then(() =>
      this.log.error(
        { err: problem, recover: recoverySteps(this.dataDir) },
        'store.damaged: SQLite found a damaged page of the store database; scans are still accepted, recover at a quiet moment',
      ),
    );
  }

  private async foundCorrupt(problem: string): Promise<StoreCorruptError> {
    await markCheckFailed(this.dataDir, this.logger, problem);
    return corruptError(this.dataDir, this.logger, problem);
  }
}

/** Leaves CHECK_FAILED_FILE (durably). A marker that cannot be written is logged: the caller goes on. */
async function markCheckFailed(dataDir: string, logger: Logger, problem: string): Promise<void> {
  const marker = join(dataDir, CHECK_FAILED_FILE);
  try {
    await writeFileDurable(marker, `${new Date().toISOString()} ${problem}\n`, { mode: 0o600 });
  } catch (err) {
    logger.error(
      { part: 'store', path: marker, err: errorMessage(err) },
      'store.check.marker-failed: keep the gateway stopped until the database is recovered',
    );
  }
}

function recoverySteps(dataDir: string): string[] {
  const path = join(dataDir, 'store.db');
  return [
    'stop the gateway and keep a copy of the whole data directory',
    `sqlite3 ${path} ".recover" | sqlite3 ${path}.recovered   (then move store.db aside and rename store.db.recovered to store.db)`,
    'or move store.db, store.db-wal and store.db-shm aside: the next start makes a new database and quarantines every body in queue/ for you to retry',
  ];
}

/** Logs `store.corrupt` with the steps to recover; the error to stop or refuse the start with. */
function corruptError(dataDir: string, logger: Logger, problem: string): StoreCorruptError {
  const path = join(dataDir, 'store.db');
  logger.fatal({ err: problem, recover: recoverySteps(dataDir) }, 'store.corrupt: the store database failed its integrity check; no message body was touched');
  return new StoreCorruptError(
    `${problem}. No message body was touched. To recover: keep a copy of ${dataDir}; then either run sqlite3 ${path} ".recover" into a new file and put it in place of store.db, or move store.db, store.db-wal and store.db-shm aside so the next start quarantines every body in ${join(dataDir, 'queue')} for you to retry (POST /api/messages/bulk with action retry and filter state quarantined).`,
  );
}
