/**
 * The pino root logger. Secrets are removed by path (redact) wherever they might be attached; callers
 * still never pass passwords, AUTH payloads or tokens to a logger. Parts log through `child({ part })`.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/index.js';
import { secretKeyNames } from '../config/schema.js';

export type { Logger } from 'pino';

/** Secrets that are not config keys: AUTH payloads, OAuth2 access tokens, HTTP authorization. */
const RUNTIME_SECRETS = ['pass', 'secret', 'token', 'accessToken', 'authorization'];

/** Every config key marked `secret: true` in the schema, plus the runtime ones; at the top and one level down. */
export const REDACT_PATHS = [...new Set([...secretKeyNames(), ...RUNTIME_SECRETS])]
  .flatMap((name) => [name, `*.${name}`])
  .concat(['auth.pass', 'auth.password', 'req.headers.authorization', 'headers.authorization']);

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'scanrelay' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
