/**
 * Time filters as people type them, turned into the absolute ISO 8601 times the admin API takes:
 *   "10:30"            today at 10:30 (this terminal's time zone)
 *   "today", "yesterday" midnight of that day
 *   "2h", "30m", "3d", "1w" that long ago
 *   "2026-12-01", "2026-12-01T10:30", "2026-12-01T10:30:00Z" ISO dates and times
 * Resolving here (rather than sending "10:30" on) means the filter means what the person at the
 * terminal meant, whatever time zone the gateway runs in.
 */

const RELATIVE_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export class TimeFilterError extends Error {}

export function parseTimeFilter(text: string, now: Date = new Date()): string {
  const value = text.trim().toLowerCase();
  const relative = /^(\d+)\s*(s|m|h|d|w)$/.exec(value);
  if (relative) return new Date(now.getTime() - Number(relative[1]) * RELATIVE_UNITS[relative[2]]).toISOString();
  const clock = /^(?:today\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (clock) {
    const [hours, minutes, seconds] = [Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0)];
    if (hours > 23 || minutes > 59 || seconds > 59) throw new TimeFilterError(`"${text}" is not a time of day (HH:MM, 00:00 to 23:59)`);
    const at = new Date(now);
    at.setHours(hours, minutes, seconds, 0);
    return at.toISOString();
  }
  if (value === 'today' || value === 'yesterday') {
    const at = new Date(now);
    at.setHours(0, 0, 0, 0);
    if (value === 'yesterday') at.setDate(at.getDate() - 1);
    return at.toISOString();
  }
  // ISO date or date-time; without an offset JavaScript reads a date-time as local time, a bare date as UTC,
  // so a bare date is made local midnight like "today".
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const [year, month, day] = value.split('-').map(Number);
    const at = new Date(year, month - 1, day);
    if (at.getMonth() === month - 1) return at.toISOString();
  } else if (/^\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}/.test(value)) {
    const ms = Date.parse(text.trim().replace(' ', 'T'));
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  throw new TimeFilterError(`"${text}" is not a time: use HH:MM (today), 2h / 30m / 3d (that long ago), today, yesterday, or an ISO date/time`);
}
