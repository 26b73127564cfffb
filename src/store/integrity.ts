/**
 * The integrity check after an unclean stop, run by a child process on a read-only connection of its own.
 *
 * Why not at open, before SMTP listens: `PRAGMA quick_check` reads the whole file, so its time grows with
 * the message log (100,000 rows, 164 MB: 0.3 s with the file in the page cache, about 2 s after a
 * reboot), and an unclean stop (kill -9, power loss, OOM kill) is exactly when printers are waiting.
 * SQLite's commit is atomic across a process crash, so corruption comes from below it (disk, filesystem,
 * a network volume); the check is the alarm for that, and it may ring a second later.
 *
 * Why a process, not a worker thread: a worker left 6 MiB of private memory and 1.3 MiB more of the node
 * binary in the gateway's RSS for good after it exited (Node 24, bench:restart after a kill -9); a process
 * gives everything back when it exits, and SQLite meeting a badly damaged file cannot take the gateway
 * down with it. It costs a Node start (about 40 ms of CPU) once per unclean stop.
 *
 * Invariants:
 * - The check only reads (read-only connection, one read transaction): the gateway's writes, group
 *   commits and checkpoints go on meanwhile; a checkpoint never overwrites pages the check still reads.
 * - A problem is only what SQLite says about the file (quick_check rows other than "ok", or a
 *   corruption error). Anything else (the process could not start, the file vanished) is `unchecked`:
 *   it does not stop the gateway.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';

export type IntegrityOutcome =
  | { kind: 'ok'; ms: number }
  | { kind: 'corrupt'; ms: number; problems: string[] }
  | { kind: 'unchecked'; ms: number; error: string }
  | { kind: 'cancelled'; ms: number };

export interface IntegrityCheck {
  readonly done: Promise<IntegrityOutcome>;
  /** Stops the check's process (the gateway is stopping); `done` resolves `cancelled` unless the answer came first. */
  cancel(): Promise<void>;
}

// Plain JavaScript run by `node -e` (the same from the sources and from dist/, no loader needed); one JSON line out.
const CHECK_SOURCE = `
const [path, driver] = process.argv.slice(1);
const Sqlite = require(driver);
let db;
let answer;
try {
  db = new Sqlite(path, { readonly: true, fileMustExist: true });
  // The check reads each page once: better-sqlite3's 16 MB default cache would only add to the memory.
  db.pragma('cache_size = -256');
  answer = { problems: db.pragma('quick_check').map((row) => String(row.quick_check)) };
} catch (err) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  const corrupt = code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
  answer = corrupt ? { problems: [String(err.message)] } : { error: String(err && err.message ? err.message : err) };
} finally {
  if (db) db.close();
}
process.stdout.write(JSON.stringify(answer) + '\\n');
`;

/** Starts `PRAGMA quick_check` of the database at `path` in a child process. */
export function checkIntegrityInBackground(path: string): IntegrityCheck {
  const started = Date.now();
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  // Not the gateway's NODE_OPTIONS (tsx's loader under npm start) nor its V8 flags: a plain, small Node.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  let cancelled = false;
  let child: ReturnType<typeof execFile> | undefined;
  const done = new Promise<IntegrityOutcome>((resolve) => {
    child = execFile(process.execPath, ['--max-old-space-size=32', '-e', CHECK_SOURCE, path, driver], { env, encoding: 'utf8' }, (err, stdout, stderr) => {
      const ms = Date.now() - started;
      const answer = parseAnswer(stdout);
      if (answer?.problems) {
        const problems = answer.problems;
        resolve(problems.length === 1 && problems[0] === 'ok' ? { kind: 'ok', ms } : { kind: 'corrupt', ms, problems });
      } else if (cancelled && answer === undefined) resolve({ kind: 'cancelled', ms });
      else resolve({ kind: 'unchecked', ms, error: answer?.error ?? (stderr.trim().split('\n').pop() || err?.message || 'the check printed no answer') });
    });
  });
  return {
    done,
    async cancel() {
      cancelled = true;
      child?.kill('SIGKILL');
      await done;
    },
  };
}

function parseAnswer(stdout: string): { problems?: string[]; error?: string } | undefined {
  try {
    return JSON.parse(stdout) as { problems?: string[]; error?: string };
  } catch {
    return undefined;
  }
}
