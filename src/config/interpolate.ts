/**
 * ${VAR} / ${VAR:-default} expansion over every string in the parsed YAML, and `<key>File` secrets
 * (Docker secrets): beside every key the schema marks `secret: true`, `passwordFile: /run/secrets/x`
 * becomes `password: <file content>`. Values are never logged; problems name the key, not the value, and
 * are collected so the whole file is judged at once.
 */
import { readFileSync } from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import type { ConfigProblem } from '../shared/errors.js';
import { isSecret } from './schema.js';

export function formatKeyPath(path: readonly (string | number)[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');
}

export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, problems: ConfigProblem[], path: (string | number)[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push({ keyPath: formatKeyPath(path), problem: `environment variable ${name} is not set (use \${${name}:-default} for a default)` });
      return match;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => interpolateEnv(item, env, problems, [...path, index]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = interpolateEnv(item, env, problems, [...path, key]);
    return out;
  }
  return value;
}

/** Replaces every `<secret>File` key with `<secret>` read from that file (one trailing newline trimmed). */
export function resolveSecretFiles(value: unknown, schema: TSchema | undefined, problems: ConfigProblem[], path: (string | number)[] = []): unknown {
  if (Array.isArray(value)) {
    const items = schema?.type === 'array' ? (schema.items as TSchema) : undefined;
    return value.map((item, index) => resolveSecretFiles(item, items, problems, [...path, index]));
  }
  if (value === null || typeof value !== 'object') return value;
  const properties = (schema?.properties ?? {}) as Record<string, TSchema>;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = resolveSecretFiles(item, properties[key], problems, [...path, key]);
  for (const [secret, secretSchema] of Object.entries(properties)) {
    const fileKey = `${secret}File`;
    if (!isSecret(secretSchema) || !(fileKey in out)) continue;
    const keyPath = formatKeyPath([...path, fileKey]);
    const secretPath = out[fileKey];
    delete out[fileKey];
    if (typeof secretPath !== 'string') {
      problems.push({ keyPath, problem: 'must be a file path' });
      continue;
    }
    if (out[secret] !== undefined) {
      problems.push({ keyPath, problem: `set either ${secret} or ${fileKey}, not both` });
      continue;
    }
    let content: string;
    try {
      content = readFileSync(secretPath, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push({ keyPath, problem: `cannot read secret file ${secretPath} (${code})` });
      continue;
    }
    if (content.length === 0) {
      problems.push({ keyPath, problem: `secret file ${secretPath} is empty` });
      continue;
    }
    out[secret] =
      secretSchema.type === 'array'
        ? content
            .split(/\r?\n/)
            .map((line) => line.trim())
            .filter(Boolean)
        : content;
  }
  return out;
}
