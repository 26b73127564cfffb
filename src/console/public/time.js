// Times as an office admin types them -> an absolute instant (the API gets ISO 8601, never the words).
//   "10:30", "today 10:30", "yesterday 9:15", "today", "yesterday", "now"
//   "last 2 hours", "last 30 minutes", "last 3 days", "2 hours ago", "2h", "30m", "3d", "1w"
//   "2026-12-01", "2026-12-01 10:30", or any full ISO 8601 time

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const UNIT_WORDS = { minute: 'm', min: 'm', mins: 'm', minutes: 'm', hour: 'h', hours: 'h', hr: 'h', hrs: 'h', day: 'd', days: 'd', week: 'w', weeks: 'w' };

/**
 * @param {string} text
 * @param {Date} [now]
 * @returns {{ date?: Date, error?: string }} an empty text gives {} (no limit)
 */
export function parseWhen(text, now = new Date()) {
  const input = String(text ?? '')
    .trim()
    .toLowerCase();
  if (input === '') return {};
  if (input === 'now') return { date: new Date(now) };

  // "last hour" = "last 1 hour"; a bare unit word without "last" or a number is not a time.
  const relative = /^(last\s+)?(\d+(?:\.\d+)?)?\s*([a-z]+)(\s+ago)?$/.exec(input);
  if (relative && (relative[1] || relative[2])) {
    const unit = UNIT_MS[relative[3]] ? relative[3] : UNIT_WORDS[relative[3]];
    if (unit) return { date: new Date(now.getTime() - Number(relative[2] ?? 1) * UNIT_MS[unit]) };
  }

  const day = /^(today|yesterday)(?:\s+(?:at\s+)?(\d{1,2})[:.](\d{2}))?$/.exec(input);
  const clock = /^(\d{1,2})[:.](\d{2})$/.exec(input);
  if (day || clock) {
    const [hours, minutes] = day ? [day[2] ?? '0', day[3] ?? '0'] : [clock[1], clock[2]];
    const date = new Date(now);
    if (day?.[1] === 'yesterday') date.setDate(date.getDate() - 1);
    const hh = Number(hours);
    const mm = Number(minutes);
    if (hh > 23 || mm > 59) return { error: `"${text}": hours go to 23 and minutes to 59` };
    date.setHours(hh, mm, 0, 0);
    return { date };
  }

  const local = /^(\d{4})-(\d{2})-(\d{2})(?:[ t](\d{1,2}):(\d{2}))?$/.exec(input);
  if (local) {
    const date = new Date(Number(local[1]), Number(local[2]) - 1, Number(local[3]), Number(local[4] ?? 0), Number(local[5] ?? 0));
    if (!Number.isNaN(date.getTime())) return { date };
  }
  const parsed = Date.parse(String(text).trim());
  if (/^\d{4}-\d{2}-\d{2}t/i.test(input) && !Number.isNaN(parsed)) return { date: new Date(parsed) };
  return { error: `"${text}" is not a time I understand: try "today 10:30", "last 2 hours" or "2026-12-01 09:00"` };
}
