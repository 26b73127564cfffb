/**
 * Keeps Node's bundled undici (fetch, WebSocket, its llhttp WebAssembly) unloaded by an ESM import of
 * `node:http`, which the gateway makes through smtp-server's and nodemailer's ESM builds.
 *
 * Why (nodejs/node#59686, open): the first ESM import of a built-in builds its module namespace by reading
 * every export, and `node:http` has three that are getters loading undici on Node 22.4+ (WebSocket,
 * CloseEvent, MessageEvent). The gateway uses none of them: on Node 24 that load was 3.5 MiB of the main
 * thread's RSS and 1.6 MiB more in the SMTP thread (nodemailer + smtp-server imported, a scratch script).
 *
 * How: the namespace is built once per thread, here, with those three hidden behind plain `undefined`
 * values; then the getters are put back, so `require('node:http').WebSocket` still loads undici on use.
 * Only `import { WebSocket } from 'node:http'` sees undefined (the global `WebSocket` is untouched).
 * Must run in each thread before anything imports `node:http` as ESM.
 */
import { createRequire } from 'node:module';

const UNDICI_GETTERS = ['WebSocket', 'CloseEvent', 'MessageEvent'] as const;

/** Builds `node:http`'s ESM namespace without running its undici getters; says which were hidden. */
export async function importHttpWithoutUndici(): Promise<string> {
  const http = createRequire(import.meta.url)('node:http') as Record<string, unknown>;
  const hidden: Array<[string, PropertyDescriptor]> = [];
  for (const name of UNDICI_GETTERS) {
    const descriptor = Object.getOwnPropertyDescriptor(http, name);
    if (!descriptor?.get || !descriptor.configurable) continue;
    Object.defineProperty(http, name, { value: undefined, writable: true, enumerable: true, configurable: true });
    hidden.push([name, descriptor]);
  }
  try {
    await import('node:http');
  } finally {
    for (const [name, descriptor] of hidden) Object.defineProperty(http, name, descriptor);
  }
  return hidden.length > 0 ? `node:http imported without its undici getters (${hidden.map(([name]) => name).join(', ')})` : 'no undici getters in node:http';
}
