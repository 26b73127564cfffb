/** Admin API (issue 4): placeholder surface, filled in by the admin work. */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AdminDeps } from './deps.js';

export type { AdminDeps } from './deps.js';

export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  return app;
}
