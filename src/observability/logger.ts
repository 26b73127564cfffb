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

/** Every config key marked `secret: true` in the schema, plus the runtime ones; at the top and one level down. */
export const REDACT_PATHS = [...new Set([...secretKeyNames(), ...RUNTIME_SECRETS])]
  .flatMap((name) => [name, `*.${name}`])
  .concat(['auth.pass', 'auth.password', 'req.headers.authorization', 'headers.authorization']);

/**
 * `format` decides only how lines are written; what is logged and what is redacted is the same either way.
 * `destination` (tests) takes precedence over the format.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  return pino(
    {
      level,
      base: { service: 'scanrelay' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? (wantsPretty(format, process.stdout.isTTY === true) ? prettyStdout(process.stdout.isTTY === true) : undefined),
  );
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
