/**
 * The metrics follow the parts' events (wire-metrics.ts): each event moves exactly the series it did when
 * the parts called the metrics directly, and the first event of a device or upstream creates its series at 0.
 */
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../../src/observability/metrics.js';
import { wireMetrics } from '../../../src/observability/wire-metrics.js';
import { GatewayEventBus } from '../../../src/shared/events.js';
import { sampleLine } from '../admin/prometheus-text.js';

const sample = sampleLine;

function wired() {
  const events = new GatewayEventBus();
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  wireMetrics(events, metrics);
  return { events, metrics };
}

describe('metrics wired to events', () => {
  it('counts connections by listener and refusals by reason', async () => {
    const { events, metrics } = wired();
    events.emit('session.opened', { sessionId: 's1', remoteAddress: '10.0.0.5', protocol: 'smtp', listener: 'smtps' });
    events.emit('session.opened', { sessionId: 's2', remoteAddress: '10.0.0.5', protocol: 'pop3', listener: 'pop3' });
    events.emit('session.refused', { sessionId: 's1', remoteAddress: '10.0.0.5', listener: 'smtps', reason: 'per-ip-limit' });
    expect(await sample(metrics, 'scanrelay_smtp_connections_total{listener="smtps"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_smtp_connections_total{listener="pop3"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_smtp_connections_total{listener="smtp"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_smtp_connections_refused_total{reason="per-ip-limit"}')).toBe(1);
  });

  it('counts logins and lock-outs, and not an expired POP3 grant', async () => {
    const { events, metrics } = wired();
    const base = { sessionId: 's', remoteAddress: '10.0.0.5', at: 0 };
    events.emit('login.attempted', { ...base, protocol: 'smtp', method: 'plain', ok: false, reason: 'bad-password', lockedOut: true });
    events.emit('login.attempted', { ...base, protocol: 'pop3', method: 'APOP', ok: true, reason: 'ok' });
    events.emit('login.attempted', { ...base, protocol: 'smtp', method: 'pop-before-smtp', ok: false, reason: 'pop-grant-expired' });
    expect(await sample(metrics, 'scanrelay_smtp_auth_attempts_total{method="PLAIN",result="failure"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_pop3_logins_total{method="APOP",result="success"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_auth_lockouts_total')).toBe(1);
    expect((await metrics.registry.metrics()).includes('POP-BEFORE-SMTP')).toBe(false);
  });

  it('counts refusals by code (with or without a device) and accepted messages with their size and accept time', async () => {
    const { events, metrics } = wired();
    events.emit('message.rejected', { sessionId: 's', code: 550, reason: 'relaying denied' });
    events.emit('message.rejected', { device: 'copier', sessionId: 's', code: 552, reason: 'too large' });
    events.emit('message.queued', { id: 'q1', device: 'copier', size: 2048, sessionId: 's', acceptMs: 12 });
    expect(await sample(metrics, 'scanrelay_messages_rejected_total{code="550"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_messages_rejected_total{code="552"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_messages_received_total{device="copier"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_bytes_received_total{device="copier"}')).toBe(2048);
    expect(await sample(metrics, 'scanrelay_message_size_bytes_count')).toBe(1);
    expect(await sample(metrics, 'scanrelay_smtp_accept_duration_seconds_bucket{le="0.025"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_smtp_accept_duration_seconds_bucket{le="0.01"}')).toBe(0);
  });

  it('counts each attempt outcome by upstream; a hold counts only when an upstream was tried', async () => {
    const { events, metrics } = wired();
    events.emit('upstream.added', { upstream: 'gmail', state: 'unknown' });
    for (const result of ['delivered', 'deferred', 'held', 'failed'])
      expect(await sample(metrics, `scanrelay_delivery_attempts_total{upstream="gmail",result="${result}"}`), result).toBe(0);
    const m = { device: 'copier', upstream: 'gmail' };
    events.emit('message.delivered', { id: 'q1', ...m, latencyMs: 1500, size: 10 });
    events.emit('message.deferred', { id: 'q2', ...m, reason: 'busy', nextAttemptAt: 0 });
    events.emit('message.held', { id: 'q3', ...m, reason: 'credentials refused', code: 'upstream-auth-failed', attempted: true });
    events.emit('message.held', { id: 'q4', device: 'copier', reason: 'no upstream', code: 'no-upstream' });
    events.emit('message.held', { id: 'q5', ...m, reason: 'upstream refuses', code: 'upstream-auth-failed', attempted: false });
    events.emit('message.failed', { id: 'q6', ...m, reason: 'refused' });
    for (const result of ['delivered', 'deferred', 'held', 'failed'])
      expect(await sample(metrics, `scanrelay_delivery_attempts_total{upstream="gmail",result="${result}"}`), result).toBe(1);
    expect(await sample(metrics, 'scanrelay_messages_delivered_total{device="copier"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_messages_failed_total{device="copier"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_delivery_duration_seconds_bucket{le="1",upstream="gmail"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_delivery_duration_seconds_bucket{le="2.5",upstream="gmail"}')).toBe(1);
  });

  it('follows upstream states and removes a removed upstream; follows devices enabled and removed', async () => {
    const { events, metrics } = wired();
    events.emit('upstream.added', { upstream: 'gmail', state: 'quota-paused' });
    expect(await sample(metrics, 'scanrelay_upstream_state{upstream="gmail",state="quota-paused"}')).toBe(1);
    events.emit('upstream.state-changed', { upstream: 'gmail', previous: 'quota-paused', state: 'up' });
    expect(await sample(metrics, 'scanrelay_upstream_state{upstream="gmail",state="quota-paused"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_upstream_state{upstream="gmail",state="up"}')).toBe(1);
    events.emit('upstream.removed', { upstream: 'gmail' });
    expect(await sample(metrics, 'scanrelay_upstream_state{upstream="gmail",state="up"}')).toBeUndefined();

    events.emit('device.created', { name: 'copier', enabled: true });
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_messages_received_total{device="copier"}')).toBe(0);
    events.emit('device.updated', { name: 'copier', enabled: false });
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier"}')).toBe(0);
    events.emit('device.removed', { name: 'copier' });
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier"}')).toBeUndefined();
  });
});
