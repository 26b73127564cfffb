/**
 * The message log: queries over the messages table. Every filter is answered from an index (state,
 * device, upstream and time each have one on (column, received_at, seq); recipients have their own
 * table indexed by address; subjects a trigram FTS5 index), `total` is an exact count of the filter, and
 * the cursor (received_at, seq of the last item) pages stably while new messages arrive.
 */
import { ValidationError } from '../shared/errors.js';
import type { StoreDatabase } from '../store/database.js';
import type { MessageState } from './states.js';
import type { AttemptRecord, QueuedMessage } from './index.js';

export interface ListFilter {
  state?: MessageState | MessageState[];
  device?: string;
  upstream?: string;
  /** Exact address, case-insensitive. */
  recipient?: string;
  /** Case-insensitive substring of 3 or more characters. */
  subject?: string;
  /** Epoch ms, received at or after. */
  since?: number;
  /** Epoch ms, received at or before. */
  until?: number;
  limit?: number;
  offset?: number;
  cursor?: string;
}

export interface ListResult {
  total: number;
  items: QueuedMessage[];
  nextCursor?: string;
}

export interface DeviceCounts {
  received: number;
  delivered: number;
  failed: number;
}

export interface MessageStatsView {
  generatedAt: number;
  timeZone: string;
  devices: Array<{ device: string; today: DeviceCounts; week: DeviceCounts }>;
  queue: { queued: number; deferred: number; held: number; delivering: number; quarantined: number };
  daily: Array<{ day: string; delivered: number; failed: number }>;
}

const WAITING: readonly MessageState[] = ['queued', 'deferred'];

export class MessageLog {
  constructor(private readonly db: StoreDatabase) {}

  /** `leased`: ids being delivered now (their rows still say queued or deferred). */
  list(filter: ListFilter, leased: string[]): ListResult {
    const { where, params } = this.where(filter, leased);
    const limit = filter.limit ?? 50;
    const offset = filter.offset ?? 0;
    const cursorClause: string[] = [];
    const cursorParams: unknown[] = [];
    if (filter.cursor) {
      const cursor = decodeCursor(filter.cursor);
      cursorClause.push('(m.received_at < ? OR (m.received_at = ? AND m.seq < ?))');
      cursorParams.push(cursor.receivedAt, cursor.receivedAt, cursor.seq);
    }
    const total = this.db.get<{ n: number }>(`SELECT count(*) AS n FROM messages m ${sqlWhere(where)}`, ...params)?.n ?? 0;
    const rows =
      limit === 0
        ? []
        : this.db.all<{ seq: number; id: string; doc: string; state: MessageState; device: string; received_at: number }>(
            `SELECT m.seq, m.id, m.doc, m.state, m.device, m.received_at FROM messages m ${sqlWhere([...where, ...cursorClause])}
             ORDER BY m.received_at DESC, m.seq DESC LIMIT ? OFFSET ?`,
            ...params,
            ...cursorParams,
            limit,
            offset,
          );
    const leasedSet = new Set(leased);
    const items = rows.map((row) => {
      const message = parseRow(row.id, row);
      if (leasedSet.has(row.id)) message.state = 'delivering';
      return message;
    });
    const last = rows.at(-1);
    return { total, items, nextCursor: last && rows.length === limit ? encodeCursor(last.received_at, last.seq) : undefined };
  }

  /** The SQL a filter runs (for the index test). */
  explainList(filter: ListFilter): string[] {
    const { where, params } = this.where(filter, []);
    return this.db.explain(`SELECT m.seq FROM messages m ${sqlWhere(where)} ORDER BY m.received_at DESC, m.seq DESC LIMIT 50`, ...params);
  }

  attempts(id: string): AttemptRecord[] {
    return this.db
      .all<{ at: number; upstream: string | null; outcome: AttemptRecord['outcome']; reply: string | null; code: string | null; response_code: number | null }>(
        'SELECT a.at, a.upstream, a.outcome, a.reply, a.code, a.response_code FROM attempts a JOIN messages m ON m.seq = a.seq WHERE m.id = ? ORDER BY a.at, a.rowid',
        id,
      )
      .map((r) => ({
        at: r.at,
        outcome: r.outcome,
        ...(r.upstream !== null ? { upstream: r.upstream } : {}),
        ...(r.reply !== null ? { reply: r.reply } : {}),
        ...(r.code !== null ? { code: r.code } : {}),
        ...(r.response_code !== null ? { responseCode: r.response_code } : {}),
      }));
  }

  /** Deliveries per upstream since `since` (through the attempts' time index). */
  sentSince(since: number): Map<string, number> {
    const rows = this.db.all<{ upstream: string; n: number }>(
      "SELECT upstream, count(*) AS n FROM attempts WHERE at >= ? AND outcome IN ('delivered', 'partly-failed') AND upstream IS NOT NULL GROUP BY upstream",
      since,
    );
    return new Map(rows.map((r) => [r.upstream, r.n]));
  }

  countsByState(): Array<{ state: MessageState; count: number }> {
    return this.db.all('SELECT state, count(*) AS count FROM messages GROUP BY state');
  }

