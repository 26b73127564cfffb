/**
 * The scanrelay CLI against a real gateway over HTTP (runCli in-process, plus the real command in a child
 * process), and check-config offline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { runCli, EXIT } from '../../src/cli/run.js';
import { makeTempDir, startTestGateway, testRawConfig, type TestGateway } from '../kit/gateway.js';

const TOKEN = 'test-admin-token-0123456789';
const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: { SCANRELAY_CONFIG: '/nonexistent/gateway.yaml', ...env },
  });
  return { code, stdout, stderr };
}

/** The real command, as `npm run cli` runs it. */
async function cliProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH, SCANRELAY_CONFIG: '/nonexistent/gateway.yaml', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('scanrelay CLI', () => {
  let gw: TestGateway | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('adds, lists, shows, rotates, disables and enables devices, and lists and retries the queue', async () => {
    gw = await startTestGateway({
      devices: [{ name: 'file-scanner', username: 'file-scanner', password: 'file-scanner-pw', allowRecipients: ['*@example.org'] }],
    });
    const url = `http://127.0.0.1:${gw.addresses.admin!.port}`;
    const base = ['--url', url, '--token', TOKEN];

    const added = await cli(['device', 'add', 'copier-2f', '-r', '*@example.org', '-r', 'desk@example.net', '--allow-from', '127.0.0.1', ...base]);
    expect(added.code).toBe(EXIT.ok);
    expect(added.stdout).toContain('device copier-2f created');
    expect(added.stdout).toMatch(/SMTP Server Address\s+127\.0\.0\.1/);
    expect(added.stdout).toMatch(new RegExp(`SMTP Server Port Number\\s+${gw.smtpPort}`));
    expect(added.stdout).toMatch(/Email Send Authentication\s+SMTP AUTH \(Auto\)/);
    const login = /Login Name\s+(\S+)/.exec(added.stdout)![1];
    const password = /Password\s+(\S+)/.exec(added.stdout)![1];
    expect(password).toMatch(/^[A-Za-z0-9]{16,31}$/);

    // The printed values work for a real SMTP login.
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.smtpPort,
      ignoreTLS: true,
      auth: { user: login, pass: password },
      authMethod: 'CRAM-MD5',
    });
    const info = await transport.sendMail({ from: 'copier@example.org', to: 'desk@example.org', subject: 'from the CLI test', text: 'page' });
    transport.close();
    const queueId = /queued as (\w+)/.exec(info.response)![1];

    const list = await cli(['device', 'list', ...base]);
    expect(list.code).toBe(EXIT.ok);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+MANAGED\s+ENABLED\s+STATE\s+RECEIVED/);
    expect(lines.find((l) => l.startsWith('copier-2f'))).toMatch(/copier-2f\s+api\s+yes\s+Unable to connect\s+1\s+0\s+0\s+1/);
    expect(lines.find((l) => l.startsWith('file-scanner'))).toMatch(/file-scanner\s+config\s+yes\s+Not connected/);
    expect(list.stdout).not.toContain(password);

    const json = await cli(['device', 'list', '--json', ...base]);
    expect(JSON.parse(json.stdout).items).toHaveLength(2);
    const show = await cli(['device', 'show', 'copier-2f', ...base]);
    expect(show.stdout).toMatch(/login name\s+copier-2f\./);
    expect(show.stdout).toMatch(/allowed from\s+127\.0\.0\.1/);

    const rotated = await cli(['device', 'rotate', 'copier-2f', ...base]);
    expect(rotated.code).toBe(EXIT.ok);
    const newPassword = /Password\s+(\S+)/.exec(rotated.stdout)![1];
    expect(newPassword).not.toBe(password);
    const chosen = await cli(['device', 'rotate', 'copier-2f', '--password', 'Chosen-Password-9', ...base]);
    expect(chosen.stdout).toMatch(/Password\s+Chosen-Password-9/);

    const disabled = await cli(['device', 'disable', 'copier-2f', ...base]);
    expect(disabled.stdout).toContain('device copier-2f disabled (state: Stop)');
    expect((await cli(['device', 'enable', 'copier-2f', ...base])).stdout).toContain('enabled');
    const readOnly = await cli(['device', 'disable', 'file-scanner', ...base]);
    expect(readOnly.code).toBe(EXIT.refused);
    expect(readOnly.stderr).toContain('SCANRELAY_DEVICE_READ_ONLY');
    const missing = await cli(['device', 'show', 'nope', ...base]);
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.stderr).toContain("device 'nope' not found");

    const queue = await cli(['queue', 'list', '--state', 'held', '--device', 'copier-2f', ...base]);
    expect(queue.code).toBe(EXIT.ok);
    expect(queue.stdout).toMatch(new RegExp(`${queueId}\\s+held\\s+copier-2f`));
    expect(queue.stdout).toContain('1 of 1 shown');
    expect((await cli(['queue', 'list', '--state', 'delivered', ...base])).stdout).toContain('0 of 0 shown');
    const retried = await cli(['queue', 'retry', queueId, ...base]);
    expect(retried.code).toBe(EXIT.ok);
    expect(retried.stdout).toMatch(new RegExp(`message ${queueId} is (queued|delivering)`));
    const shown = await cli(['queue', 'show', queueId, ...base]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: queueId, device: 'copier-2f' });
    const badState = await cli(['queue', 'list', '--state', 'lost', ...base]);
    expect(badState.code).toBe(EXIT.refused);
    expect(badState.stderr).toContain('querystring.state');

    const removed = await cli(['device', 'remove', 'copier-2f', ...base]);
    expect(removed.stdout).toContain('device copier-2f removed');
    expect(gw.logs.join('\n')).not.toContain(newPassword);
    expect(gw.logs.join('\n')).not.toContain(TOKEN);
  });

  it('finds the URL and token from the environment and the generated token file, and explains refusals', async () => {
    gw = await startTestGateway({ admin: { host: '127.0.0.1', port: 0, tokens: [] } });
    const url = `http://127.0.0.1:${gw.addresses.admin!.port}`;
    const generated = gw.gateway.adminTokens()[0];
    expect(generated).toBeTruthy();

    const fromFile = await cli(['device', 'list', '--data-dir', gw.dataDir], { SCANRELAY_ADMIN_URL: url });
    expect(fromFile.code).toBe(EXIT.ok);
    expect((await cli(['device', 'list'], { SCANRELAY_ADMIN_URL: url, SCANRELAY_DATA_DIR: gw.dataDir })).code).toBe(EXIT.ok);
    expect((await cli(['device', 'list'], { SCANRELAY_ADMIN_URL: url, SCANRELAY_ADMIN_TOKEN: generated })).code).toBe(EXIT.ok);

    const wrong = await cli(['device', 'list', '--url', url, '--token', 'wrong-token-0123456789']);
    expect(wrong.code).toBe(EXIT.unauthorized);
    expect(wrong.stderr).toContain('SCANRELAY_ADMIN_UNAUTHORIZED');
    expect(wrong.stderr).not.toContain('wrong-token-0123456789');
    const none = await cli(['device', 'list', '--url', url, '--data-dir', join(gw.dataDir, 'elsewhere')]);
    expect(none.code).toBe(EXIT.unauthorized);

    await gw.stop();
    gw = undefined;
    const down = await cli(['device', 'list', '--url', url, '--token', TOKEN]);
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.stderr).toContain(`cannot reach the admin API at ${url}`);

    expect((await cli(['device', 'add', 'x', '--url', url])).code).toBe(EXIT.usage);
    expect((await cli(['device', 'fly'])).code).toBe(EXIT.usage);
    expect((await cli(['launch'])).code).toBe(EXIT.usage);
    expect((await cli(['device', 'list', '--no-such-option'])).code).toBe(EXIT.usage);
    expect((await cli([])).code).toBe(EXIT.usage);
    expect((await cli(['--help'])).code).toBe(EXIT.ok);
  });

  it('check-config validates offline, masks secrets and exits 78 naming file, key and problem', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    const good = join(dir, 'good.yaml');
    const raw = testRawConfig(join(dir, 'data'), {
      secretKey: 'k'.repeat(40),
      admin: { tokens: ['admin-token-value-0123456789'] },
      devices: [{ name: 'copier', username: 'copier', password: 'device-password-1', allowRecipients: ['*@example.org'] }],
      upstreams: [{ name: 'gmail', host: 'smtp.gmail.com', user: 'scans@example.org', passwordFile: join(dir, 'app-password') }],
    });
    await mkdir(join(dir, 'data'), { recursive: true });
    await writeFile(join(dir, 'app-password'), 'gmail-app-password-value\n');
    await writeFile(good, stringify(raw));

    const ok = await cli(['check-config', '--config', good]);
    expect(ok.code).toBe(EXIT.ok);
    expect(ok.stdout).toContain(`# ${good}: valid`);
    expect(ok.stdout).toMatch(/maxMessageSize: 25000000/);
    expect(ok.stdout).toMatch(/password: "?\*{8}"?/);
    expect(ok.stderr).toContain('configuration OK: 1 device(s), 1 upstream(s)');
    for (const secret of ['device-password-1', 'gmail-app-password-value', 'admin-token-value-0123456789', 'k'.repeat(40)]) {
      expect(ok.stdout).not.toContain(secret);
    }
    const asJson = await cli(['check-config', '--config', good, '--json']);
    const parsed = JSON.parse(asJson.stdout);
    expect(parsed.upstreams[0]).toMatchObject({ name: 'gmail', host: 'smtp.gmail.com', password: '********', port: 465 });
    expect(parsed.admin.tokens).toEqual(['********']);

    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      stringify({ ...raw, devices: [{ name: 'copier', username: 'copier', password: 'p'.repeat(40), allowRecipients: ['*@example.org'] }] }),
    );
    const refused = await cli(['check-config', '--config', bad]);
    expect(refused.code).toBe(EXIT.config);
    expect(refused.stderr).toMatch(new RegExp(`file\\s+${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    expect(refused.stderr).toMatch(/key\s+devices\[0\]\.password/);
    expect(refused.stderr).toMatch(/problem\s+\S/);
    expect(refused.stderr).not.toContain('p'.repeat(40));

    // The real command as installed: same exit codes from a child process.
    const child = await cliProcess(['check-config', '--config', bad]);
    expect(child.code).toBe(EXIT.config);
    expect(child.stderr).toContain('devices[0].password');
    const missing = await cliProcess(['check-config', '--config', join(dir, 'missing.yaml')]);
    expect(missing.code).toBe(EXIT.config);
    expect(missing.stderr).toContain('cannot read the config file');
  });
});
