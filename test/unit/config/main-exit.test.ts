/**
 * The entry point refuses a bad config file: exit code 78 (EX_CONFIG) and one line on stderr naming the
 * file, the key path and the problem, before anything listens.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

function runMain(configFile: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SCANRELAY_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configFile], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
  return new Promise((done) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr, stdout });
    }),
  );
}

describe('scanrelay --config with an invalid file', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('exits 78 and prints file, key path and problem on stderr', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-bad-config-'));
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      [
        `dataDir: ${join(dir, 'data')}`,
        'smtp: { host: 127.0.0.1, port: 0 }',
        'admin: { enabled: false }',
        'devices:',
        '  - name: legacy-copier',
        '    auth: none',
        '    allowFrom: [10.20.0.0/16]',
        '    allowRecipients: ["*@berkeley.edu"]',
        '',
      ].join('\n'),
    );
    const result = await runMain(file);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(file);
    expect(result.stderr).toContain('devices[0].allowFrom[0]');
    expect(result.stderr).toMatch(/too wide for a device without authentication/);
    expect(result.stdout).not.toContain('scanrelay.ready');
  });

  it('exits 78 for a file that does not exist', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-bad-config-'));
    const result = await runMain(join(dir, 'missing.yaml'));
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/missing\.yaml: \(root\): cannot read the config file \(ENOENT\)/);
  });
});
