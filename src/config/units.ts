/** Parsers for human units in the config file: sizes ("25MB"), durations ("5d", "90s"). A leaf: imports nothing. */

/** The text forms of a size the schemas accept (config file and admin API). */
export const SIZE_TEXT = '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][iI]?)?[bB]?\\s*$';

/** Every unit the schema's size pattern allows ("25M" and "25Mi" included, as "25MB" and "25MiB"). */
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1000,
  m: 1000 ** 2,
  g: 1000 ** 3,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
};

/** "25MB" -> 25000000, "512KiB" -> 524288, 1000 -> 1000. Returns undefined when unparsable. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = SIZE_UNITS[match[2].toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(match[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** "5d" -> ms, "90s", "250ms", "1h30m"; a bare number is milliseconds. Undefined when unparsable. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const text = value.replace(/\s+/g, '').toLowerCase(); // "1h 30m" and "5 m" as the schema allows them
  if (/^\d+$/.test(text)) return Number(text);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
  let total = 0;
  let consumed = '';
  for (const match of text.matchAll(part)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]];
    consumed += match[0];
  }
  return consumed.length > 0 && consumed === text ? Math.round(total) : undefined;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1000 ** 2) return `${(bytes / 1000 ** 2).toFixed(1)} MB`;
  if (bytes >= 1000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${bytes} B`;
}
