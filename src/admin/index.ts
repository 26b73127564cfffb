/**
 * Admin API: a Fastify app (not listening; app.ts listens, tests inject) with TypeBox-typed routes and a
 * JSON schema on every route, which also makes the OpenAPI document at /openapi.json.
 *
 *   /healthz, /readyz, /metrics, /openapi.json   no token (/metrics: unless admin.metricsToken)
 *   /api/devices, /api/upstreams, /api/messages, /api/queue/stats, /api/lockouts, /api/reload
 *                                                bearer token (auth.ts), errors as { error, code, message }
 *
 * The admin part only reads and calls public surfaces (registry, queue, delivery worker, metrics); nothing
 * calls into it. Request logs carry method, URL and status only: never headers, so never the token.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AdminDeps } from './deps.js';
import { requireToken } from './auth.js';
import { installErrorHandlers } from './errors.js';
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

  installErrorHandlers(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'scanrelay admin API', version: '1', description: 'Devices, upstreams, queue and message log of the scanrelay gateway.' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'admin.tokens, or dataDir/admin-token' } } },
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
  await app.register(async (api) => {
    api.addHook('onRequest', requireToken(deps.tokens));
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

/** What a request log line says about the request: no headers at all (Authorization lives there). */
function requestForLog(request: FastifyRequest) {
  return { method: request.method, url: request.url, remoteAddress: request.ip };
}
