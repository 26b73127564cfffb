/**
 * The metrics listen to the parts' events; no part calls a metric. app.ts calls this once, before it
 * builds the parts, so the first upstream.added and device.created already land here.
 *
 *   session.opened / session.refused      -> connections accepted and refused, by listener and reason
 *   login.attempted                       -> SMTP AUTH and POP3 logins by result, lock-outs
 *   message.rejected / message.queued     -> refused before queueing (by code); received, bytes, size, accept time
 *   message.delivered/deferred/held/failed -> delivery attempts by upstream and result; delivered, failed, latency
 *   upstream.added/state-changed/removed  -> scanrelay_upstream_state
 *   device.created/updated/removed        -> scanrelay_device_enabled
 *   store.damaged                         -> scanrelay_store_damaged
 *
 * A hold counts as a delivery attempt only when an upstream was tried (`attempted`): a scan held because
 * its device has no upstream was never attempted.
 */
import type { GatewayEventBus } from '../shared/events.js';
import type { AuthResult, GatewayMetrics } from './metrics.js';

export function wireMetrics(events: GatewayEventBus, metrics: GatewayMetrics): void {
  events.on('session.opened', ({ listener }) => metrics.recordConnection(listener));
  events.on('session.refused', ({ reason }) => metrics.recordConnectionRefused(reason));
  events.on('login.attempted', (attempt) => {
    if (attempt.reason === 'pop-grant-expired') return; // not a login: the printer skipped its POP3 step
    const result: AuthResult = attempt.ok ? 'success' : attempt.reason === 'locked-out' ? 'locked' : 'failure';
    if (attempt.protocol === 'smtp') metrics.recordAuthAttempt(attempt.method, result);
    else if (attempt.method === 'USER' || attempt.method === 'APOP') metrics.recordPop3Login(attempt.method, result);
    if (attempt.lockedOut) metrics.recordLockout();
  });

  events.on('store.damaged', () => metrics.storeDamaged.set(1));
  events.on('message.rejected', ({ code }) => metrics.recordMessageRejected(code));
  events.on('message.queued', ({ device, size, acceptMs }) => metrics.recordMessageReceived(device, size, acceptMs / 1000));
  events.on('message.delivered', ({ device, upstream, latencyMs }) => {
    metrics.recordDeliveryAttempt(upstream, 'delivered');
    metrics.recordDelivered(device, upstream, latencyMs / 1000);
  });
  events.on('message.deferred', ({ upstream }) => {
    if (upstream) metrics.recordDeliveryAttempt(upstream, 'deferred');
  });
  events.on('message.held', ({ upstream, attempted }) => {
    if (attempted && upstream) metrics.recordDeliveryAttempt(upstream, 'held');
  });
  events.on('message.failed', ({ device, upstream }) => {
    if (upstream) metrics.recordDeliveryAttempt(upstream, 'failed');
    metrics.recordFailed(device);
  });

  events.on('upstream.added', ({ upstream, state }) => metrics.setUpstreamState(upstream, state));
  events.on('upstream.state-changed', ({ upstream, state }) => metrics.setUpstreamState(upstream, state));
  events.on('upstream.removed', ({ upstream }) => metrics.removeUpstream(upstream));

  events.on('device.created', ({ name, enabled }) => metrics.setDeviceEnabled(name, enabled));
  events.on('device.updated', ({ name, enabled }) => metrics.setDeviceEnabled(name, enabled));
  events.on('device.removed', ({ name }) => metrics.removeDevice(name));
}
