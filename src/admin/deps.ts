import type { GatewayConfig } from '../config/index.js';
import type { DeviceRegistry, DeviceStatusTracker } from '../devices/index.js';
import type { Queue } from '../queue/index.js';
import type { DeliveryWorker } from '../delivery/index.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { LockoutState } from '../inbound/index.js';
import type { PopGrants } from '../pop3/index.js';
import type { PrinterDoctor } from '../doctor/index.js';

/** What the admin API may use: public surfaces only. */
export interface AdminDeps {
  config: () => GatewayConfig;
  devices: DeviceRegistry;
  deviceStatus: DeviceStatusTracker;
  queue: Queue;
  delivery: DeliveryWorker;
  metrics: GatewayMetrics;
  logger: Logger;
  lockout: LockoutState;
  popGrants: PopGrants;
  /** Live per-device session steps for GET /api/watch. */
  doctor: PrinterDoctor;
  /** Accepted bearer tokens (from config, or the generated one). */
  tokens: () => readonly string[];
  /** Reload the config file (same as SIGHUP). */
  reload: () => Promise<void>;
  /** SQLite said the store database has a damaged page while answering a request (store/health.ts raises the alarm). */
  onStoreDamaged?: (err: unknown) => void;
  /** Readiness facts. */
  readiness: () => Promise<{ smtp: boolean; dataDir: boolean; store: boolean; importing?: string }>;
  /** Where printers reach the SMTP listener (for the device setup sheet). */
  smtpEndpoint: () => { host: string; port: number };
}
