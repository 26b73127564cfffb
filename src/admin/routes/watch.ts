/**
 * GET /api/watch?device=NAME: the printer doctor as server-sent events (contract C): `step` and `delivery`
 * events as they happen, a `ping` every 15 s. Each watcher has a bounded queue: a client that reads too
 * slowly loses the oldest events (and is told how many), never the gateway's memory.
 */
import { Type } from '@sinclair/typebox';
import type { DoctorEvent } from '../../doctor/index.js';
import { NotFoundError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, errorResponses } from '../schemas/common.js';
import { DeviceName } from '../schemas/devices.js';
import { requestSession } from '../auth.js';
import type { ConsoleSessions } from '../session.js';

export const PING_INTERVAL_MS = 15_000;
/** Events waiting for a slow client, per watcher. */
export const MAX_QUEUED_EVENTS = 200;

/**
 * A stream opened with a console session ends with that session (logout, token gone); while open it counts
 * as activity for the idle timeout (someone is watching the screen), checked at every ping.
 */
export function registerWatchRoutes(app: AdminApp, deps: AdminDeps, sessions: ConsoleSessions): void {
  // Streams never end by themselves: closing the admin listener ends them (or close would wait forever).
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });

  app.get(
    '/api/watch',
    {
      schema: {
        summary: "Printer doctor: a device's next sessions step by step, live (text/event-stream: step, delivery, ping)",
        tags: ['devices'],
        security: BEARER_SECURITY,
        querystring: Type.Object({ device: DeviceName }, { additionalProperties: false }),
        response: {
          200: { description: 'server-sent events', content: { 'text/event-stream': { schema: Type.String() } } },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const name = request.query.device;
      if (!deps.doctor.knows(name)) throw new NotFoundError('device', name);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        // Proxies (nginx) would otherwise buffer the stream.
        'x-accel-buffering': 'no',
      });
      raw.write(`: watching ${name}\n\n`);

      const waiting: string[] = [];
      let dropped = 0;
      let writable = true;
      const flush = () => {
        writable = true;
        if (dropped > 0) {
          writable = raw.write(`: ${dropped} events dropped (the client read too slowly)\n\n`);
          dropped = 0;
        }
        while (writable && waiting.length > 0) writable = raw.write(waiting.shift() as string);
      };
      const push = (frame: string) => {
        if (writable && waiting.length === 0) {
          writable = raw.write(frame);
          return;
        }
        waiting.push(frame);
        if (waiting.length > MAX_QUEUED_EVENTS) {
          waiting.shift();
          dropped++;
        }
      };
      raw.on('drain', flush);

      const stop = deps.doctor.watch(name, (event: DoctorEvent) => push(`event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`));
      const sessionId = requestSession(request);
      const ping = setInterval(() => {
        if (sessionId && !sessions.touch(sessionId, deps.tokens())) return end();
        push(`event: ping\ndata: ${JSON.stringify({ at: new Date().toISOString() })}\n\n`);
      }, PING_INTERVAL_MS);
      ping.unref();
      request.log.info({ device: name }, 'admin.watch.started');
      const end = (): void => {
        if (!open.delete(end)) return;
        cancelOnSessionEnd();
        clearInterval(ping);
        stop();
        waiting.length = 0;
        raw.end();
        request.log.info({ device: name }, 'admin.watch.ended');
      };
      open.add(end);
      const cancelOnSessionEnd = sessionId ? sessions.onEnd(sessionId, end) : () => {};
      raw.once('close', end);
    },
  );
}
