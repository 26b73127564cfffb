/**
 * `scanrelay check-config`: validate the config file offline and print the effective config (defaults
 * filled in, units resolved, env and *File secrets expanded) with every secret masked.
 */
import { stringify } from 'yaml';
import type { GatewayConfig } from '../config/index.js';

const SECRET_KEYS = new Set(['password', 'passwordHash', 'secretKey', 'clientSecret', 'refreshToken', 'tokens', 'accessToken']);
export const MASK = '********';

/** A deep copy with secret values replaced by a mask (kept as "not set" when absent). */
export function maskSecrets(value: unknown, key?: string): unknown {
  if (key !== undefined && SECRET_KEYS.has(key)) {
    if (Array.isArray(value)) return value.map(() => MASK);
    return value === undefined || value === null ? value : MASK;
  }
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskSecrets(v, k);
    return out;
  }
  return value;
}

/** The effective config as plain data, secrets masked. */
export function effectiveConfig(config: GatewayConfig): Record<string, unknown> {
  const masked = maskSecrets(config) as Record<string, unknown>;
  // A CA bundle read from tls.ca is long and not interesting here; its file name is shown instead.
  for (const upstream of (masked.upstreams as Array<{ tls: Record<string, unknown> }>) ?? []) {
    if (typeof upstream.tls.ca === 'string') upstream.tls.ca = `(PEM, ${upstream.tls.ca.length} characters from caFile)`;
  }
  return masked;
}

export function renderEffectiveConfig(config: GatewayConfig): string {
  const masked = effectiveConfig(config);
  const header = `# ${config.file}: valid\n# effective configuration (defaults applied, sizes in bytes, durations in ms, secrets masked)\n`;
  return header + stringify(masked, { lineWidth: 0 });
}
