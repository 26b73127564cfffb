/**
 * The web console and the API docs, served by the admin listener:
 *   /            the console: static HTML, CSS and ES modules from src/console/public (no build step, no CDN,
 *                no external fonts); it uses only the public /api routes and the /api/watch event stream
 *   /docs        Swagger UI (from the @fastify/swagger-ui package) over /openapi.json
 * The public folder is found from the package root, so `npm start` (tsx on src/), the compiled dist/ and
 * the image (which copies src/console/public next to dist/) all serve the same files.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

/** Only our own files: no inline script, no other origin; framing refused (clickjacking). */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The console's folder: <package root>/src/console/public. */
export function consolePublicDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'src', 'console', 'public');
    dir = dirname(dir);
  }
  throw new Error('scanrelay console: package.json not found above the console module');
}

export async function registerConsole(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: false, persistAuthorization: false },
    // The document comes from this listener; never validate it against swagger.io.
    theme: { title: 'scanrelay admin API' },
  });

  const root = consolePublicDir();
  if (!existsSync(join(root, 'index.html'))) {
    // An image built without the console's files: say so instead of a bare 404 (the API works regardless).
    app.log.warn({ root }, 'console.files-missing: the web console is not installed (copy src/console/public into the image)');
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply.code(503).type('text/plain; charset=utf-8').send(`The web console's files are missing from ${root}; the API under /api and /docs work.\n`),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: ['index.html'],
    wildcard: false,
    // Small files, changed only by an upgrade: revalidate each time rather than cache stale code.
    cacheControl: true,
    maxAge: 0,
    setHeaders(res) {
      res.header('content-security-policy', CONSOLE_CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('referrer-policy', 'no-referrer');
    },
  });
}
