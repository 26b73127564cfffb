/**
 * The integrity check after an unclean stop, run in a worker thread on a read-only connection of its own.
 *
 * Why not at open, before SMTP listens: `PRAGMA quick_check` reads the whole file, so its time grows with
 * the message log (100,000 rows, 164 MB: 0.3 s with the file in the page cache, 1.7-2.2 s after a
 * reboot), and an unclean stop (kill -9, power loss, OOM kill) is exactly when printers are waiting.
 * SQLite's commit is atomic across a process crash, so corruption comes from below it (disk, filesystem,
 * a network volume); the check is the alarm for that, and it may ring a second later.
 *
 * Invariants:
 * - The worker only reads (read-only connection, one read transaction): the gateway's writes, group
 *   commits and checkpoints go on meanwhile; a checkpoint never overwrites pages the check still reads.
 * - A problem is only what SQLite says about the file (quick_check rows other than "ok", or a
 *   corruption error). Anything else (the worker could not start, the file vanished) is `unchecked`:
 *   it does not stop the gateway.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export type IntegrityOutcome =
  | { kind: 'ok'; ms: number }
  | { kind: 'corrupt'; ms: number; problems: string[] }
  | { kind: 'unchecked'; ms: number; error: string }
  | { kind: 'cancelled'; ms: number };

export interface IntegrityCheck {
  readonly done: Promise<IntegrityOutcome>;
  /** Stops the worker (the gateway is stopping); `done` resolves `cancelled` unless the answer came first. */
  cancel(): Promise<void>;
}

/** SQLite's words for a file it cannot trust (better-sqlite3 error codes). */
export function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

// Plain JavaScript run by the worker (eval: the same in the sources and in dist/, no loader needed).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Sqlite = require(workerData.driver);
let db;
try {
  db = new Sqlite(workerData.path, { readonly: true, fileMustExist: true });
  // The check reads each page once: better-sqlite3's 16 MB default cache would only add to the RSS.
  db.pragma('cache_size = -256');
  const rows = db.pragma('quick_check');
  parentPort.postMessage({ problems: rows.map((row) => String(row.quick_check)) });
} catch (err) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  const corrupt = code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
  parentPort.postMessage(corrupt ? { problems: [String(err.message)] } : { error: String(err && err.message ? err.message : err) });
} finally {
  if (db) db.close();
}
`;

/**
 * Small: the thread's JavaScript holds a few result rows. While it runs, the thread adds about 16 MiB to
 * the gateway's RSS (its isolate, 256 KiB of page cache); 4 MB of old generation is too few for Node's
 * own start of a thread.
 */
const CHECK_THREAD_LIMITS = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };

/** Starts `PRAGMA quick_check` of the database at `path` in a worker thread. */
export function checkIntegrityInBackground(path: string): IntegrityCheck {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver }, resourceLimits: CHECK_THREAD_LIMITS });
  let cancelled = false;
  const done = new Promise<IntegrityOutcome>((resolve) => {
    let answer: { problems?: string[]; error?: string } | undefined;
    worker.once('message', (message: { problems?: string[]; error?: string }) => {
      answer = message;
    });
    worker.once('error', (err) => {
      answer ??= { error: err.message };
    });
    worker.once('exit', (code) => {
      const ms = elapsed();
      if (answer?.problems) {
        const problems = answer.problems;
        resolve(problems.length === 1 && problems[0] === 'ok' ? { kind: 'ok', ms } : { kind: 'corrupt', ms, problems });
      } else if (cancelled && answer === undefined) resolve({ kind: 'cancelled', ms });
      else resolve({ kind: 'unchecked', ms, error: answer?.error ?? `the check's thread exited with code ${code}` });
    });
  });
  return {
    done,
    async cancel() {
      cancelled = true;
      await worker.terminate();
      await done;
    },
  };
}
