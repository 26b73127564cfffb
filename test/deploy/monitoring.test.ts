/**
 * Prometheus scrape config, alert rules and the Grafana dashboard against what a running gateway's
 * /metrics really exports: every scanrelay_* name must exist (histograms as _bucket/_sum/_count), every
 * label used in a selector must be one of the metric's labels, and enum label values must be ones the
 * gateway can emit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join, posix, resolve } from 'node:path';
import { startTestGateway, type TestGateway } from '../kit/gateway.js';
import { MESSAGE_STATES, REJECT_CODES, UPSTREAM_STATES, type AuthResult, type DeliveryResultClass } from '../../src/observability/metrics.js';
import { replies } from '../../src/inbound/index.js';
import { metricNamesIn, readRepoFile, readYaml, repoPath, selectorsIn } from './files.js';

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}
interface PrometheusConfig {
  global?: { scrape_interval?: string };
  rule_files?: string[];
  scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
}
interface ComposeFile {
  services: Record<string, { volumes?: string[]; environment?: Record<string, string>; image?: string }>;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

const compose = readYaml<ComposeFile>('deploy', 'docker-compose.yml');
const prometheus = readYaml<PrometheusConfig>('deploy', 'prometheus', 'prometheus.yml');
const alerts = readYaml<RuleFile>('deploy', 'prometheus', 'alerts.yml');
const dashboard = JSON.parse(readRepoFile('deploy', 'grafana', 'dashboards', 'scanrelay.json')) as { uid: string; title: string; panels: Panel[] };
const alertRules = alerts.groups.flatMap((g) => g.rules);
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Known values of enum labels, from the gateway's own definitions. */
const AUTH_RESULTS = ['success', 'failure', 'locked'] satisfies AuthResult[];
const DELIVERY_RESULTS = ['delivered', 'deferred', 'held', 'failed'] satisfies DeliveryResultClass[];
type AnyReply = { code: number } | ((...args: never[]) => { code: number });
const REPLY_CODES = [
  ...new Set(
    Object.values(replies as Record<string, AnyReply>).map((r) =>
      String(typeof r === 'function' ? (r as (...args: unknown[]) => { code: number })('a@b.example', 'd').code : r.code),
    ),
  ),
];
const LABEL_VALUES: Record<string, Record<string, readonly string[]>> = {
  scanrelay_upstream_state: { state: UPSTREAM_STATES },
  scanrelay_queue_messages: { state: MESSAGE_STATES },
  scanrelay_smtp_auth_attempts_total: { result: AUTH_RESULTS },
  scanrelay_delivery_attempts_total: { result: DELIVERY_RESULTS },
  scanrelay_messages_rejected_total: { code: REPLY_CODES },
};

