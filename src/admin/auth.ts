/**
 * Bearer-token check for /api/* (and /metrics when admin.metricsToken is set). Tokens are compared in
 * constant time against every configured token (no early exit), and never logged or echoed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './errors.js';

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
