/**
 * loadConfig(file, env): read YAML, apply env overrides, expand ${VAR}, read *File secrets, validate and
 * decode against the one schema (schema.ts: its decoded type is the config type), then the rules between
 * keys (checks.ts). Every problem is reported at once in one ConfigError naming the file, and for each
 * problem the key path and what is wrong; nothing is silently replaced by a default.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { type ValueError, Value } from '@sinclair/typebox/value';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { type ConfigProblem, ConfigError } from '../shared/errors.js';
import { checkConfig, type GatewayConfig } from './checks.js';
import { formatKeyPath, interpolateEnv, resolveSecretFiles } from './interpolate.js';
import { ConfigSchema, type DecodedConfig, isSecret } from './schema.js';

export { parseDuration, parseSize, formatBytes } from './units.js';
export { DEVICE_USERNAME_PATTERN, DEVICE_NAME_PATTERN, deviceSizeLimit, OUTGOING_HEADER_ALLOWANCE } from '../devices/rules.js';
export type { DeviceConfig, GatewayConfig } from './checks.js';

export type SmtpConfig = GatewayConfig['smtp'];
export type Pop3Config = GatewayConfig['pop3'];
export type AdminConfig = GatewayConfig['admin'];
export type DeliveryConfig = GatewayConfig['delivery'];
export type UpstreamConfig = GatewayConfig['upstreams'][number];
export type LogLevel = GatewayConfig['log']['level'];
export type LogFormat = GatewayConfig['log']['format'];
export type LegacyTls = SmtpConfig['tls']['legacyTls'];

/** Environment overrides for the few settings a container or test changes without editing the file. */
const ENV_OVERRIDES: Array<[string, string[], 'string' | 'number']> = [
  ['SCANRELAY_DATA_DIR', ['dataDir'], 'string'],
  ['SCANRELAY_LOG_LEVEL', ['log', 'level'], 'string'],
  ['SCANRELAY_LOG_FORMAT', ['log', 'format'], 'string'],
  ['SCANRELAY_SMTP_HOST', ['smtp', 'host'], 'string'],
  ['SCANRELAY_SMTP_PORT', ['smtp', 'port'], 'number'],
  ['SCANRELAY_ADMIN_HOST', ['admin', 'host'], 'string'],
  ['SCANRELAY_ADMIN_PORT', ['admin', 'port'], 'number'],
  ['SCANRELAY_POP3_PORT', ['pop3', 'port'], 'number'],
];

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SCANRELAY_CONFIG || 'config/gateway.yaml';
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const absolute = resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(absolute, '', `cannot read the config file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseConfig(text, absolute, env);
}

/** Same as loadConfig for YAML text already in hand (tests, the API's dry runs). */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}` : '';
    throw new ConfigError(file, where, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof document !== 'object' || Array.isArray(document) || document === null) {
    throw new ConfigError(file, '', 'the top level must be a mapping of keys');
  }
  applyEnvOverrides(document as Record<string, unknown>, env);
  const problems: ConfigProblem[] = [];
  const expanded = coerceScalars(ConfigSchema, resolveSecretFiles(interpolateEnv(document, env, problems), ConfigSchema, problems)) as Record<string, unknown>;
  // TypeBox's defaulting turns a mapping where a list belongs into an empty list: a forgotten "-" would
  // silently drop every device. Refuse it before defaults are applied.
  for (const key of ['devices', 'upstreams'] as const) {
    const value = expanded[key];
    if (value === null)
      expanded[key] = []; // "devices:" with nothing under it
    else if (value !== undefined && !Array.isArray(value)) {
      problems.push({ keyPath: key, problem: 'must be a list: start each entry with "- " (e.g. "- name: ...")' });
      delete expanded[key];
    }
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(expanded));
  // A key already reported (a missing ${VAR}, an unreadable *File) is not reported again for its placeholder.
  const reported = new Set(problems.map((p) => p.keyPath));
  const invalid = schemaProblems(withDefaults).filter((p) => !reported.has(p.keyPath));
  problems.push(...invalid);
  if (problems.length > 0) {
    problems.push(...ruleProblemsDespite(expanded, invalid, problems, file));
    throw ConfigError.of(file, problems);
  }
  const config = checkConfig(Value.Decode(ConfigSchema, withDefaults) as DecodedConfig, file, problems);
  if (problems.length > 0) throw ConfigError.of(file, problems);
  return deepFreeze(config);
}

/**
 * So that one run shows every problem: the rules between keys, judged on the file with the keys already
 * found wrong left out (when what remains is valid). Rule problems in a section or list entry that already
 * has a problem, or naming a key already reported, are left out: they could be echoes of the first.
 */
function ruleProblemsDespite(document: Record<string, unknown>, invalid: SchemaProblem[], known: ConfigProblem[], file: string): ConfigProblem[] {
  const pruned = Value.Clone(document) as Record<string, unknown>;
  for (const { pointer } of invalid) deletePath(pruned, pointer);
  const withDefaults = Value.Default(ConfigSchema, pruned);
  if (!Value.Check(ConfigSchema, withDefaults)) return [];
  const found: ConfigProblem[] = [];
  checkConfig(Value.Decode(ConfigSchema, withDefaults) as DecodedConfig, file, found);
  const keys = known.map((p) => p.keyPath).filter(Boolean);
  const scopes = new Set(keys.map(scopeOf));
  return found.filter((p) => !scopes.has(scopeOf(p.keyPath)) && !keys.some((key) => p.problem.includes(key)));
}