/** In-container path -> repository path, through a service's bind mounts. */
function hostPathOf(service: string, containerPath: string): string | undefined {
  for (const spec of compose.services[service].volumes ?? []) {
    const [source, target] = spec.split(':');
    if (!source.startsWith('.')) continue;
    if (containerPath === target || containerPath.startsWith(`${target}/`)) return resolve(repoPath('deploy'), source, posix.relative(target, containerPath));
  }
  return undefined;
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('monitoring files against the metrics a running gateway exports', () => {
  let gw: TestGateway;
  /** Every sample name /metrics can carry. */
  const exported = new Set<string>();

  beforeAll(async () => {
    gw = await startTestGateway({}, { defaultMetrics: true });
    const response = await httpGet(gw.addresses.admin!.port, '/metrics');
    expect(response.status).toBe(200);
    for (const m of response.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = m;
      exported.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name + suffix);
      if (type === 'summary') for (const suffix of ['_sum', '_count']) exported.add(name + suffix);
    }
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /** The metric's label names, from the gateway's registry (histogram samples also carry `le`). */
  function labelsOf(sampleName: string): string[] {
    const base = sampleName.replace(/_(bucket|sum|count)$/, '');
    const metric = gw.gateway.metrics.registry.getSingleMetric(sampleName) ?? gw.gateway.metrics.registry.getSingleMetric(base);
    const labelNames = (metric as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? [];
    return sampleName.endsWith('_bucket') ? [...labelNames, 'le'] : labelNames;
  }

  function checkExpression(where: string, expr: string): void {
    const names = metricNamesIn(expr);
    for (const name of names) expect(exported.has(name), `${where}: ${name} is exported by /metrics`).toBe(true);
    for (const selector of selectorsIn(expr)) {
      const labels = labelsOf(selector.metric);
      for (const matcher of selector.matchers) {
        expect(labels, `${where}: ${selector.metric} has label ${matcher.label}`).toContain(matcher.label);
        const known = LABEL_VALUES[selector.metric]?.[matcher.label];
        if (!known) continue;
        const values = matcher.op.endsWith('~') ? matcher.value.split('|') : [matcher.value];
        for (const value of values) expect(known, `${where}: ${selector.metric}{${matcher.label}="${value}"} can occur`).toContain(value);
      }
    }
  }

  it('reads a plausible exposition (the check below would catch a typo)', () => {
    expect(exported.has('scanrelay_upstream_state')).toBe(true);
    expect(exported.has('scanrelay_delivery_duration_seconds_bucket')).toBe(true);
    expect(exported.has('scanrelay_no_such_metric')).toBe(false);
    expect(labelsOf('scanrelay_upstream_state').sort()).toEqual(['state', 'upstream']);
  });

  it('has a series at 0 from the start for every code the reply catalogue can refuse with', () => {
    const refusals = REPLY_CODES.filter((code) => Number(code) >= 400).map(Number);
    expect(refusals.length).toBeGreaterThan(5);
    expect([...REJECT_CODES].sort()).toEqual([...new Set(refusals)].sort());
  });

  it('alert rules use only exported metrics, labels and label values', () => {
    for (const rule of alertRules) checkExpression(`alert ${rule.alert}`, rule.expr);
  });

  it('dashboard queries use only exported metrics, labels and label values', () => {
    expect(dashboardExprs.length).toBeGreaterThan(10);
    for (const { panel, expr } of dashboardExprs) checkExpression(`panel "${panel}"`, expr);
  });

  it('dashboard covers messages per device, queue depth and age, delivery latency and upstream state', () => {
    const used = new Set(dashboardExprs.flatMap(({ expr }) => metricNamesIn(expr)));
    for (const name of [
      'scanrelay_messages_received_total',
      'scanrelay_messages_delivered_total',
      'scanrelay_messages_failed_total',
      'scanrelay_queue_messages',
      'scanrelay_queue_oldest_message_age_seconds',
      'scanrelay_delivery_duration_seconds_bucket',
      'scanrelay_upstream_state',
    ])
      expect(used, name).toContain(name);
    expect(dashboardExprs.filter(({ expr }) => expr.includes('_total') && !/\b(rate|increase)\(/.test(expr))).toEqual([]);
  });
});

describe('deploy/prometheus', () => {
  it('scrapes the scanrelay service on its admin port', () => {
    const job = prometheus.scrape_configs.find((s) => s.job_name === 'scanrelay');
    expect(job).toBeDefined();
    expect(job!.metrics_path ?? '/metrics').toBe('/metrics');
    const targets = job!.static_configs.flatMap((c) => c.targets);
    const dockerfileEnv = /SCANRELAY_ADMIN_PORT=(\d+)/.exec(readRepoFile('Dockerfile'))![1];
    const adminPort = compose.services.scanrelay.environment?.SCANRELAY_ADMIN_PORT ?? dockerfileEnv;
    expect(targets).toEqual([`scanrelay:${adminPort}`]);
    expect(Object.keys(compose.services)).toContain(targets[0].split(':')[0]);
  });

  it('loads the alert rule file through the container mount', () => {
    expect(prometheus.rule_files).toHaveLength(1);
    const host = hostPathOf('prometheus', prometheus.rule_files![0]);
    expect(host).toBe(repoPath('deploy', 'prometheus', 'alerts.yml'));
    expect(existsSync(hostPathOf('prometheus', '/etc/prometheus/prometheus.yml')!)).toBe(true);
  });

  it('every alert has expr, for, a severity label, summary and description, and a unique name', () => {
    expect(alertRules.length).toBeGreaterThanOrEqual(5);
    const names = alertRules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of alertRules) {
      expect(rule.alert, 'alerting rules only').toMatch(/^Scanrelay[A-Za-z]+$/);
      expect(typeof rule.expr).toBe('string');
      expect(rule.for, `${rule.alert}.for`).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert}.summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert}.description`).toBeTruthy();
      // Brackets balance: a cheap guard against a broken PromQL edit (promtool.test.ts parses it for real).
      for (const [open, close] of [
        ['(', ')'],
        ['{', '}'],
        ['[', ']'],
      ]) {
        expect(rule.expr.split(open).length, `${rule.alert}: ${open}${close} balance`).toBe(rule.expr.split(close).length);
      }
    }
  });

  it('alerts on upstream auth failure, a queue older than 15 minutes, delivery failures and lock-outs', () => {
    const byMetric = (fragment: string) => alertRules.filter((r) => r.expr.includes(fragment));
    expect(byMetric('scanrelay_upstream_state{state="auth-failed"}')).toHaveLength(1);
    expect(byMetric('scanrelay_queue_oldest_message_age_seconds').map((r) => r.expr)).toEqual(['scanrelay_queue_oldest_message_age_seconds > 15 * 60']);
    expect(byMetric('scanrelay_messages_failed_total')).toHaveLength(1);
    expect(byMetric('scanrelay_auth_lockouts_total')).toHaveLength(1);
  });

  it('links every runbook to a heading that exists in docs/troubleshooting.md', () => {
    const guide = readRepoFile('docs', 'troubleshooting.md');
    const anchors = new Set([...guide.matchAll(/^#{1,6} (.+)$/gm)].map((m) => githubAnchor(m[1])));
    for (const rule of alertRules) {
      const runbook = rule.annotations?.runbook;
      expect(runbook, `${rule.alert}.runbook`).toMatch(/^docs\/troubleshooting\.md#[a-z0-9-]+$/);
      expect(anchors, `${rule.alert}: ${runbook}`).toContain(runbook!.split('#')[1]);
    }
  });
});

describe('deploy/grafana', () => {
  const datasources = readYaml<{ datasources: Array<{ uid: string; type: string; url: string }> }>(
    'deploy',
    'grafana',
    'provisioning',
    'datasources',
    'prometheus.yml',
  );
  const providers = readYaml<{ providers: Array<{ options: { path: string } }> }>('deploy', 'grafana', 'provisioning', 'dashboards', 'scanrelay.yml');

  it('provisions the Prometheus service as the datasource every panel uses', () => {
    expect(datasources.datasources).toHaveLength(1);
    const [ds] = datasources.datasources;
    expect(ds.type).toBe('prometheus');
    const url = new URL(ds.url);
    expect(Object.keys(compose.services)).toContain(url.hostname);
    expect(url.port).toBe('9090');
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource?.uid, panel.title).toBe(ds.uid);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid ?? ds.uid, panel.title).toBe(ds.uid);
    }
  });

  it('loads the dashboard JSON from the mounted provisioning path', () => {
    expect(hostPathOf('grafana', '/etc/grafana/provisioning/dashboards/scanrelay.yml')).toBe(
      repoPath('deploy', 'grafana', 'provisioning', 'dashboards', 'scanrelay.yml'),
    );
    const folder = hostPathOf('grafana', providers.providers[0].options.path);
    expect(folder).toBe(repoPath('deploy', 'grafana', 'dashboards'));
    expect(readdirSync(folder!)).toContain('scanrelay.json');
    expect(dashboard.uid).toBe('scanrelay');
    const home = compose.services.grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    expect(home && hostPathOf('grafana', home)).toBe(join(folder!, 'scanrelay.json'));
  });
});

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}