  /** The newest row's seq (0 when empty). */
  lastSeq(): number {
    return this.db.get<{ seq: number | null }>('SELECT max(seq) AS seq FROM messages')?.seq ?? 0;
  }

  /** Seqs of the open messages up to `lastSeq` (from the state index alone: no document is read). */
  openSeqs(lastSeq: number): number[] {
    return this.db
      .all<{ seq: number }>("SELECT seq FROM messages WHERE state IN ('queued', 'deferred', 'held') AND seq <= ? ORDER BY seq", lastSeq)
      .map((r) => r.seq);
  }

  /** Rows recovery reads, by seq. */
  openRowsBySeq(seqs: number[]): Array<{ id: string; state: MessageState; device: string; doc: string }> {
    return this.db.all('SELECT id, state, device, doc FROM messages WHERE seq IN (SELECT value FROM json_each(?))', JSON.stringify(seqs));
  }

  finishedBefore(before: number, limit: number): Array<{ id: string; state: MessageState }> {
    return this.db.all(
      "SELECT id, state FROM messages WHERE finished_at IS NOT NULL AND finished_at < ? AND state IN ('delivered', 'partly-failed', 'failed') LIMIT ?",
      before,
      limit,
    );
  }

  deliveredWithBodyBefore(before: number, limit: number): string[] {
    return this.db
      .all<{ id: string }>(
        "SELECT id FROM messages WHERE finished_at IS NOT NULL AND body_removed = 0 AND finished_at < ? AND state IN ('delivered', 'partly-failed') LIMIT ?",
        before,
        limit,
      )
      .map((r) => r.id);
  }

  statistics(timeZone: string, now: number, queue: MessageStatsView['queue']): MessageStatsView {
    const todayStart = startOfDay(now, timeZone, 0);
    const weekStart = startOfDay(now, timeZone, 6);
    const byDevice = new Map<string, { today: DeviceCounts; week: DeviceCounts }>();
    const slot = (device: string) => {
      const entry = byDevice.get(device) ?? { today: zero(), week: zero() };
      byDevice.set(device, entry);
      return entry;
    };
    for (const [start, key] of [
      [todayStart, 'today'],
      [weekStart, 'week'],
    ] as const) {
      for (const r of this.db.all<{ device: string; n: number }>('SELECT device, count(*) AS n FROM messages WHERE received_at >= ? GROUP BY device', start))
        slot(r.device)[key].received = r.n;
      for (const r of this.db.all<{ device: string; state: string; n: number }>(
        'SELECT device, state, count(*) AS n FROM messages WHERE finished_at IS NOT NULL AND finished_at >= ? GROUP BY device, state',
        start,
      )) {
        if (r.state === 'failed') slot(r.device)[key].failed += r.n;
        else slot(r.device)[key].delivered += r.n;
      }
    }
    const daily: MessageStatsView['daily'] = [];
    for (let back = 13; back >= 0; back--) {
      const start = startOfDay(now, timeZone, back);
      const end = back === 0 ? Number.MAX_SAFE_INTEGER : startOfDay(now, timeZone, back - 1);
      const day = { day: dayKey(start, timeZone), delivered: 0, failed: 0 };
      for (const r of this.db.all<{ state: string; n: number }>(
        'SELECT state, count(*) AS n FROM messages WHERE finished_at IS NOT NULL AND finished_at >= ? AND finished_at < ? GROUP BY state',
        start,
        end,
      )) {
        if (r.state === 'failed') day.failed += r.n;
        else day.delivered += r.n;
      }
      daily.push(day);
    }
    return {
      generatedAt: now,
      timeZone,
      devices: [...byDevice.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([device, counts]) => ({ device, ...counts })),
      queue,
      daily,
    };
  }

  private where(filter: ListFilter, leased: string[]): { where: string[]; params: unknown[] } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.device) {
      where.push('m.device = ?');
      params.push(filter.device);
    }
    if (filter.upstream) {
      where.push('m.upstream = ?');
      params.push(filter.upstream);
    }
    const states = filter.state === undefined ? [] : Array.isArray(filter.state) ? filter.state : [filter.state];
    if (states.length > 0) {
      const plain = states.filter((s) => s !== 'delivering' && !WAITING.includes(s));
      const waiting = states.filter((s) => WAITING.includes(s));
      const parts: string[] = [];
      if (plain.length > 0) {
        parts.push(`m.state IN (${plain.map(() => '?').join(', ')})`);
        params.push(...plain);
      }
      if (waiting.length > 0) {
        parts.push(`(m.state IN (${waiting.map(() => '?').join(', ')}) AND m.id NOT IN (SELECT value FROM json_each(?)))`);
        params.push(...waiting, JSON.stringify(leased));
      }
      if (states.includes('delivering')) {
        parts.push('m.id IN (SELECT value FROM json_each(?))');
        params.push(JSON.stringify(leased));
      }
      where.push(`(${parts.join(' OR ')})`);
    }
    if (filter.recipient) {
      where.push('m.seq IN (SELECT seq FROM message_recipients WHERE address = ?)');
      params.push(filter.recipient.trim().toLowerCase());
    }
    if (filter.subject !== undefined) {
      const text = filter.subject.trim();
      if ([...text].length < 3) throw new ValidationError('subject: give at least 3 characters to search for');
      where.push('m.seq IN (SELECT rowid FROM message_subjects WHERE message_subjects MATCH ?)');
      params.push(`"${text.replaceAll('"', '""')}"`);
    }
    if (filter.since !== undefined) {
      where.push('m.received_at >= ?');
      params.push(filter.since);
    }
    if (filter.until !== undefined) {
      where.push('m.received_at <= ?');
      params.push(filter.until);
    }
    return { where, params };
  }
}

