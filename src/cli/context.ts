/** What every CLI command shares: the options, exit codes, the API client and how results are printed. */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig, type GatewayConfig } from '../config/index.js';
import { AdminClient, resolveConnection } from './client.js';
import { parseTimeFilter, TimeFilterError } from './time.js';

/** sysexits.h values where one fits, so scripts can tell "not there" from "not allowed" from "not running". */
export const EXIT = { ok: 0, refused: 1, usage: 64, notFound: 66, unavailable: 69, unauthorized: 77, config: 78 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Ends a long-running command (watch) quietly; the process entry aborts it on SIGINT/SIGTERM. */
  signal?: AbortSignal;
}

export const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // device add
  recipient: { type: 'string', short: 'r', multiple: true },
  'allow-from': { type: 'string', multiple: true },
  username: { type: 'string' },
  password: { type: 'string' },
  'max-size': { type: 'string' },
  auth: { type: 'string' },
  disabled: { type: 'boolean' },
  'no-upstream': { type: 'boolean' },
  // message filters (queue, log)
  state: { type: 'string', multiple: true },
  device: { type: 'string' },
  upstream: { type: 'string' },
  subject: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  offset: { type: 'string' },
  cursor: { type: 'string' },
  all: { type: 'boolean' },
  'all-held': { type: 'boolean' },
  note: { type: 'string' },
  // upstream test
  to: { type: 'string' },
  // watch
  sessions: { type: 'string' },
} as const;

export type Values = ReturnType<typeof parseCommandLine>['values'];

export function parseCommandLine(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

/** Wrong use of the command line: exit 64 with the usage text. */
export class UsageError extends Error {}

export class CommandContext {
  readonly json: boolean;
  private client?: AdminClient;

  constructor(
    readonly values: Values,
    readonly io: CliIo,
  ) {
    this.json = values.json === true;
  }

  get api(): AdminClient {
    this.client ??= new AdminClient(
      resolveConnection({
        url: this.values.url,
        token: this.values.token,
        tokenFile: this.values['token-file'],
        dataDir: this.values['data-dir'],
        env: this.io.env,
        config: optionalConfig(this.values, this.io.env),
      }),
    );
    return this.client;
  }

  /** JSON (indented) with --json, else the human text. */
  print(data: unknown, human: () => string): void {
    this.io.stdout(`${this.json ? JSON.stringify(data, null, 2) : human()}\n`);
  }
}

/** The config file helps find the API and token, but the CLI must work without (or with a broken) one. */
function optionalConfig(values: Values, env: NodeJS.ProcessEnv): GatewayConfig | undefined {
  const file = values.config ?? defaultConfigPath(env);
  if (!existsSync(file)) return undefined;
  try {
    return loadConfig(file, env);
  } catch {
    return undefined;
  }
}

export function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

/** A --since / --until value as an ISO time, or a usage error saying which forms work. */
export function timeOption(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  try {
    return parseTimeFilter(value);
  } catch (err) {
    if (err instanceof TimeFilterError) throw new UsageError(`--${option}: ${err.message}`);
    throw err;
  }
}

export function withoutUndefined<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function segment(value: string): string {
  return encodeURIComponent(value);
}
