/** A port taken by another program: start fails with the listener's config key, the port and what to do. */
import { createServer, type Server } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway } from '../../src/app.js';
import { buildTestConfig, makeTempDir, memoryLogger, type RawConfig } from '../kit/gateway.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function occupiedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

async function startError(raw: RawConfig): Promise<Error> {
  const dataDir = await makeTempDir();
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const gateway = await createGateway(buildTestConfig(dataDir, raw), { defaultMetrics: false, logger: memoryLogger([]) });
  cleanups.push(() => gateway.stop());
  const error = await gateway.start().then(
    () => undefined,
    (err: Error) => err,
  );
  if (!error) throw new Error('the gateway started on a port in use');
  return error;
}

describe('a listener port already in use', () => {
  it.each([
    ['smtp.port', (port: number) => ({ smtp: { port } })],
    ['smtp.tlsPort', (port: number) => ({ smtp: { tlsPort: port } })],
    ['pop3.port', (port: number) => ({ pop3: { enabled: true, host: '127.0.0.1', port } })],
    ['admin.port', (port: number) => ({ admin: { port } })],
  ])('%s: says which listener, which port and what to do', async (key, raw) => {
    const port = await occupiedPort();
    const error = await startError(raw(port));
    expect(error.message).toContain(`${key}: port ${port} on 127.0.0.1 is already in use (EADDRINUSE)`);
    expect(error.message).toMatch(/another program/);
    expect((error as { code?: string }).code).toBe('SCANRELAY_LISTEN_IN_USE');
  });
});
