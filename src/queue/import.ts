/**
 * One-time background import of the file journal written before the store database: `queue/<id>.json`
 * records next to their `queue/<id>.eml` bodies. Bodies stay where they are; each record becomes a row.
 *
 * Invariants:
 * - Idempotent: rows are inserted with INSERT OR IGNORE by id, in batches committed durably; a record
 *   file is removed only after its batch has committed. Killed at any point, the next start imports the
 *   records still on disk and skips rows already there: nothing lost, nothing doubled.
 * - While a record file exists, recovery treats its body as "being imported", not as an orphan.
 * - A record that cannot be read is imported as `quarantined` (its body kept) and renamed
 *   `<id>.json.unreadable` for the admin; old `.json.corrupt` files (the old recovery's) likewise.
 * - Open messages become deliverable as their batch lands (message.due).
 */
import { readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isQueueId } from '../shared/ids.js';
import { makeHold } from './holds.js';
import type { AttemptRecord, Queue, QueuedMessage } from './index.js';
import type { MessageState } from './states.js';
import { fileExists } from '../shared/durable-fs.js';
import { quarantinedPlaceholder } from './log.js';

export interface ImportProgress {
  done: number;
  total: number;
  running: boolean;
}

export interface ImportOptions {
  batchSize?: number;
  /** Pause between batches (keeps the event loop free for SMTP while a large journal is imported). */
  pauseMs?: number;
  onProgress?: (progress: ImportProgress) => void;
  onQuarantined?: (id: string, reason: string) => void;
}

const LEGACY_STATES: ReadonlySet<string> = new Set(['queued', 'deferred', 'held', 'delivering', 'delivered', 'failed']);

export class JournalImport {
  readonly progress: ImportProgress = { done: 0, total: 0, running: false };
  private stopped = false;

  constructor(
    private readonly queue: Queue,
    private readonly options: ImportOptions = {},
  ) {}

  /** Record files waiting for the import (cheap: one readdir). */
  static async pending(queueDir: string): Promise<string[]> {
    const names = await readdir(queueDir).catch(() => [] as string[]);
    return names.filter((n) => (n.endsWith('.json') || n.endsWith('.json.corrupt')) && isQueueId(n.slice(0, 17))).sort();
  }

  stop(): void {
    this.stopped = true;
  }

  async run(): Promise<ImportProgress> {
    const files = await JournalImport.pending(this.queue.queueDir);
    this.progress.total = files.length;
    this.progress.running = files.length > 0;
    const batchSize = this.options.batchSize ?? 500;
    for (let i = 0; i < files.length && !this.stopped; i += batchSize) {
      await this.importBatch(files.slice(i, i + batchSize));
      this.progress.done = Math.min(files.length, i + batchSize);
      this.options.onProgress?.({ ...this.progress });
      await new Promise((resolve) => setTimeout(resolve, this.options.pauseMs ?? 0));
    }
    this.progress.running = false;
    return { ...this.progress };
  }

  private async importBatch(files: string[]): Promise<void> {
    const parsed: Array<{ file: string; message: QueuedMessage; attempts: AttemptRecord[]; unreadable?: string }> = [];
    for (const file of files) {
      const id = file.slice(0, 17);
      const path = join(this.queue.queueDir, file);
      let message: QueuedMessage | undefined;
      let reason: string | undefined;
      if (file.endsWith('.json')) {
        try {
          message = fromLegacy(JSON.parse(await readFile(path, 'utf8')) as LegacyRecord, id);
        } catch (err) {
          reason = `its old journal record cannot be read (${(err as Error).message.slice(0, 120)})`;
        }
      } else reason = 'its old journal record was set aside as corrupt by the previous version';
      if (message && message.state !== 'delivered' && message.state !== 'failed' && !message.bodyRemoved && !(await fileExists(this.queue.bodyPath(id)))) {
        reason = 'its body file is missing from the spool';
      }
      if (reason) {
        const size = await stat(this.queue.bodyPath(id)).then(
          (s) => s.size,
          () => 0,
        );
        const base = message ?? quarantinedPlaceholder(id, size, Date.now());
        parsed.push({
          file,
          message: { ...base, state: 'quarantined', nextAttemptAt: undefined, quarantine: { reason, at: Date.now() } },
          attempts: [],
          unreadable: reason,
        });
        continue;
      }
      if (message) parsed.push({ file, message, attempts: attemptsOf(message) });
    }
    // One durable transaction per batch (its WAL fdatasynced before it returns), then the record files go.
    const inserted = this.queue.database.transaction(() => parsed.map((p) => this.queue.insertRow(p.message, true, p.attempts)));
    let open = 0;
    parsed.forEach((p, i) => {
      if (!inserted[i]) return;
      this.queue.adoptImported(p.message);
      if (p.unreadable) this.options.onQuarantined?.(p.message.id, p.unreadable);
      if (p.message.state === 'queued' || p.message.state === 'deferred') open++;
    });
    for (const p of parsed) {
      const path = join(this.queue.queueDir, p.file);
      if (p.unreadable) await rename(path, `${path}.unreadable`).catch(() => undefined);
      else if (!p.unreadable) await unlink(path).catch(() => undefined);
    }
    if (open > 0) this.queue.events.emit('message.due', { reason: 'start' });
  }
}

/** The old record (QueuedMessage of the file journal). */
type LegacyRecord = Omit<QueuedMessage, 'state' | 'held'> & { state: string; held?: { code: string; reason: string } };

function fromLegacy(record: LegacyRecord, id: string): QueuedMessage {
  if (record.id !== id) throw new Error(`the record names ${String(record.id).slice(0, 20)}`);
  if (!LEGACY_STATES.has(record.state) || !Array.isArray(record.recipients) || !record.envelope) throw new Error('not a queue record');
  const state: MessageState = record.state === 'delivering' ? 'queued' : (record.state as MessageState);
  return {
    ...record,
    state,
    attempts: record.attempts ?? 0,
    held: record.held ? makeHold(record.held.code, record.held.reason, record.updatedAt ?? record.receivedAt) : undefined,
  };
}

/** The old journal kept only the last outcome: it becomes the attempt history. */
function attemptsOf(message: QueuedMessage): AttemptRecord[] {
  if (message.state === 'delivered' && message.deliveredAt)
    return [{ at: message.deliveredAt, upstream: message.upstream, outcome: 'delivered', reply: message.upstreamResponse }];
  if (message.state === 'failed' && message.failedAt)
    return [
      {
        at: message.failedAt,
        upstream: message.upstream,
        outcome: 'failed',
        reply: message.lastError?.message ?? message.failReason,
        code: message.lastError?.code,
        responseCode: message.lastError?.responseCode,
      },
    ];
  if (message.lastError)
    return [
      {
        at: message.lastError.at,
        upstream: message.upstream,
        outcome: message.state === 'held' ? 'held' : 'deferred',
        reply: message.lastError.message,
        code: message.lastError.code,
        responseCode: message.lastError.responseCode,
      },
    ];
  return [];
}
