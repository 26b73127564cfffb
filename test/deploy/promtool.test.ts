/**
 * The monitoring files through Prometheus's own tool: the rule file and the scrape config load, every
 * alert's unit tests pass (deploy/prometheus/alerts.test.yml), and a live scrape of a running gateway
 * passes `promtool check metrics` (no lint problem at all). Skipped with the reason when promtool is not
 * installed, a failure under SCANRELAY_REQUIRE_ALL=1.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startTestGateway, type TestGateway } from '../kit/gateway.js';
import { TEST_DEVICE, TestUpstream, upstreamEntry } from '../kit/upstream.js';
import { writeCaFile } from '../kit/certs.js';
import { describeWithTool, outsideTool } from '../kit/tools.js';
import { readRepoFile, readYaml, repoPath } from './files.js';

const promtool = outsideTool('promtool', 'apt-get install --no-install-recommends prometheus');

function run(args: string[], input?: string) {
  const result = spawnSync(promtool.command, args, { input, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describeWithTool(promtool, 'promtool', () => {
  let gw: TestGateway;
  let upstream: TestUpstream;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-promtool-'));
    upstream = await TestUpstream.start({ mode: 'tls' });
    const caFile = await writeCaFile(dir);
    gw = await startTestGateway(
      { devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }], upstreams: [upstreamEntry(upstream, caFile)] },
      { defaultMetrics: true },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await upstream?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('checks the alert rules', () => {
    const result = run(['check', 'rules', repoPath('deploy', 'prometheus', 'alerts.yml')]);
    expect(result.output).toContain('SUCCESS');
    expect(result.status, result.output).toBe(0);
  });

  it('passes every alert unit test in alerts.test.yml', () => {
    const result = run(['test', 'rules', repoPath('deploy', 'prometheus', 'alerts.test.yml')]);
    expect(result.status, result.output).toBe(0);
  });

  it('loads the compose stack scrape config with its rule file', async () => {
    // prometheus.yml names the rule file by its path inside the container: point it at the repository's.
    const config = readYaml<Record<string, unknown>>('deploy', 'prometheus', 'prometheus.yml');
    const file = join(dir, 'prometheus.yml');
    await writeFile(file, stringify({ ...config, rule_files: [repoPath('deploy', 'prometheus', 'alerts.yml')] }));
    const result = run(['check', 'config', file]);
    expect(result.status, result.output).toBe(0);
  });

  it('finds no problem in a live scrape (labelled series at 0, no gauge named *_total)', async () => {
    const response = await fetch(`http://127.0.0.1:${gw.addresses.admin!.port}/metrics`);
    const text = await response.text();
    expect(text).toMatch(/^scanrelay_messages_failed_total\{device="scanner-2f"\} 0$/m);
    expect(text).toMatch(/^scanrelay_delivery_attempts_total\{upstream="gmail-test",result="deferred"\} 0$/m);
    expect(text).toMatch(/^scanrelay_messages_rejected_total\{code="452"\} 0$/m);
    const result = run(['check', 'metrics'], text);
    expect(result.output.trim()).toBe('');
    expect(result.status).toBe(0);
  });
});

it('has a unit test in alerts.test.yml that fires each alert of alerts.yml', () => {
  const rules = readYaml<{ groups: Array<{ rules: Array<{ alert?: string }> }> }>('deploy', 'prometheus', 'alerts.yml').groups.flatMap((g) => g.rules);
  const tests = readYaml<{ rule_files: string[]; tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> }>(
    'deploy',
    'prometheus',
    'alerts.test.yml',
  );
  expect(tests.rule_files).toEqual(['alerts.yml']);
  const fired = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname)));
  const quiet = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length === 0).map((c) => c.alertname)));
  for (const rule of rules) {
    expect(fired, `${rule.alert} fires in a test`).toContain(rule.alert);
    expect(quiet, `${rule.alert} stays quiet in a test`).toContain(rule.alert);
  }
  expect(readRepoFile('.ci', 'run')).toContain('alerts.test.yml');
});
