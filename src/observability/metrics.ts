/**
 * Every Prometheus metric of scanrelay, on an own Registry per gateway (tests build many). No part calls
 * them: wire-metrics.ts subscribes the record*() functions to the parts' events (app.ts calls it), and
 * nothing else imports prom-client. Labels are bounded: device and upstream names and
 * small enums, never addresses or message ids.
 *
 * Every labelled counter has its series at 0 from the start for each known label set (the enums below,
 * each device once setDeviceEnabled/knowDevice names it, each upstream once setUpstreamState/knowUpstream
 * names it). Prometheus's increase() needs a sample before the first event: a series born at 1 makes an
 * "increase > 0" alert miss that event.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type AuthResult = 'success' | 'failure' | 'locked';
export type DeliveryResultClass = 'delivered' | 'deferred' | 'held' | 'failed';
// The one list of upstream states lives with delivery (upstream-states.ts), as message states live with the queue.
export { UPSTREAM_STATES, type UpstreamState } from '../delivery/upstream-states.js';
import { UPSTREAM_STATES, type UpstreamState } from '../delivery/upstream-states.js';
// The one list of message states (queued ... partly-failed, quarantined) lives with the queue.
export { MESSAGE_STATES } from '../queue/states.js';
import { MESSAGE_STATES } from '../queue/states.js';
export const AUTH_RESULTS: AuthResult[] = ['success', 'failure', 'locked'];
export const DELIVERY_RESULTS: DeliveryResultClass[] = ['delivered', 'deferred', 'held', 'failed'];
export type { ConnectionRefusal, ListenerName as Listener } from '../shared/events.js';
import type { ConnectionRefusal, ListenerName as Listener } from '../shared/events.js';
const LISTENERS: Listener[] = ['smtp', 'smtps', 'pop3'];
const CONNECTION_REFUSALS: ConnectionRefusal[] = ['max-clients', 'per-ip-limit', 'locked-out'];
/** AUTH methods the SMTP listener offers (the label is upper case). */
export const SMTP_AUTH_METHODS = ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const;
const POP3_METHODS = ['USER', 'APOP'] as const;
/**
 * Every reply code a message or command can be refused with (inbound's reply catalogue; a test keeps the
 * two in step). scanrelay_messages_rejected_total has a series for each from the start.
 */
export const REJECT_CODES = [421, 451, 452, 454, 530, 535, 550, 552, 553] as const;
/**
 * prom-client's default metrics that are gauges named *_total, which the exposition format reserves for
 * counters (`promtool check metrics` fails on them). Each is the sum of a gauge that stays, e.g.
 * scanrelay_nodejs_active_handles{type}.
 */
const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

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
    help: 'Connections refused (limits, lock-out), SMTP and POP3 listeners alike',
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
  private readonly knownUpstreams = new Set<string>();
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
  readonly storeDamaged = new Gauge({
    name: 'scanrelay_store_damaged',
    help: '1 once SQLite reported a damaged page of store.db while running (log line store.damaged)',
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
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'scanrelay_' });
      for (const name of GAUGES_NAMED_TOTAL) this.registry.removeSingleMetric(`scanrelay_${name}`);
    }
    for (const listener of LISTENERS) this.smtpConnections.inc({ listener }, 0);
    for (const reason of CONNECTION_REFUSALS) this.smtpConnectionsRefused.inc({ reason }, 0);
    for (const result of AUTH_RESULTS) {
      for (const method of SMTP_AUTH_METHODS) this.smtpAuthAttempts.inc({ method, result }, 0);
      for (const method of POP3_METHODS) this.pop3Logins.inc({ method, result }, 0);
    }
    for (const code of REJECT_CODES) this.messagesRejected.inc({ code: String(code) }, 0);
  }

  /** Creates the device's series at 0 (idempotent: existing counts are kept). */
  knowDevice(device: string): void {
    for (const counter of [this.messagesReceived, this.bytesReceived, this.messagesDelivered, this.messagesFailed]) counter.inc({ device }, 0);
  }

  /** Creates the upstream's series at 0 (idempotent: existing counts are kept). */
  knowUpstream(upstream: string): void {
    for (const result of DELIVERY_RESULTS) this.deliveryAttempts.inc({ upstream, result }, 0);
    // zero() resets buckets that already count: only for an upstream seen for the first time.
    if (!this.knownUpstreams.has(upstream)) {
      this.knownUpstreams.add(upstream);
      this.deliveryDuration.zero({ upstream });
    }
  }

  recordConnection(listener: Listener): void {
    this.smtpConnections.inc({ listener });
  }
  recordConnectionRefused(reason: ConnectionRefusal): void {
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
    this.knowUpstream(upstream);
    this.deliveryAttempts.inc({ upstream, result });
  }
  recordDelivered(device: string, upstream: string, seconds: number): void {
    this.knowUpstream(upstream);
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
    this.knowUpstream(upstream);
    for (const candidate of UPSTREAM_STATES) this.upstreamState.set({ upstream, state: candidate }, candidate === state ? 1 : 0);
  }
  /** The upstream left the config: its state series go (its counters stay, as Prometheus expects). */
  removeUpstream(upstream: string): void {
    for (const state of UPSTREAM_STATES) this.upstreamState.remove({ upstream, state });
  }
  setDeviceEnabled(device: string, enabled: boolean): void {
    this.knowDevice(device);
    this.deviceEnabled.set({ device }, enabled ? 1 : 0);
  }
  removeDevice(device: string): void {
    this.deviceEnabled.remove({ device });
  }
  recordPop3Login(method: 'USER' | 'APOP', result: AuthResult): void {
    this.pop3Logins.inc({ method, result });
  }
}
