/**
 * Labelled counters exist at 0 before their first event (an increase() alert needs a sample before the
 * event to see it): the enums from the start, each device and upstream from the moment the gateway knows
 * it (start, reload, creation through the admin API), without ever resetting a count.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { GatewayMetrics, REJECT_CODES } from '../../../src/observability/metrics.js';
import { parseConfig } from '../../../src/config/index.js';
import { startTestGateway, testRawConfig, type TestGateway } from '../../kit/gateway.js';
import { TEST_DEVICE } from '../../kit/upstream.js';
import { sampleLine } from '../admin/prometheus-text.js';

const sample = sampleLine;

describe('GatewayMetrics series at 0', () => {
  it('has every refusal code, auth method x result, listener and refusal reason at 0 from the start', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    for (const code of REJECT_CODES) expect(await sample(metrics, `scanrelay_messages_rejected_total{code="${code}"}`), String(code)).toBe(0);
    expect(await sample(metrics, 'scanrelay_smtp_auth_attempts_total{method="PLAIN",result="failure"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_smtp_auth_attempts_total{method="CRAM-MD5",result="locked"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_pop3_logins_total{method="APOP",result="success"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_smtp_connections_total{listener="smtp"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_smtp_connections_refused_total{reason="locked-out"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_auth_lockouts_total')).toBe(0);
  });

  it('creates a device series at 0 when the device becomes known, and never resets its count', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    expect(await sample(metrics, 'scanrelay_messages_failed_total{device="copier"}')).toBeUndefined();
    metrics.setDeviceEnabled('copier', true);
    for (const name of ['messages_received', 'bytes_received', 'messages_delivered', 'messages_failed'])
      expect(await sample(metrics, `scanrelay_${name}_total{device="copier"}`), name).toBe(0);
    metrics.recordFailed('copier');
    metrics.knowDevice('copier');
    metrics.setDeviceEnabled('copier', false);
    expect(await sample(metrics, 'scanrelay_messages_failed_total{device="copier"}')).toBe(1);
  });

  it('creates an upstream series at 0 with its first state, and keeps counts and latency buckets', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    metrics.setUpstreamState('gmail-2f', 'unknown');
    for (const result of ['delivered', 'deferred', 'held', 'failed'])
      expect(await sample(metrics, `scanrelay_delivery_attempts_total{upstream="gmail-2f",result="${result}"}`), result).toBe(0);
    expect(await sample(metrics, 'scanrelay_delivery_duration_seconds_count{upstream="gmail-2f"}')).toBe(0);
    metrics.recordDeliveryAttempt('gmail-2f', 'delivered');
    metrics.recordDelivered('copier', 'gmail-2f', 0.3);
    metrics.setUpstreamState('gmail-2f', 'up');
    metrics.knowUpstream('gmail-2f');
    expect(await sample(metrics, 'scanrelay_delivery_attempts_total{upstream="gmail-2f",result="delivered"}')).toBe(1);
    expect(await sample(metrics, 'scanrelay_delivery_duration_seconds_count{upstream="gmail-2f"}')).toBe(1);
  });

  it('drops the default gauges named *_total and keeps the per-type gauges they sum', async () => {
    const metrics = new GatewayMetrics();
    const text = await metrics.registry.metrics();
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+_total) gauge$/gm)].map((m) => m[1]);
    expect(gaugesNamedTotal).toEqual([]);
    expect(text).toContain('# TYPE scanrelay_nodejs_active_handles gauge');
  });
});

describe('a running gateway', () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  it('adds the series of a device created through the admin API and of one added by a reload', async () => {
    gw = await startTestGateway({ devices: [{ ...TEST_DEVICE }] });
    const metrics = gw.gateway.metrics;
    expect(await sample(metrics, 'scanrelay_messages_failed_total{device="scanner-2f"}')).toBe(0);
    const created = await gw.gateway.admin!.inject({
      method: 'POST',
      url: '/api/devices',
      headers: { authorization: 'Bearer test-admin-token-0123456789' },
      payload: { name: 'copier-3f', allowRecipients: ['*@example.org'] },
    });
    expect(created.statusCode).toBe(201);
    expect(await sample(metrics, 'scanrelay_messages_failed_total{device="copier-3f"}')).toBe(0);

    const next = testRawConfig(gw.dataDir, { devices: [{ ...TEST_DEVICE }, { ...TEST_DEVICE, name: 'fax-1f', username: 'fax-1f' }] });
    await gw.gateway.reload(parseConfig(stringify(next), gw.config.file, {}));
    expect(await sample(metrics, 'scanrelay_messages_delivered_total{device="fax-1f"}')).toBe(0);
    expect(await sample(metrics, 'scanrelay_device_enabled{device="fax-1f"}')).toBe(1);
  });

  it('follows a device disabled and deleted through the admin API, and a file device a reload removed', async () => {
    gw = await startTestGateway({ devices: [{ ...TEST_DEVICE }, { ...TEST_DEVICE, name: 'fax-1f', username: 'fax-1f' }] });
    const metrics = gw.gateway.metrics;
    const call = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
      gw!.gateway.admin!.inject({ method, url, headers: { authorization: 'Bearer test-admin-token-0123456789' }, payload });
    expect((await call('POST', '/api/devices', { name: 'copier-3f', allowRecipients: ['*@example.org'] })).statusCode).toBe(201);
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier-3f"}')).toBe(1);
    expect((await call('POST', '/api/devices/copier-3f/disable')).statusCode).toBe(200);
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier-3f"}')).toBe(0);
    expect((await call('DELETE', '/api/devices/copier-3f')).statusCode).toBe(204);
    expect(await sample(metrics, 'scanrelay_device_enabled{device="copier-3f"}')).toBeUndefined();

    expect(await sample(metrics, 'scanrelay_device_enabled{device="fax-1f"}')).toBe(1);
    await gw.gateway.reload(parseConfig(stringify(testRawConfig(gw.dataDir, { devices: [{ ...TEST_DEVICE }] })), gw.config.file, {}));
    expect(await sample(metrics, 'scanrelay_device_enabled{device="fax-1f"}')).toBeUndefined();
    expect(await sample(metrics, 'scanrelay_device_enabled{device="scanner-2f"}')).toBe(1);
  });
});