function sqlWhere(parts: string[]): string {
  return parts.length > 0 ? `WHERE ${parts.join(' AND ')}` : '';
}

function zero(): DeviceCounts {
  return { received: 0, delivered: 0, failed: 0 };
}

function encodeCursor(receivedAt: number, seq: number): string {
  return Buffer.from(`${receivedAt}.${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): { receivedAt: number; seq: number } {
  const match = /^(\d+)\.(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  if (!match) throw new ValidationError('cursor: not a cursor this gateway gave out (use nextCursor from the previous page)');
  return { receivedAt: Number(match[1]), seq: Number(match[2]) };
}

// ---- time: "since" / "until" grammar and days in the gateway's time zone ----

const RELATIVE = /^(\d+)\s*(m|min|h|d|w)$/i;
const TIME_OF_DAY = /^([01]?\d|2[0-3]):([0-5]\d)$/;

/**
 * A since/until value: ISO 8601 (`2026-12-01T10:30:00Z`, `2026-12-01`), a time of day (`10:30` = today
 * in `timeZone`), or a relative age (`30m`, `2h`, `3d`, `1w` = that long before `now`). Epoch ms.
 */
export function parseTimeBound(value: string, now: number, timeZone: string, key = 'since'): number {
  const text = value.trim();
  const relative = RELATIVE.exec(text);
  if (relative) {
    const unit = relative[2].toLowerCase();
    const ms = { m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[unit] ?? 0;
    return now - Number(relative[1]) * ms;
  }
  const time = TIME_OF_DAY.exec(text);
  if (time) return zonedTime(now, timeZone, Number(time[1]), Number(time[2]), 0);
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const parsed = Date.parse(text);
    if (Number.isFinite(parsed)) return parsed;
  }
  throw new ValidationError(`${key}: '${value.slice(0, 40)}' is not a time; use ISO 8601 (2026-12-01T10:30), a time of day (10:30) or an age (30m, 2h, 3d)`);
}

/** Offset of `timeZone` from UTC at instant `at`, in ms (positive east of Greenwich). */
function zoneOffset(at: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(at));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(at / 1000) * 1000;
}

/** The instant of hh:mm on the calendar day `daysBack` days before `now`'s day in `timeZone`. */
function zonedTime(now: number, timeZone: string, hour: number, minute: number, daysBack: number): number {
  const local = new Date(now + zoneOffset(now, timeZone));
  const guess = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() - daysBack, hour, minute);
  const first = guess - zoneOffset(guess, timeZone);
  return guess - zoneOffset(first, timeZone);
}

export function startOfDay(now: number, timeZone: string, daysBack: number): number {
  return zonedTime(now, timeZone, 0, 0, daysBack);
}

export function dayKey(at: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(at));
}

export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function parseRow(id: string, row: { doc: string; state: MessageState; device: string }): QueuedMessage {
  try {
    const message = JSON.parse(row.doc) as QueuedMessage;
    message.state = row.state;
    return message;
  } catch {
    return {
      id,
      state: row.state,
      device: row.device,
      envelope: { mailFrom: '', rcptTo: [], bodyType: '7bit', smtpUtf8: false },
      recipients: [],
      size: 0,
      sha256: '',
      has8bit: false,
      headers: { hasDate: false },
      client: { address: '', sessionId: '' },
      receivedAt: idTime(id) ?? 0,
      updatedAt: 0,
      attempts: 0,
      quarantine: { reason: 'its record in the database cannot be read', at: 0 },
    };
  }
}

/** The stand-in row for a body whose record is lost: kept, quarantined, never sent or deleted. */
export function quarantinedPlaceholder(id: string, size: number, at: number, device = 'unknown'): QueuedMessage {
  return {
    id,
    state: 'quarantined',
    device,
    envelope: { mailFrom: '', rcptTo: [], bodyType: '7bit', smtpUtf8: false },
    recipients: [],
    size,
    sha256: '',
    has8bit: false,
    headers: { hasDate: false },
    client: { address: '', sessionId: '' },
    receivedAt: idTime(id) ?? at,
    updatedAt: at,
    attempts: 0,
  };
}

/** Queue ids start with the accept time in base36 milliseconds. */
export function idTime(id: string): number | undefined {
  const ms = Number.parseInt(id.slice(0, 9), 36);
  return Number.isFinite(ms) ? ms : undefined;
}
