/**
 * Admin API: a Fastify app (not listening; app.ts listens, tests inject) with TypeBox-typed routes and a
 * JSON schema on every route, which also makes the OpenAPI document at /openapi.json.
 *
 *   /healthz, /readyz, /metrics, /openapi.json   no token (/metrics: unless admin.metricsToken)
 *   /, /docs                                     the web console and Swagger UI (static; they log in below)
 *   POST /api/session                            console login: token in the body -> session cookie
 *   /api/devices, /api/upstreams, /api/messages, /api/queue/stats, /api/lockouts, /api/reload, /api/watch
 *                                                bearer token or console session (auth.ts), errors as
 *                                                { error, code, message }
 *
 * The admin part only reads and calls public surfaces (registry, queue, delivery worker, metrics); nothing
 * calls into it. Request logs carry method, path, query and status only: never headers, so never the
 * token, and the query with every value of a secret-bearing key (`?token=`, `?password=`) redacted.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import cookie from '@fastify/cookie';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AdminDeps } from './deps.js';
import { requireAdmin } from './auth.js';
import { ConsoleSessions } from './session.js';
import { registerConsole } from '../console/index.js';
import { registerLoginRoute, registerSessionRoutes } from './routes/session.js';
import { registerWatchRoutes } from './routes/watch.js';
import { errorBody, installErrorHandlers } from './errors.js';
import { registerDeviceRoutes } from './routes/devices.js';
import { registerMessageRoutes } from './routes/messages.js';
import { registerUpstreamRoutes } from './routes/upstreams.js';
import { registerPublicRoutes, registerSystemRoutes } from './routes/system.js';

export type { AdminDeps } from './deps.js';

const MAX_BODY_BYTES = 64 * 1024;

export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const logger = deps.logger.child({}, { serializers: { req: requestForLog } });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: MAX_BODY_BYTES,
    // Unknown properties are refused (400), not silently dropped, so a typo never "succeeds".
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandlers(app, deps.onStoreDamaged);
  await app.register(cookie);
  // A token in a URL ends up in browser history, proxy logs and Referer headers: refuse it outright.
  app.addHook('onRequest', async (request, reply) => {
    const query = request.query as Record<string, unknown> | undefined;
    if (query && ('token' in query || 'access_token' in query)) {
      request.log.info({ reason: 'token-in-url' }, 'admin.auth.refused');
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="scanrelay", error="invalid_request"')
        .send(
          errorBody(401, 'SCANRELAY_TOKEN_IN_URL', 'never put the admin token in a URL: send it as Authorization: Bearer <token>, or log in on the console'),
        );
    }
  });
  const sessions = new ConsoleSessions(() => deps.config().admin.sessionIdleTimeoutMs);
  const sessionDeps = { tokens: deps.tokens, sessions, idleTimeoutMs: () => deps.config().admin.sessionIdleTimeoutMs };
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'scanrelay admin API', version: '1', description: 'Devices, upstreams, queue and message log of the scanrelay gateway.' },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'admin.tokens, or dataDir/admin-token' },
          consoleSession: {
            type: 'apiKey',
            in: 'cookie',
            name: 'scanrelay_session',
            description: 'web console session from POST /api/session; changes also need the x-scanrelay-console: 1 header',
          },
        },
      },
      tags: [
        { name: 'devices' },
        { name: 'upstreams' },
        { name: 'messages' },
        { name: 'lockouts' },
        { name: 'system' },
        { name: 'health' },
        { name: 'metrics' },
      ],
    },
    transformObject: (documentObject) => ('openapiObject' in documentObject ? markOptionalBodies(documentObject.openapiObject) : documentObject.swaggerObject),
  });

  registerPublicRoutes(app, deps);
  registerLoginRoute(app, sessionDeps);
  await registerConsole(app);
  await app.register(async (api) => {
    api.addHook('onRequest', requireAdmin({ tokens: deps.tokens, sessions }));
    registerSessionRoutes(api, sessionDeps);
    registerWatchRoutes(api, deps, sessions);
    registerDeviceRoutes(api, deps);
    registerUpstreamRoutes(api, deps);
    registerMessageRoutes(api, deps);
    registerSystemRoutes(api, deps);
  });
  // Not made ready here: compiling every route's schemas costs more than the rest of the start-up, and
  // SMTP must open first (listen and inject make it ready when first used).
  return app;
}

/** @fastify/swagger marks every request body required; a body schema that accepts null is optional. */
function markOptionalBodies<T>(document: T): T {
  const paths =
    (
      document as {
        paths?: Record<string, Record<string, { requestBody?: { required?: boolean; content?: Record<string, { schema?: { nullable?: boolean } }> } }>>;
      }
    ).paths ?? {};
  for (const operations of Object.values(paths)) {
    for (const operation of Object.values(operations)) {
      const body = operation.requestBody;
      if (body && Object.values(body.content ?? {}).some((media) => media.schema?.nullable)) body.required = false;
    }
  }
  return document;
}

/**
 * What a request log line says about the request: no headers at all (Authorization and the session
 * cookie live there), and no token someone put in the URL (the request is refused, the log stays clean).
 */
function requestForLog(request: FastifyRequest) {
  return { method: request.method, url: urlForLog(request.url), remoteAddress: request.ip };
}

/** Query keys whose values are secrets, whatever route they are sent to (a token pasted into a URL). */
const SECRET_QUERY_KEY = /token|pass|secret|key|auth|sig|session|cookie|credential|bearer|jwt|code/i;
/** A query key that reads as a parameter name (letters, "_"); anything else (a token pasted as the key) is not shown at all. */
const PLAIN_QUERY_KEY = /^[A-Za-z][A-Za-z_]{0,31}$/;
const REDACTED = '[redacted]';

/**
 * The URL as the log shows it: the path, and the query with the value of every secret-bearing key
 * replaced, and any key that is not a plain parameter name replaced whole. Bearer tokens belong in the
 * Authorization header; one sent as `?token=` is refused (401) and must not reach the log either.
 */
export function urlForLog(url: string): string {
  const mark = url.indexOf('?');
  if (mark < 0) return url;
  const shown: string[] = [];
  for (const pair of url.slice(mark + 1).split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const key = safeDecode(equals < 0 ? pair : pair.slice(0, equals));
    const value = equals < 0 ? undefined : safeDecode(pair.slice(equals + 1));
    // "?<token>" (no "=") or a key that is not a parameter name: nothing of it is shown
    if (value === undefined || !PLAIN_QUERY_KEY.test(key)) shown.push(REDACTED);
    else if (SECRET_QUERY_KEY.test(key)) shown.push(`${key}=${REDACTED}`);
    else shown.push(`${key}=${encodeURIComponent(value)}`);
  }
  return `${url.slice(0, mark)}?${shown.join('&')}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}
