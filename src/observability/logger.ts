/**
 * The pino root logger. Secrets are removed by path (redact) wherever they might be attached; callers
 * still never pass passwords, AUTH payloads or tokens to a logger. Parts log through `child({ part })`.
 */
import { createRequire } from 'node:module';
import { pino, type Logger, type DestinationStream } from 'pino';
import type pinoPrettyModule from 'pino-pretty';
import type { LogFormat, LogLevel } from '../config/index.js';
import { secretKeyNames } from '../config/schema.js';

export type { Logger } from 'pino';

/** Secrets that are not config keys: AUTH payloads, OAuth2 access tokens, HTTP authorization. */
const RUNTIME_SECRETS = ['pass', 'secret', 'token', 'accessToken', 'authorization'];

/** Every config key marked `secret: true` in the schema, plus the runtime ones. */
const SECRET_KEYS: ReadonlySet<string> = new Set([...secretKeyNames(), ...RUNTIME_SECRETS]);
export const CENSORED = '[redacted]';

/**
 * Removes secrets by key name, at the top of a log object and one level down (`{ auth: { pass } }`), plus
 * `headers.authorization` below any key (`req.headers.authorization`). Objects with nothing to remove are
 * returned as they are; the caller's object is never changed (a censored copy is returned).
 *
 * One pass over the keys against a Set: pino's path-based `redact` with the same coverage (26 paths, half
 * of them `*.name` wildcards) cost ~80 us per line and child logger, more than the rest of the logging.
 */
export function censorSecrets<T extends Record<string, unknown>>(object: T): T {
  let out: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    let replacement: unknown = value;
    if (SECRET_KEYS.has(key)) replacement = CENSORED;
    else if (isPlainObject(value)) replacement = censorLevel(value, true);
    if (replacement !== value) {
      out ??= { ...object };
      out[key] = replacement;
    }
  }
  return (out ?? object) as T;
}

function censorLevel(object: Record<string, unknown>, goDeeper: boolean): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    let replacement: unknown = value;
    if (SECRET_KEYS.has(key)) replacement = CENSORED;
    else if (goDeeper && key === 'headers' && isPlainObject(value)) replacement = censorLevel(value, false);
    if (replacement !== value) {
      out ??= { ...object };
      out[key] = replacement;
    }
  }
  return out ?? object;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * `format` decides only how lines are written; what is logged and what is redacted is the same either way.
 * `destination` (tests) takes precedence over the format.
 */
export function createLogger(level: LogLevel | string, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const root = pino(
    {
      level,
      base: { service: 'scanrelay' },
      formatters: { log: censorSecrets },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? (wantsPretty(format, process.stdout.isTTY === true) ? prettyStdout(process.stdout.isTTY === true) : undefined),
  );
  // pino applies no formatter to a child's bindings: censor them here. Children are made with
  // Object.create(parent), so every descendant inherits this `child`.
  const child = root.child;
  Object.defineProperty(root, 'child', {
    value: function censoredChild(this: Logger, bindings: Record<string, unknown>, options?: Parameters<Logger['child']>[1]) {
      return child.call(this, censorSecrets(bindings), options);
    },
  });
  return root;
}

/** auto: a person at a terminal reads lines; anything else (docker logs, journald, a pipe) gets JSON. */
export function wantsPretty(format: LogFormat, stdoutIsTty: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTty);
}

/**
 * One readable line per event: `[2026-12-01 10:32:04] INFO: (smtp) smtp.auth.ok {"device":...}`. Written
 * synchronously to fd 1 in this thread (no worker), so a line logged just before process.exit is not lost.
 */
function prettyStdout(colorize: boolean): DestinationStream {
  // Loaded only when wanted: JSON deployments (containers, services) never pay for it at start-up.
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof pinoPrettyModule;
  return pinoPretty({
    destination: 1,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss',
    ignore: 'pid,hostname,service,part',
    messageFormat: '{if part}({part}) {end}{msg}',
  });
}
