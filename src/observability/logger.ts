/**
 * The pino root logger. Secrets are removed by path (redact) wherever they might be attached; callers
 * still never pass passwords, AUTH payloads or tokens to a logger. Parts log through `child({ part })`.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/index.js';

export type { Logger } from 'pino';

export const REDACT_PATHS = [
  'password',
  'pass',
  'secret',
  'token',
  'accessToken',
  'refreshToken',
  'clientSecret',
  'authorization',
  '*.password',
  '*.pass',
  '*.secret',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.clientSecret',
  '*.authorization',
  'auth.pass',
  'auth.password',
  'req.headers.authorization',
  'headers.authorization',
];

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
