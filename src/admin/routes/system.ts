/**
 * Routes outside the device/queue resources: /healthz and /readyz (no token), /metrics (no token unless
 * admin.metricsToken), /openapi.json, and the token-protected /api/lockouts and /api/reload.
 */
import ipaddr from 'ipaddr.js';
import { Type } from '@sinclair/typebox';
import { NotFoundError, ValidationError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { requireToken } from '../auth.js';
import { BEARER_SECURITY, NoContent, errorResponses, iso } from '../schemas/common.js';
import { Health, LockoutList, LockoutParams, PrometheusText, Readiness, ReloadResult } from '../schemas/system.js';

/** Routes that need no token (metrics: unless configured). Registered on the root instance. */
export function registerPublicRoutes(app: AdminApp, deps: AdminDeps): void {
  const started = Date.now();
  const checkToken = requireToken(deps.tokens);

  // Probes and scrapes come every few seconds: their request lines would drown the log.
  app.get(
    '/healthz',
    {
      logLevel: 'warn',
      schema: { summary: 'The process is alive', tags: ['health'], response: { 200: Health } },
    },
    async () => ({ status: 'ok' as const, uptimeSeconds: Math.round((Date.now() - started) / 1000) }),
  );

  app.get(
    '/readyz',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Ready to take mail: SMTP listening, data directory writable, store open (503 otherwise)',
        tags: ['health'],
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const { importing, ...checks } = await deps.readiness();
      const ready = checks.smtp && checks.dataDir && checks.store;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks, ...(importing ? { importing } : {}) });
    },
  );

  app.get(
    '/metrics',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Prometheus metrics (bearer token only when admin.metricsToken is true)',
        tags: ['metrics'],
        response: { 200: { description: 'Prometheus text', content: { 'text/plain': { schema: PrometheusText } } }, ...errorResponses(401) },
      },
      // Read per request so a reload that turns the token on applies at once.
      onRequest: async (request, reply) => (deps.config().admin.metricsToken ? checkToken(request, reply) : undefined),
    },
    async (_request, reply) => {
      const text = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(text);
    },
  );

  app.get(
    '/openapi.json',
    {
      schema: { summary: 'This API as an OpenAPI 3 document', tags: ['health'], response: { 200: Type.Object({}, { additionalProperties: true }) } },
    },
    async () => app.swagger(),
  );
}

export function registerSystemRoutes(app: AdminApp, deps: AdminDeps): void {
  app.get(
    '/api/lockouts',
    {
      schema: {
        summary: 'Source addresses locked out after repeated failed logins',
        tags: ['lockouts'],
        security: BEARER_SECURITY,
        response: { 200: LockoutList, ...errorResponses(401) },
      },
    },
    async () => {
      const items = deps.lockout.locked().map((l) => ({ address: l.address, until: iso(l.until) }));
      return { items, total: items.length };
    },
  );

  app.delete(
    '/api/lockouts/:address',
    {
      schema: {
        summary: 'Unlock a source address now',
        tags: ['lockouts'],
        security: BEARER_SECURITY,
        params: LockoutParams,
        response: { 204: NoContent, ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const address = request.params.address;
      if (!ipaddr.isValid(address)) throw new ValidationError(`address: "${address}" is not an IP address`);
      if (!deps.lockout.unlock(address)) throw new NotFoundError('lock-out for address', address);
      request.log.info({ address }, 'admin.lockout.removed');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/api/reload',
    {
      schema: {
        summary: 'Reload the config file (same as SIGHUP); a bad file is refused and the running config kept',
        tags: ['system'],
        security: BEARER_SECURITY,
        response: { 200: ReloadResult, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      await deps.reload();
      const config = deps.config();
      request.log.info('admin.reload');
      return { status: 'reloaded' as const, devices: deps.devices.list().length, upstreams: config.upstreams.length };
    },
  );
}
