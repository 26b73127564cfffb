/**
 * /api/session: the web console's login (token in a JSON body, never in a URL -> session cookie), who am I,
 * and logout. The cookie holds a random session id, not the token; it is httpOnly (scripts cannot read
 * it), SameSite=Strict (other sites' requests go without it), Path=/, and Secure when the admin listener is
 * reached over HTTPS (a LAN console on plain HTTP could not keep a Secure cookie).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, crossSiteProblem, tokenMatches } from '../auth.js';
import type { ConsoleSessions } from '../session.js';
import { SESSION_COOKIE } from '../session.js';
import { errorBody } from '../errors.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, ErrorResponse, NoContent, errorResponses } from '../schemas/common.js';

const SessionView = Type.Object({
  authenticated: Type.Literal(true),
  via: Type.Union([Type.Literal('session'), Type.Literal('bearer')]),
  idleTimeoutSeconds: Type.Integer({ description: 'a console session ends after this long without a request' }),
});

const LoginBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 1024, description: 'an admin token' }) }, { additionalProperties: false });

export interface SessionRouteDeps {
  tokens: () => readonly string[];
  sessions: ConsoleSessions;
  idleTimeoutMs: () => number;
}

/** The login route: outside the authenticated scope (it is how one gets in). */
export function registerLoginRoute(app: AdminApp, deps: SessionRouteDeps): void {
  app.post(
    '/api/session',
    {
      schema: {
        summary: 'Web console login: an admin token in the body -> a session cookie (httpOnly, SameSite=Strict); needs the x-scanrelay-console: 1 header',
        tags: ['system'],
        body: LoginBody,
        response: { 200: SessionView, ...errorResponses(400, 401), 403: ErrorResponse },
      },
    },
    async (request, reply) => {
      // A login forged by another site would plant the attacker's session: same checks as any change.
      const problem = crossSiteProblem(request);
      if (problem) return reply.code(403).send(errorBody(403, 'SCANRELAY_ADMIN_CSRF', problem));
      if (!tokenMatches(request.body.token, deps.tokens())) {
        request.log.info({ reason: 'invalid' }, 'admin.login.refused');
        return reply.code(401).send(errorBody(401, 'SCANRELAY_ADMIN_UNAUTHORIZED', 'that is not an admin token (see data/admin-token or admin.tokens)'));
      }
      const id = deps.sessions.open(request.body.token);
      setSessionCookie(request, reply, id);
      request.log.info('admin.login');
      return { authenticated: true as const, via: 'session' as const, idleTimeoutSeconds: Math.round(deps.idleTimeoutMs() / 1000) };
    },
  );
}

/** Who am I and logout: inside the authenticated scope. */
export function registerSessionRoutes(app: AdminApp, deps: SessionRouteDeps): void {
  app.get(
    '/api/session',
    {
      schema: {
        summary: 'The current console session (401 when there is none)',
        tags: ['system'],
        security: BEARER_SECURITY,
        response: { 200: SessionView, ...errorResponses(401) },
      },
    },
    async (request) => ({
      authenticated: true as const,
      via: bearerToken(request.headers.authorization) ? ('bearer' as const) : ('session' as const),
      idleTimeoutSeconds: Math.round(deps.idleTimeoutMs() / 1000),
    }),
  );

  app.delete(
    '/api/session',
    {
      schema: {
        summary: 'Log out: the session ends now and its cookie is removed',
        tags: ['system'],
        security: BEARER_SECURITY,
        response: { 204: NoContent, ...errorResponses(401) },
      },
    },
    async (request, reply) => {
      const id = request.cookies[SESSION_COOKIE];
      if (id) deps.sessions.close(id);
      request.log.info('admin.logout');
      return reply.code(204).clearCookie(SESSION_COOKIE, cookieOptions(request)).send(null);
    },
  );
}

function cookieOptions(request: FastifyRequest) {
  return { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: request.protocol === 'https' };
}

function setSessionCookie(request: FastifyRequest, reply: FastifyReply, id: string): void {
  // No Max-Age: a browser session cookie; the server's idle timeout is what really ends it.
  reply.setCookie(SESSION_COOKIE, id, cookieOptions(request));
}
