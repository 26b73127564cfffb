/** Plain-text output of the CLI: aligned tables and label/value blocks. */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function fields(pairs: Array<[string, string | number | undefined]>, indent = '  '): string {
  const shown = pairs.filter(([, v]) => v !== undefined && v !== '');
  const width = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}`).join('\n');
}

/** "3m ago" style age of an ISO time, relative to now. */
export function ago(isoTime: string | undefined, now = Date.now()): string {
  if (!isoTime) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(isoTime)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

export function truncate(text: string | undefined, max: number): string {
  if (!text) return '-';
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A time for a table: "10:32:04" today, "2026-11-30 10:32" before (this terminal's time zone). */
export function shortTime(isoTime: string | undefined, now = new Date()): string {
  if (!isoTime) return '-';
  const at = new Date(isoTime);
  if (Number.isNaN(at.getTime())) return isoTime;
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  if (at.toDateString() === now.toDateString()) return `${clock}:${pad(at.getSeconds())}`;
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${clock}`;
}

/** "1.2 MB" style size. */
export function size(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
