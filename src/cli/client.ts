/**
 * How the CLI reaches the admin API: URL from --url, SCANRELAY_ADMIN_URL, the config file's admin
 * listener, or http://127.0.0.1:8025; token from --token, SCANRELAY_ADMIN_TOKEN, <dataDir>/admin-token,
 * or the config file's admin.tokens. The token is sent only as a bearer header and never printed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayConfig } from '../config/index.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8025';

export interface ConnectionOptions {
  url?: string;
  token?: string;
  dataDir?: string;
  env: NodeJS.ProcessEnv;
  /** The config file, when one could be loaded (optional: the CLI works without it). */
  config?: GatewayConfig;
}

export interface Connection {
  url: string;
  token?: string;
  /** Where the token came from, for error hints (never the token itself). */
  tokenSource: string;
}

export function resolveConnection(options: ConnectionOptions): Connection {
  const { env, config } = options;
  const url = (options.url ?? env.SCANRELAY_ADMIN_URL ?? (config ? urlFromConfig(config) : DEFAULT_ADMIN_URL)).replace(/\/+$/, '');
  if (options.token) return { url, token: options.token, tokenSource: '--token' };
  if (env.SCANRELAY_ADMIN_TOKEN) return { url, token: env.SCANRELAY_ADMIN_TOKEN, tokenSource: 'SCANRELAY_ADMIN_TOKEN' };
  const dataDir = options.dataDir ?? env.SCANRELAY_DATA_DIR ?? config?.dataDir ?? './data';
  const tokenFile = join(dataDir, 'admin-token');
  try {
    const token = readFileSync(tokenFile, 'utf8').trim();
    if (token) return { url, token, tokenSource: tokenFile };
  } catch {
    // fall through: no generated token here
  }
  if (config && config.admin.tokens.length > 0) return { url, token: config.admin.tokens[0], tokenSource: `${config.file} (admin.tokens)` };
  return { url, tokenSource: `none (tried --token, SCANRELAY_ADMIN_TOKEN, ${tokenFile})` };
}

function urlFromConfig(config: GatewayConfig): string {
  const host = config.admin.host;
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `http://${reachable}:${config.admin.port}`;
}

export interface ApiErrorBody {
  error?: string;
  code?: string;
  message?: string;
}

/** An answer of the admin API other than 2xx. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
  ) {
    super(body?.message ?? `HTTP ${status}`);
  }
}

/** The admin API could not be reached at all. */
export class UnreachableError extends Error {}

export class AdminClient {
  constructor(
    private readonly connection: Connection,
    private readonly timeoutMs = 60_000,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.connection.token) headers.authorization = `Bearer ${this.connection.token}`;
    // Only send a JSON content type with a body: Fastify refuses an empty JSON body.
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.connection.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const detail = (err as { cause?: { code?: string; message?: string } }).cause;
      const cause = detail?.code ?? detail?.message ?? (err as Error).message;
      throw new UnreachableError(`cannot reach the admin API at ${this.connection.url} (${cause})`);
    }
    const text = await response.text();
    const parsed = text ? safeJson(text) : undefined;
    if (!response.ok) throw new ApiError(response.status, parsed as ApiErrorBody | undefined);
    return parsed as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}
