/**
 * How the CLI reaches the admin API, local or remote:
 *   URL:   --url, SCANRELAY_ADMIN_URL, the config file's admin listener, or http://127.0.0.1:8025
 *   token: --token, --token-file, SCANRELAY_ADMIN_TOKEN, SCANRELAY_ADMIN_TOKEN_FILE, <dataDir>/admin-token,
 *          or the config file's admin.tokens
 * A token file's first non-empty line is the token (so a tokens file of several lines works). The token is
 * sent only as a bearer header and never printed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayConfig } from '../config/index.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8025';

export interface ConnectionOptions {
  url?: string;
  token?: string;
  tokenFile?: string;
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

/** A token file named explicitly (--token-file, SCANRELAY_ADMIN_TOKEN_FILE) that cannot be used. */
export class TokenFileError extends Error {}

export function resolveConnection(options: ConnectionOptions): Connection {
  const { env, config } = options;
  const url = (options.url ?? env.SCANRELAY_ADMIN_URL ?? (config ? urlFromConfig(config) : DEFAULT_ADMIN_URL)).replace(/\/+$/, '');
  if (options.token) return { url, token: options.token, tokenSource: '--token' };
  if (options.tokenFile) return { url, token: requireTokenFile(options.tokenFile), tokenSource: options.tokenFile };
  if (env.SCANRELAY_ADMIN_TOKEN) return { url, token: env.SCANRELAY_ADMIN_TOKEN, tokenSource: 'SCANRELAY_ADMIN_TOKEN' };
  if (env.SCANRELAY_ADMIN_TOKEN_FILE) return { url, token: requireTokenFile(env.SCANRELAY_ADMIN_TOKEN_FILE), tokenSource: env.SCANRELAY_ADMIN_TOKEN_FILE };
  const dataDir = options.dataDir ?? env.SCANRELAY_DATA_DIR ?? config?.dataDir ?? './data';
  const tokenFile = join(dataDir, 'admin-token');
  const generated = readTokenFile(tokenFile);
  if (generated) return { url, token: generated, tokenSource: tokenFile };
  if (config && config.admin.tokens.length > 0) return { url, token: config.admin.tokens[0], tokenSource: `${config.file} (admin.tokens)` };
  return { url, tokenSource: `none (tried --token, SCANRELAY_ADMIN_TOKEN, SCANRELAY_ADMIN_TOKEN_FILE, ${tokenFile})` };
}

function readTokenFile(file: string): string | undefined {
  try {
    return firstLine(readFileSync(file, 'utf8'));
  } catch {
    return undefined; // the generated token is only a fallback: its absence is not an error
  }
}

function requireTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenFileError(`cannot read the token file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const token = firstLine(text);
  if (!token) throw new TokenFileError(`the token file ${file} is empty`);
  return token;
}

function firstLine(text: string): string | undefined {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .find((line) => line.length > 0);
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
      throw this.unreachable(err);
    }
    const text = await response.text();
    const parsed = text ? safeJson(text) : undefined;
    if (!response.ok) throw new ApiError(response.status, parsed as ApiErrorBody | undefined);
    return parsed as T;
  }

  /**
   * Follows a server-sent event stream (text/event-stream), calling `onOpen` once the server has
   * accepted it and `onEvent` for each event as it arrives. Resolves when the server ends the stream or
   * `signal` aborts (then quietly).
   */
  async stream(
    path: string,
    onEvent: (event: ServerSentEvent) => void,
    options: { signal?: AbortSignal; onOpen?: () => void } = {},
  ): Promise<'ended' | 'aborted'> {
    const { signal } = options;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.connection.token) headers.authorization = `Bearer ${this.connection.token}`;
    let response: Response;
    try {
      response = await fetch(`${this.connection.url}${path}`, { headers, signal });
    } catch (err) {
      if (signal?.aborted) return 'aborted';
      throw this.unreachable(err);
    }
    if (!response.ok) {
      const text = await response.text();
      throw new ApiError(response.status, (text ? safeJson(text) : undefined) as ApiErrorBody | undefined);
    }
    options.onOpen?.();
    if (!response.body) return 'ended';
    const parser = new EventStreamParser(onEvent);
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) parser.push(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch (err) {
      if (signal?.aborted) return 'aborted';
      throw this.unreachable(err);
    }
    return 'ended';
  }

  private unreachable(err: unknown): UnreachableError {
    const detail = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = detail?.code ?? detail?.message ?? (err as Error).message;
    return new UnreachableError(`cannot reach the admin API at ${this.connection.url} (${cause})`);
  }
}

export interface ServerSentEvent {
  event: string;
  data: string;
}

/** The text/event-stream format (WHATWG HTML, server-sent events): fields per line, a blank line ends an event. */
export class EventStreamParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  constructor(private readonly onEvent: (event: ServerSentEvent) => void) {}

  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      if (end < 0) return;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith('\r\n', end) ? 2 : 1));
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.onEvent({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return; // comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}
