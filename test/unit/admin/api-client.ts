/**
 * Test client of the admin API that speaks either through Fastify's inject or over real HTTP, and keeps
 * every answer (headers and body) so tests can assert that no secret was ever sent back.
 */
import type { TestGateway } from '../../kit/gateway.js';

export type Transport = 'inject' | 'http';

export interface ApiRequest {
  body?: unknown;
  /** Raw body text (sent as is, with contentType or application/json). */
  rawBody?: string;
  contentType?: string;
  /** null: no Authorization header; a string: that bearer token; undefined: the client's token. */
  token?: string | null;
  authorization?: string;
}

export interface ApiAnswer {
  status: number;
  headers: Record<string, string | undefined>;
  text: string;
  /** Parsed JSON; `any` because tests check answers field by field. */
  json: any;
}

export interface ApiClient {
  call(method: string, url: string, request?: ApiRequest): Promise<ApiAnswer>;
  /** Every answer so far, headers and body, for leak checks. */
  readonly transcript: string[];
}

export function apiClient(gw: TestGateway, transport: Transport, token: string): ApiClient {
  const transcript: string[] = [];
  return {
    transcript,
    async call(method, url, request = {}) {
      const headers: Record<string, string> = {};
      const bearer = request.token === undefined ? token : request.token;
      if (request.authorization !== undefined) headers.authorization = request.authorization;
      else if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
      let payload: string | undefined;
      if (request.rawBody !== undefined) payload = request.rawBody;
      else if (request.body !== undefined) payload = JSON.stringify(request.body);
      if (payload !== undefined) headers['content-type'] = request.contentType ?? 'application/json';

      let answer: Omit<ApiAnswer, 'json'>;
      if (transport === 'inject') {
        const response = await gw.gateway.admin!.inject({ method: method as 'GET', url, headers, payload });
        answer = { status: response.statusCode, headers: flatten(response.headers), text: response.body };
      } else {
        const response = await fetch(`http://127.0.0.1:${gw.addresses.admin!.port}${url}`, { method, headers, body: payload });
        answer = { status: response.status, headers: Object.fromEntries(response.headers.entries()), text: await response.text() };
      }
      transcript.push(`${method} ${url} -> ${answer.status} ${JSON.stringify(answer.headers)} ${answer.text}`);
      let json: unknown;
      try {
        json = answer.text ? JSON.parse(answer.text) : undefined;
      } catch {
        json = undefined;
      }
      return { ...answer, json };
    },
  };
}

function flatten(headers: Record<string, string | string[] | number | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(headers)) out[key] = Array.isArray(value) ? value.join(', ') : value === undefined ? undefined : String(value);
  return out;
}
