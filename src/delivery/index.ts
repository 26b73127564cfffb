/** Delivery worker (issue 3): placeholder surface, filled in by the delivery work. */
import type { DeliveryConfig, UpstreamConfig } from '../config/index.js';
import type { DeviceRegistry } from '../devices/index.js';
import type { Queue } from '../queue/index.js';
import type { GatewayEventBus } from '../shared/events.js';
import type { GatewayMetrics, UpstreamState } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

export interface UpstreamStatus {
  name: string;
  host: string;
  port: number;
  security: UpstreamConfig['security'];
  user: string;
  auth: UpstreamConfig['auth'];
  state: UpstreamState;
  lastSuccessAt?: number;
  lastError?: { at: number; message: string; code?: string; responseCode?: number };
  waiting: number;
}

export interface DeliveryDeps {
  queue: Queue;
  devices: DeviceRegistry;
  events: GatewayEventBus;
  metrics: GatewayMetrics;
  logger: Logger;
  config: () => DeliveryConfig;
  upstreams: readonly UpstreamConfig[];
  hostname: string;
}

export interface DeliveryWorker {
  start(): void;
  /** Stops claiming messages, waits up to timeoutMs for attempts in flight. */
  stop(timeoutMs: number): Promise<void>;
  /** A message became due (new, retried, released): look now. */
  kick(): void;
  setUpstreams(upstreams: readonly UpstreamConfig[]): void;
  upstreamStatus(): UpstreamStatus[];
  /** Connect, TLS and AUTH now; report the upstream's answer (admin "verify"). */
  verify(upstream: string): Promise<UpstreamCheckResult>;
  /** Send a small test message through the upstream to `to` (admin "test"). */
  sendTest(upstream: string, to: string): Promise<UpstreamCheckResult>;
}

export interface UpstreamCheckResult {
  ok: boolean;
  /** Port and security actually used. */
  port?: number;
  security?: 'tls' | 'starttls';
  response?: string;
  error?: { message: string; code?: string; responseCode?: number };
  durationMs: number;
}

export function createDeliveryWorker(deps: DeliveryDeps): DeliveryWorker {
  let upstreams = deps.upstreams;
  return {
    start() {},
    async stop() {},
    kick() {},
    setUpstreams(next) { upstreams = next; },
    verify: async () => ({ ok: false, durationMs: 0, error: { message: 'not implemented' } }),
    sendTest: async () => ({ ok: false, durationMs: 0, error: { message: 'not implemented' } }),
    upstreamStatus: () => upstreams.map((u) => ({ name: u.name, host: u.host, port: u.port, security: u.security, user: u.user, auth: u.auth, state: 'unknown', waiting: 0 })),
  };
}
