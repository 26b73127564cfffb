/**
 * Who may use /api/*: a bearer token (constant-time compare), or a web console session (session.ts) with
 * the CSRF checks below. Bearer-token check for /api/* (and /metrics when admin.metricsToken is set). Tokens are compared in
 * constant time against every configured token (no early exit), and never logged or echoed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './errors.js';
import { CONSOLE_HEADER, SESSION_COOKIE, type ConsoleSessions } from './session.js';

const REALM = 'Bearer realm="scanrelay"';

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** True when `presented` equals one of `tokens`; the time taken does not depend on where they differ. */
export function tokenMatches(presented: string, tokens: readonly string[]): boolean {
  const digest = createHash('sha256').update(presented).digest();
  let matched = false;
  for (const token of tokens) {
    // Equal-length digests make timingSafeEqual usable whatever the token lengths are.
    const equal = timingSafeEqual(digest, createHash('sha256').update(token).digest());
    matched = equal || matched;
  }
  return matched;
}

/** onRequest hook: 401 with a JSON body and WWW-Authenticate unless a valid token is presented. */
export function requireToken(tokens: () => readonly string[]) {
  return async function checkToken(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const presented = bearerToken(request.headers.authorization);
    if (presented !== undefined && tokenMatches(presented, tokens())) return undefined;
    const challenge = presented === undefined ? REALM : `${REALM}, error="invalid_token"`;
    const message = presented === undefined ? 'a bearer token is required (Authorization: Bearer <token>)' : 'the bearer token is not valid';
    request.log.info({ reason: presented === undefined ? 'missing' : 'invalid' }, 'admin.auth.refused');
    return reply
      .code(401)
      .header('www-authenticate', challenge)
      .send(errorBody(401, 'SCANRELAY_ADMIN_UNAUTHORIZED', message));
  };
}

export interface AdminAuth {
  tokens: () => readonly string[];
  sessions: ConsoleSessions;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The console session a request came in with (not set for bearer-token requests). */
const consoleSessionOf = new WeakMap<FastifyRequest, string>();

export function requestSession(request: FastifyRequest): string | undefined {
  return consoleSessionOf.get(request);
}

/**
 * onRequest hook for /api/*: a bearer token (CLI, scripts) or a console session cookie. A request that
 * rides on the cookie and changes something must also carry the console's own header and, when the
 * browser names an Origin, come from this very host: SameSite=Strict already keeps other sites' requests
 * cookie-less, and these two checks hold even for a browser that ignores SameSite.
 */
export function requireAdmin(auth: AdminAuth) {
  const checkToken = requireToken(auth.tokens);
  return async function checkAdmin(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const sessionId = request.cookies?.[SESSION_COOKIE];
    if (request.headers.authorization !== undefined || !sessionId) return checkToken(request, reply);
    if (!auth.sessions.touch(sessionId, auth.tokens())) {
      request.log.info({ reason: 'session' }, 'admin.auth.refused');
      return reply
        .code(401)
        .clearCookie(SESSION_COOKIE, { path: '/' })
        .send(errorBody(401, 'SCANRELAY_ADMIN_SESSION_EXPIRED', 'the console session has ended (logged out or idle too long): log in again'));
    }
    consoleSessionOf.set(request, sessionId);
    if (SAFE_METHODS.has(request.method)) return undefined;
    const problem = crossSiteProblem(request);
    if (problem === undefined) return undefined;
    request.log.warn({ reason: 'csrf', method: request.method, url: request.url.split('?')[0] }, 'admin.auth.refused');
    return reply.code(403).send(errorBody(403, 'SCANRELAY_ADMIN_CSRF', problem));
  };
}

/** Why a cookie-authenticated change request may come from another site, or undefined when it cannot. */
export function crossSiteProblem(request: FastifyRequest): string | undefined {
  if (request.headers[CONSOLE_HEADER] !== '1') return `changes made with a console session need the ${CONSOLE_HEADER}: 1 header (or use a bearer token)`;
  const origin = request.headers.origin;
  if (origin !== undefined && !sameHost(origin, request.headers.host)) return `the request comes from ${origin}, not from this console`;
  return undefined;
}

function sameHost(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}
