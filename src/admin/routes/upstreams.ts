/** /api/upstreams: status of each upstream account, and verify / test-send through one. */
import type { UpstreamStatus } from '../../delivery/index.js';
import { NotFoundError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, errorResponses, iso } from '../schemas/common.js';
import { UpstreamCheck, UpstreamList, UpstreamParams, UpstreamRetried, UpstreamTestBody, UpstreamView, type UpstreamViewT } from '../schemas/upstreams.js';

const TAGS = ['upstreams'];

export function registerUpstreamRoutes(app: AdminApp, deps: AdminDeps): void {
  const find = (name: string): UpstreamStatus => {
    const status = deps.delivery.upstreamStatus().find((u) => u.name === name);
    if (!status) throw new NotFoundError('upstream', name);
    return status;
  };

  app.get(
    '/api/upstreams',
    {
      schema: {
        summary: 'Upstreams with their state (up / auth-failed / unreachable ...), last success, last error, messages waiting',
        tags: TAGS,
        security: BEARER_SECURITY,
        response: { 200: UpstreamList, ...errorResponses(401) },
      },
    },
    async () => {
      const items = deps.delivery.upstreamStatus().map(upstreamView);
      return { items, total: items.length };
    },
  );

  app.get(
    '/api/upstreams/:name',
    {
      schema: {
        summary: 'One upstream with its state',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: UpstreamParams,
        response: { 200: UpstreamView, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => upstreamView(find(request.params.name)),
  );

  app.post(
    '/api/upstreams/:name/verify',
    {
      schema: {
        summary: "Connect, TLS and AUTH now; report the upstream's answer (ok false when it refused)",
        tags: TAGS,
        security: BEARER_SECURITY,
        params: UpstreamParams,
        response: { 200: UpstreamCheck, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const name = find(request.params.name).name;
      const result = await deps.delivery.verify(name);
      request.log.info({ upstream: name, ok: result.ok }, 'admin.upstream.verify');
      return result;
    },
  );

  app.post(
    '/api/upstreams/:name/test',
    {
      schema: {
        summary: 'Send a small test message through the upstream to the given address',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: UpstreamParams,
        body: UpstreamTestBody,
        response: { 200: UpstreamCheck, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const name = find(request.params.name).name;
      const result = await deps.delivery.sendTest(name, request.body.to);
      request.log.info({ upstream: name, ok: result.ok }, 'admin.upstream.test');
      return result;
    },
  );

  app.post(
    '/api/upstreams/:name/retry',
    {
      schema: {
        summary: 'Forget the failure state and pause, release messages held for this upstream, try again now',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: UpstreamParams,
        response: { 200: UpstreamRetried, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const name = find(request.params.name).name;
      const released = await deps.delivery.retryUpstream(name);
      request.log.info({ upstream: name, released }, 'admin.upstream.retry');
      return { released };
    },
  );
}

export function upstreamView(status: UpstreamStatus): UpstreamViewT {
  return {
    name: status.name,
    host: status.host,
    port: status.port,
    security: status.security,
    user: status.user,
    auth: status.auth,
    state: status.state,
    lastSuccessAt: iso(status.lastSuccessAt),
    lastError: status.lastError && { ...status.lastError, at: iso(status.lastError.at) },
    waiting: status.waiting,
    activePort: status.activePort,
    activeSecurity: status.activeSecurity,
    pausedUntil: iso(status.pausedUntil),
    inFlight: status.inFlight,
    held: status.held,
    securityChosen: status.securityChosen,
    quotaPausedUntil: iso(status.quotaPausedUntil),
    sentToday: status.sentToday,
    dailyLimit: status.dailyLimit,
  };
}
