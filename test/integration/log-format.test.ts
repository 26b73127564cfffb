/**
 * log.format: the real gateway process writes readable lines with `pretty`, and JSON lines with `auto`
 * when stdout is not a terminal (a pipe here, like docker logs or journald).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { wantsPretty } from '../../src/observability/logger.js';
import { makeTempDir, startGatewayProcess, testRawConfig, writeGatewayConfig, type GatewayProcess } from '../kit/index.js';

const ROOT = new URL('../..', import.meta.url).pathname;

describe('log.format', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function configFile(format?: string): Promise<string> {
    const dir = await makeTempDir();
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return writeGatewayConfig(dir, testRawConfig(join(dir, 'data'), { log: { level: 'info', ...(format ? { format } : {}) } }));
  }

  it('pretty: one human line per event, level as a word, no JSON', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), '--config', await configFile('pretty')], {
      cwd: ROOT,
      env: { ...process.env, SCANRELAY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanup.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const lines: string[] = [];
    const ready = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line; got:\n${lines.join('\n')}`)), 90_000);
      child.once('exit', () => reject(new Error(`gateway exited; got:\n${lines.join('\n')}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.includes('scanrelay.ready')) {
          clearTimeout(timer);
          resolve(line);
        }
      });
    });
    expect(ready).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] INFO: scanrelay\.ready \{.*"smtp":\d+/);
    for (const line of lines) expect(() => JSON.parse(line), line).toThrow();
    expect(lines.join('\n')).not.toContain('"level":');
    expect(lines.join('\n')).not.toContain('test-admin-token-0123456789');
  }, 120_000);

  it('auto with stdout not a terminal: JSON lines (the default)', async () => {
    const gateway: GatewayProcess = await startGatewayProcess(await configFile(), { timeoutMs: 90_000 });
    cleanup.push(() => gateway.kill());
    const ready = gateway.logs.find((entry) => entry.msg === 'scanrelay.ready');
    expect(ready).toMatchObject({ level: 30, service: 'scanrelay', smtp: expect.any(Number) });
    const forcedJson: GatewayProcess = await startGatewayProcess(await configFile('json'), { timeoutMs: 90_000 });
    cleanup.push(() => forcedJson.kill());
    expect(forcedJson.logs.find((entry) => entry.msg === 'scanrelay.ready')).toMatchObject({ level: 30 });
  }, 180_000);

  it('auto means pretty exactly when stdout is a terminal', () => {
    expect(wantsPretty('auto', true)).toBe(true);
    expect(wantsPretty('auto', false)).toBe(false);
    expect(wantsPretty('pretty', false)).toBe(true);
    expect(wantsPretty('json', true)).toBe(false);
  });
});
