/**
 * Every Prometheus metric of scanrelay, on an own Registry per gateway (tests build many). Parts call the
 * record*() functions and never import prom-client. Labels are bounded: device and upstream names and
 * small enums, never addresses or message ids.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type AuthResult = 'success' | 'failure' | 'locked';
export type DeliveryResultClass = 'delivered' | 'deferred' | 'held' | 'failed';
export type UpstreamState = 'up' | 'unknown' | 'auth-failed' | 'unreachable' | 'quota-paused' | 'tls-failed';
export const UPSTREAM_STATES: UpstreamState[] = ['up', 'unknown', 'auth-failed', 'unreachable', 'quota-paused', 'tls-failed'];
// The one list of message states (queued ... partly-failed, quarantined) lives with the queue.
export { MESSAGE_STATES } from '../queue/states.js';
import { MESSAGE_STATES } from '../queue/states.js';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly smtpConnections = new Counter({
    name: 'scanrelay_smtp_connections_total',
    help: 'SMTP connections accepted, by listener',
    labelNames: ['listener'],
    registers: [this.registry],
  });
  readonly smtpConnectionsRefused = new Counter({
    name: 'scanrelay_smtp_connections_refused_total',
    help: 'SMTP connections refused (limits, lock-out)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly smtpAuthAttempts = new Counter({
    name: 'scanrelay_smtp_auth_attempts_total',
    help: 'Device authentication attempts by method and result',
    labelNames: ['method', 'result'],
    registers: [this.registry],
  });
  readonly authLockouts = new Counter({
    name: 'scanrelay_auth_lockouts_total',
    help: 'Source addresses locked out after repeated authentication failures',
    registers: [this.registry],
  });
  readonly messagesReceived = new Counter({
    name: 'scanrelay_messages_received_total',
    help: 'Messages accepted into the spool, by device',
    labelNames: ['device'],
    registers: [this.registry],
  });
  readonly messagesRejected = new Counter({
    name: 'scanrelay_messages_rejected_total',
    help: 'Messages refused before queueing, by SMTP reply code',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'scanrelay_bytes_received_total',
    help: 'Message bytes accepted into the spool, by device',
    labelNames: ['device'],
    registers: [this.registry],
  });
  readonly messageSize = new Histogram({
    name: 'scanrelay_message_size_bytes',
    help: 'Size of accepted messages',
    buckets: [10e3, 100e3, 1e6, 5e6, 10e6, 25e6, 50e6],
    registers: [this.registry],
  });
  readonly acceptDuration = new Histogram({
    name: 'scanrelay_smtp_accept_duration_seconds',
    help: 'End of DATA to the 250 reply (fsync included)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  private queueStatsSource?: () => { counts: Record<string, number>; oldestPendingAgeSeconds: number };
  readonly queueMessages: Gauge;
  readonly queueOldestAge: Gauge;
  readonly deliveryAttempts = new Counter({
    name: 'scanrelay_delivery_attempts_total',
    help: 'Delivery attempts by upstream and result class',
    labelNames: ['upstream', 'result'],
    registers: [this.registry],
  });
  readonly messagesDelivered = new Counter({
    name: 'scanrelay_messages_delivered_total',
    help: 'Messages delivered upstream, by device',
    labelNames: ['device'],
    registers: [this.registry],
  });
  readonly messagesFailed = new Counter({
    name: 'scanrelay_messages_failed_total',
    help: 'Messages that failed permanently, by device',
    labelNames: ['device'],
    registers: [this.registry],
  });
  readonly deliveryDuration = new Histogram({
    name: 'scanrelay_delivery_duration_seconds',
    help: 'Time from queueing to the upstream 250',
    labelNames: ['upstream'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [this.registry],
  });
  readonly upstreamState = new Gauge({
    name: 'scanrelay_upstream_state',
    help: '1 for the current state of each upstream',
    labelNames: ['upstream', 'state'],
    registers: [this.registry],
  });
  readonly deviceEnabled = new Gauge({
    name: 'scanrelay_device_enabled',
    help: '1 when the device may send',
    labelNames: ['device'],
    registers: [this.registry],
  });
  readonly pop3Logins = new Counter({
    name: 'scanrelay_pop3_logins_total',
    help: 'POP-before-SMTP logins by method and result',
    labelNames: ['method', 'result'],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    // Queue gauges are computed at scrape time from the queue itself, so they can never drift.
    const metrics = this;
    this.queueMessages = new Gauge({
      name: 'scanrelay_queue_messages',
      help: 'Messages in the queue by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const stats = metrics.queueStatsSource?.();
        if (stats) for (const state of MESSAGE_STATES) this.set({ state }, stats.counts[state] ?? 0);
      },
    });
    this.queueOldestAge = new Gauge({
      name: 'scanrelay_queue_oldest_message_age_seconds',
      help: 'Age of the oldest message not yet delivered or failed',
      registers: [this.registry],
      collect() {
        const stats = metrics.queueStatsSource?.();
        if (stats) this.set(stats.oldestPendingAgeSeconds);
      },
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'scanrelay_' });
  }

  recordConnection(listener: 'smtp' | 'smtps' | 'pop3'): void {
    this.smtpConnections.inc({ listener });
  }
  recordConnectionRefused(reason: 'max-clients' | 'per-ip-limit' | 'locked-out' | 'not-allowed'): void {
    this.smtpConnectionsRefused.inc({ reason });
  }
  recordAuthAttempt(method: string, result: AuthResult): void {
    this.smtpAuthAttempts.inc({ method: method.toUpperCase(), result });
  }
  recordLockout(): void {
    this.authLockouts.inc();
  }
  recordMessageReceived(device: string, size: number, acceptSeconds: number): void {
    this.messagesReceived.inc({ device });
    this.bytesReceived.inc({ device }, size);
    this.messageSize.observe(size);
    this.acceptDuration.observe(acceptSeconds);
  }
  recordMessageRejected(code: number): void {
    this.messagesRejected.inc({ code: String(code) });
  }
  recordDeliveryAttempt(upstream: string, result: DeliveryResultClass): void {
    this.deliveryAttempts.inc({ upstream, result });
  }
  recordDelivered(device: string, upstream: string, seconds: number): void {
    this.messagesDelivered.inc({ device });
    this.deliveryDuration.observe({ upstream }, seconds);
  }
  recordFailed(device: string): void {
    this.messagesFailed.inc({ device });
  }
  setQueueStatsSource(source: () => { counts: Record<string, number>; oldestPendingAgeSeconds: number }): void {
    this.queueStatsSource = source;
  }
  setUpstreamState(upstream: string, state: UpstreamState): void {
    for (const candidate of UPSTREAM_STATES) this.upstreamState.set({ upstream, state: candidate }, candidate === state ? 1 : 0);
  }
  setDeviceEnabled(device: string, enabled: boolean): void {
    this.deviceEnabled.set({ device }, enabled ? 1 : 0);
  }
  removeDevice(device: string): void {
    this.deviceEnabled.remove({ device });
  }
  recordPop3Login(method: 'USER' | 'APOP', result: AuthResult): void {
    this.pop3Logins.inc({ method, result });
  }
}
