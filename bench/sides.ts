/**
 * The two things the benchmark compares, behind one shape: something that listens for SMTP on loopback
 * and relays to the bench's TLS+AUTH upstream. The gateway runs compiled (dist/, as production) and is
 * only spoken to over SMTP, so the bench works unchanged whatever its store looks like inside.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startGatewayProcess, writeGatewayConfig } from '../test/kit/gateway-process.js';
import { gatewayEnv } from './production.js';
import { startPostfix } from './postfix.js';

export interface BenchUpstream {
  port: number;
  caFile: string;
  user: string;
  password: string;
}

export interface RunningSide {
  port: number;
  /** AUTH PLAIN credentials the load sends (the gateway's device; Postfix relays for loopback). */
  auth?: { username: string; password: string };
  /** Root of the side's process tree (for /proc measurements without a cgroup). */
  rootPid: number;
  stop(): Promise<void>;
}

export interface Side {
  name: 'gateway' | 'postfix';
  /** `wrapper` goes in front of the side's command (cgroup joiner, strace). */
  start(wrapper: string[]): Promise<RunningSide>;
}

export const BENCH_DEVICE = { name: 'bench-scanner', username: 'bench', password: 'bench-password-123' };

/** Each side keeps its files in a new directory under `workDir` (the bench removes it whatever happens). */
export function gatewaySide(upstream: BenchUpstream, node: { binary: string; args: string[] }, workDir: string): Side {
  return {
    name: 'gateway',
    async start(wrapper) {
      const dir = await mkdtemp(join(workDir, 'gateway-'));
      try {
        const configFile = await writeGatewayConfig(dir, {
          dataDir: join(dir, 'data'),
          log: { level: 'info' },
          smtp: { host: '127.0.0.1', port: 0, maxMessageSize: '30MB', maxClients: 200, maxConnectionsPerIp: 200 },
          admin: { enabled: false },
          devices: [{ ...BENCH_DEVICE, allowRecipients: ['*@example.org'], upstream: 'bench-upstream' }],
          upstreams: [
            {
              name: 'bench-upstream',
              host: '127.0.0.1',
              port: upstream.port,
              security: 'tls',
              user: upstream.user,
              password: upstream.password,
              maxConnections: 10,
              tls: { ca: upstream.caFile, servername: 'localhost' },
            },
          ],
          delivery: { concurrency: 20 },
        });
        const gateway = await startGatewayProcess(configFile, {
          compiled: true,
          node: node.binary,
          nodeArgs: node.args,
          env: gatewayEnv(),
          wrapper,
          keepLogs: false,
        });
        return {
          port: gateway.smtpPort,
          auth: { username: BENCH_DEVICE.username, password: BENCH_DEVICE.password },
          rootPid: gateway.pid,
          async stop() {
            await gateway.stop();
            await rm(dir, { recursive: true, force: true });
          },
        };
      } catch (err) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    },
  };
}

export function postfixSide(upstream: BenchUpstream, workDir: string): Side {
  return {
    name: 'postfix',
    async start(wrapper) {
      const instance = await startPostfix(upstream, await freePort(), workDir, wrapper);
      return { port: instance.port, rootPid: instance.masterPid, stop: () => instance.stop() };
    },
  };
}

/** A port free on 127.0.0.1 right now (Postfix takes its port from master.cf, not from the kernel). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
