/**
 * ${VAR} / ${VAR:-default} expansion over every string in the parsed YAML, and `<key>File` secrets
 * (Docker secrets): `passwordFile: /run/secrets/x` becomes `password: <file content>`. Values are never
 * logged; errors name the key, not the value.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/errors.js';

/** Keys whose value may come from a file named by `<key>File`. */
const SECRET_KEYS = ['password', 'clientSecret', 'refreshToken', 'secretKey', 'tokens'] as const;

export function formatKeyPath(path: readonly (string | number)[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');
}

export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, path: (string | number)[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(file, formatKeyPath(path), `environment variable ${name} is not set (use \${${name}:-default} for a default)`);
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => interpolateEnv(item, env, file, [...path, index]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = interpolateEnv(item, env, file, [...path, key]);
    return out;
  }
  return value;
}

/** Replaces every `<secret>File` key with `<secret>` read from that file (one trailing newline trimmed). */
export function resolveSecretFiles(value: unknown, file: string, path: (string | number)[] = []): unknown {
  if (Array.isArray(value)) return value.map((item, index) => resolveSecretFiles(item, file, [...path, index]));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = resolveSecretFiles(item, file, [...path, key]);
  for (const secret of SECRET_KEYS) {
    const fileKey = `${secret}File`;
    if (!(fileKey in out)) continue;
    const secretPath = out[fileKey];
    if (typeof secretPath !== 'string') throw new ConfigError(file, formatKeyPath([...path, fileKey]), 'must be a file path');
    if (out[secret] !== undefined) throw new ConfigError(file, formatKeyPath([...path, fileKey]), `set either ${secret} or ${fileKey}, not both`);
    let content: string;
    try {
      content = readFileSync(secretPath, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError(file, formatKeyPath([...path, fileKey]), `cannot read secret file ${secretPath} (${code})`);
    }
    if (content.length === 0) throw new ConfigError(file, formatKeyPath([...path, fileKey]), `secret file ${secretPath} is empty`);
    out[secret] =
      secret === 'tokens'
        ? content
            .split(/\r?\n/)
            .map((t) => t.trim())
            .filter(Boolean)
        : content;
    delete out[fileKey];
  }
  return out;
}