/** The section or list entry a key belongs to: "smtp" for smtp.port, "devices[0]" for devices[0].password. */
function scopeOf(keyPath: string): string {
  return /^[^.[]+(\[\d+\])?/.exec(keyPath)?.[0] ?? keyPath;
}

function deletePath(document: Record<string, unknown>, pointer: string[]): void {
  let target: unknown = document;
  for (const part of pointer.slice(0, -1)) target = (target as Record<string, unknown> | undefined)?.[part];
  if (target && typeof target === 'object' && !Array.isArray(target)) delete (target as Record<string, unknown>)[pointer[pointer.length - 1]];
}

function applyEnvOverrides(document: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, path, kind] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let target = document;
    for (const key of path.slice(0, -1)) {
      if (typeof target[key] !== 'object' || target[key] === null) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    target[path[path.length - 1]] = kind === 'number' && /^\d+$/.test(value) ? Number(value) : value;
  }
}

interface SchemaProblem extends ConfigProblem {
  /** The key's place in the document, e.g. ["devices", "0", "password"]. */
  pointer: string[];
}

/** Every schema violation, one per key path (the first TypeBox gives for it is the most specific). */
function schemaProblems(document: unknown): SchemaProblem[] {
  const byPath = new Map<string, SchemaProblem>();
  for (const error of Value.Errors(ConfigSchema, document)) {
    const pointer = error.path.split('/').filter(Boolean);
    const keyPath = formatKeyPath(pointer.map((p) => (/^\d+$/.test(p) ? Number(p) : p)));
    if (byPath.has(keyPath) || [...byPath.keys()].some((known) => keyPath.startsWith(`${known}.`) || keyPath.startsWith(`${known}[`))) continue;
    byPath.set(keyPath, { keyPath, pointer, problem: describeSchemaError(error, keyPath) });
  }
  return [...byPath.values()];
}

function describeSchemaError(error: ValueError, keyPath: string): string {
  const { message, value } = error;
  const schema = error.schema as { description?: string; title?: string };
  // A secret's value is never echoed: the message may reach a terminal or a log.
  const secret = isSecret(error.schema) || SECRET_NAME.test(keyPath);
  const shown = secret || typeof value === 'string' ? '' : value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  const hint = schema.description ? `; expected ${schema.description}` : '';
  // TypeBox 0.34 words it "Unexpected property"; older releases "additional properties".
  if (/additional properties|unexpected property/i.test(message)) {
    const suggestion = nearestKey(keyPath);
    return suggestion ? `unknown key; did you mean ${suggestion}?` : 'unknown key';
  }
  if (/union/i.test(message) && schema.title) return `not a valid ${schema.title}${hint}${shown}`;
  return `${message}${hint}${shown}`;
}

/** Key names whose values are never echoed even when the schema has no mark (e.g. an unknown "pasword"). */
const SECRET_NAME = /password|secret|token/i;

/** The known key nearest to a mistyped one at the same place ("smtp.maxConnectionPerIp" -> "smtp.maxConnectionsPerIp"). */
function nearestKey(keyPath: string): string | undefined {
  const match = /^(.*?)(?:\.)?([^.[\]]+)$/.exec(keyPath);
  if (!match) return undefined;
  const [, parentPath, typed] = match;
  let schema: TSchema | undefined = ConfigSchema;
  for (const part of parentPath.split(/\.|\[\d+\]/).filter(Boolean)) {
    schema = (schema?.properties as Record<string, TSchema> | undefined)?.[part];
    if (schema?.type === 'array') schema = schema.items as TSchema;
  }
  if (parentPath.endsWith(']') && schema?.type === 'array') schema = schema.items as TSchema;
  const known = Object.keys((schema?.properties as Record<string, TSchema> | undefined) ?? {});
  let best: { key: string; distance: number } | undefined;
  for (const key of known) {
    const distance = editDistance(typed.toLowerCase(), key.toLowerCase());
    if (!best || distance < best.distance) best = { key, distance };
  }
  if (!best || best.distance > Math.max(2, Math.floor(typed.length / 4))) return undefined;
  return parentPath ? `${parentPath}.${best.key}` : best.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * ${VAR} values are always text: where the schema wants an integer or a boolean, "2525" and "true" become
 * 2525 and true. Keys of string type keep numeric-looking text as it is (a password "0123" stays "0123").
 */
function coerceScalars(schema: TSchema, value: unknown): unknown {
  if (typeof value === 'string') {
    const text = value.trim();
    if (schema.type === 'integer' && /^-?\d+$/.test(text)) return Number(text);
    if (schema.type === 'boolean' && /^(true|false)$/i.test(text)) return text.toLowerCase() === 'true';
    return value;
  }
  if (Array.isArray(value)) return schema.type === 'array' && schema.items ? value.map((item) => coerceScalars(schema.items as TSchema, item)) : value;
  if (value !== null && typeof value === 'object' && schema.type === 'object' && schema.properties) {
    const properties = schema.properties as Record<string, TSchema>;
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, properties[key] ? coerceScalars(properties[key], item) : item]));
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
