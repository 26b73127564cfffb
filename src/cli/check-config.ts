/**
 * `scanrelay check-config`: validate the config file offline and print the effective config (defaults
 * filled in, units resolved, env and *File secrets expanded) with every secret masked.
 */
import type { TSchema } from '@sinclair/typebox';
import { stringify } from 'yaml';
import type { GatewayConfig } from '../config/index.js';
import { ConfigSchema, isSecret } from '../config/schema.js';

export const MASK = '********';

/**
 * A deep copy with every value the schema marks `secret: true` replaced by a mask (kept as "not set" when
 * absent). Walks the value beside the schema; keys the schema renames on decode (durations) are not secret.
 */
export function maskSecrets(value: unknown, schema: TSchema | undefined = ConfigSchema): unknown {
  if (schema && isSecret(schema)) {
    if (Array.isArray(value)) return value.map(() => MASK);
    return value === undefined || value === null ? value : MASK;
  }
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, schema?.type === 'array' ? (schema.items as TSchema) : undefined));
  if (value !== null && typeof value === 'object') {
    const properties = (schema?.properties ?? {}) as Record<string, TSchema>;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskSecrets(v, properties[k]);
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
