/**
 * The scanrelay CLI against a real gateway over HTTP with a real TLS upstream stand-in (runCli in-process
 * for the many table/--json checks, the real command in a child process for exit codes, the remote URL
 * and token file, and `watch`), and check-config offline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { runCli, EXIT } from '../../src/cli/run.js';
import { useDeliveryScenario } from '../kit/delivery-scenario.js';
import { makeTempDir, startTestGateway, testRawConfig, waitFor, type TestGateway } from '../kit/gateway.js';
import { TEST_DEVICE, UPSTREAM_PASSWORD, sendToGateway } from '../kit/upstream.js';

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
    const changed = await cli(['device', 'set', 'copier-2f', '-r', '*@example.org', '--allow-from', 'any', '--max-size', '5MB', ...base]);
    expect(changed.code).toBe(EXIT.ok);
    expect(changed.stdout).toMatch(/^device copier-2f updated\n/);
    expect(changed.stdout).toMatch(/recipients\s+\*@example\.org\n/);
    expect(changed.stdout).toMatch(/allowed from\s+any address/);
    expect(changed.stdout).toMatch(/max size\s+5000000 bytes/);
    expect((await cli(['device', 'set', 'copier-2f', ...base])).code).toBe(EXIT.usage);
    expect((await cli(['device', 'set', 'file-scanner', '-r', '*@example.org', ...base])).code).toBe(EXIT.refused);
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
    expect(retried.stdout).toMatch(new RegExp(`retried ${queueId}: now (held|queued|delivering)`));
    const shown = await cli(['queue', 'show', queueId, '--json', ...base]);
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

/** The real command as a long-running child (watch): its output as it arrives, and its exit code. */
function cliChild(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH, SCANRELAY_CONFIG: '/nonexistent/gateway.yaml', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => {
    out.stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out.stderr += chunk.toString();
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return { child, out, exited };
}

async function wrongLogin(smtpPort: number, user: string): Promise<unknown> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, ignoreTLS: true, auth: { user, pass: 'wrong-password-1' } });
  try {
    return await transport.sendMail({ from: 'printer@example.org', to: 'desk@example.org', subject: 'x', text: 'x' });
  } catch (err) {
    return err;
  } finally {
    transport.close();
  }
}

describe('scanrelay CLI with a real TLS upstream', () => {
  const scenario = useDeliveryScenario();

  async function start(extra: Record<string, unknown> = {}) {
    const s = await scenario.start({ mode: 'tls' }, {}, { smtp: { authLockout: { maxFailures: 2, window: '10m', duration: '10m' } }, ...extra });
    const url = `http://127.0.0.1:${s.g.addresses.admin!.port}`;
    const base = ['--url', url, '--token', TOKEN];
    const json = async <T = Record<string, unknown>>(args: string[]): Promise<T> => {
      const result = await cli([...args, '--json', ...base]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(EXIT.ok);
      return JSON.parse(result.stdout) as T;
    };
    const stateOf = async (id: string) => (await json<{ state: string }>(['queue', 'show', id])).state;
    return { ...s, url, base, json, stateOf };
  }

  it('queue list/show/release/retry/delete/stats and log: tables, --json, filters and exit codes', async () => {
    const { g, up, base, json, stateOf } = await start();
    // The upstream refuses the account's password: the scan is held, nothing lost.
    up.failAlways('auth', 535, '5.7.8 Username and Password not accepted');
    const held = await sendToGateway(g.smtpPort, { to: 'desk@example.org', subject: 'Contract scan' });
    await waitFor(async () => (await stateOf(held)) === 'held', { what: 'scan held' });

    // queue list (postqueue -p): what still waits.
    const queue = await cli(['queue', 'list', ...base]);
    expect(queue.code).toBe(EXIT.ok);
    expect(queue.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+DEVICE\s+UPSTREAM\s+RECEIVED\s+SIZE\s+RCPT\s+ATTEMPTS\s+SUBJECT\s+OUTCOME$/);
    expect(queue.stdout).toMatch(
      new RegExp(`${held}\\s+held\\s+scanner-2f\\s+gmail-test\\s+\\d\\d:\\d\\d:\\d\\d\\s+\\S+ k?B\\s+1\\s+1\\s+Contract scan\\s+held: `),
    );
    expect(queue.stdout).toContain('1 of 1 shown');
    expect((await json<{ items: Array<{ id: string; state: string }> }>(['queue', 'list', '--state', 'held'])).items).toMatchObject([
      { id: held, state: 'held' },
    ]);

    // queue show: the envelope and why it is held; --json is the API's detail.
    const shown = await cli(['queue', 'show', held, ...base]);
    expect(shown.code).toBe(EXIT.ok);
    expect(shown.stdout).toMatch(/state\s+held/);
    expect(shown.stdout).toMatch(/to \(envelope\)\s+desk@example.org/);
    expect(shown.stdout).toMatch(/Subject:\s+Contract scan/);
    expect(shown.stdout).toMatch(/held because\s+\S/);
    expect(shown.stdout).toMatch(/recipients:\n\s+ADDRESS\s+STATE/);
    expect(await json(['queue', 'show', held])).toMatchObject({ id: held, device: 'scanner-2f', state: 'held' });
    const unknownId = 'aaaaaaaaa00000000';
    const missing = await cli(['queue', 'show', unknownId, ...base]);
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.stderr).toContain(unknownId);

    // upstream list / verify show the refusal in the upstream's own words; verify exits 1.
    const upstreams = await cli(['upstream', 'list', ...base]);
    expect(upstreams.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE\s+SERVER\s+SECURITY\s+ACCOUNT\s+WAITING\s+HELD/);
    expect(upstreams.stdout).toMatch(/gmail-test\s+auth-failed\s+127\.0\.0\.1:\d+\s+tls\s+scanner-account@example.edu\s+1\s+1/);
    const refused = await cli(['upstream', 'verify', 'gmail-test', ...base]);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.stdout).toMatch(/gmail-test: login \(connect, TLS, AUTH\) FAILED/);
    expect(refused.stdout).toMatch(/the upstream said: .*535/);
    const refusedJson = await cli(['upstream', 'verify', 'gmail-test', '--json', ...base]);
    expect(refusedJson.code).toBe(EXIT.refused);
    expect(JSON.parse(refusedJson.stdout)).toMatchObject({ ok: false, error: { responseCode: 535 } });

    // Release by ID (postsuper -H) is accepted; once the password works again, a passing verify sends it.
    up.clearFailures();
    expect((await cli(['queue', 'release', held, '--all-held', ...base])).code).toBe(EXIT.usage);
    expect((await cli(['queue', 'delete', ...base])).code).toBe(EXIT.usage);
    const released = await cli(['queue', 'release', held, ...base]);
    expect(released.code).toBe(EXIT.ok);
    expect(released.stdout).toMatch(new RegExp(`^released ${held}: now (queued|delivering|delivered|held)\\n$`));
    const verified = await cli(['upstream', 'verify', 'gmail-test', ...base]);
    expect(verified.code).toBe(EXIT.ok);
    expect(verified.stdout).toMatch(/gmail-test: login \(connect, TLS, AUTH\) OK via port \d+ \(tls\) in \d+ ms/);
    await waitFor(async () => (await stateOf(held)) === 'delivered', { what: 'released scan delivered' });
    expect(up.received).toHaveLength(1);
    const notHeld = await cli(['queue', 'release', held, unknownId, ...base]);
    expect(notHeld.code).toBe(EXIT.refused);
    expect(notHeld.stderr).toContain(`${held}: message '${held}' is delivered, not held`);
    expect(notHeld.stderr).toContain(unknownId);
    expect((await cli(['queue', 'release', unknownId, ...base])).code).toBe(EXIT.notFound);

    // log: everything kept, newest first, with the filters; queue list no longer shows delivered scans.
    const delivered = await sendToGateway(g.smtpPort, { to: 'desk@example.org', subject: 'Invoice scan' });
    await waitFor(async () => (await stateOf(delivered)) === 'delivered', { what: 'second scan delivered' });
    expect((await cli(['queue', 'list', ...base])).stdout).toContain('0 of 0 shown');
    const log = await cli(['log', ...base]);
    expect(log.stdout.split('\n')[0]).toMatch(/^RECEIVED\s+ID\s+DEVICE\s+STATE\s+UPSTREAM\s+FROM\s+SUBJECT\s+OUTCOME$/);
    expect(log.stdout).toMatch(new RegExp(`${delivered}\\s+scanner-2f\\s+delivered\\s+gmail-test\\s+printer@example.org\\s+Invoice scan\\s+delivered: 250`));
    expect(log.stdout).toMatch(new RegExp(`${held}\\s+scanner-2f\\s+delivered\\s+gmail-test\\s+printer@example.org\\s+Contract scan`));
    expect((await json<{ items: Array<{ id: string }> }>(['log'])).items.map((m) => m.id)).toEqual([delivered, held]);
    expect((await json<{ total: number }>(['log', '--state', 'held'])).total).toBe(0);
    expect((await json<{ total: number }>(['log', '--state', 'held,delivered', '--device', 'scanner-2f', '--upstream', 'gmail-test'])).total).toBe(2);
    expect((await json<{ total: number }>(['log', '--device', 'other-printer'])).total).toBe(0);
    expect((await json<{ total: number }>(['log', '--since', '2h'])).total).toBe(2);
    expect((await json<{ total: number }>(['log', '--since', '1s', '--until', '2020-01-01'])).total).toBe(0);
    const paged = await cli(['log', '--limit', '1', ...base]);
    // The message log pages with a cursor (stable while new scans arrive); following it gives the older one.
    const next = /next page: --cursor (\S+)/.exec(paged.stdout);
    expect(paged.stdout).toContain('1 of 2 shown (offset 0); next page: --cursor ');
    expect(paged.stdout).toContain(delivered);
    const older = await cli(['log', '--limit', '1', '--cursor', next![1], ...base]);
    expect(older.stdout).toContain(held);
    expect(older.stdout).not.toContain(delivered);
    const badTime = await cli(['log', '--since', 'last tuesday', ...base]);
    expect(badTime.code).toBe(EXIT.usage);
    expect(badTime.stderr).toContain('--since: "last tuesday" is not a time');

    const retried = await cli(['queue', 'retry', held, '--json', ...base]);
    expect(JSON.parse(retried.stdout)).toMatchObject({ action: 'retry', results: [{ id: held }] });

    // Upstream test / retry / show.
    const tested = await cli(['upstream', 'test', 'gmail-test', '--to', 'desk@example.org', ...base]);
    expect(tested.code).toBe(EXIT.ok);
    expect(tested.stdout).toMatch(/test message to desk@example.org OK/);
    await waitFor(() => up.received.length >= 3, { what: 'test message at the upstream' });
    expect((await cli(['upstream', 'test', 'gmail-test', ...base])).code).toBe(EXIT.usage);
    expect((await cli(['upstream', 'retry', 'gmail-test', ...base])).stdout).toMatch(
      /gmail-test: failure state and pause cleared; 0 held message\(s\) released/,
    );
    expect((await cli(['upstream', 'show', 'gmail-test', ...base])).stdout).toMatch(/state\s+unknown/); // retry forgot the state
    expect((await json<{ items: unknown[] }>(['upstream', 'list'])).items).toHaveLength(1);
    expect((await cli(['upstream', 'show', 'nope', ...base])).code).toBe(EXIT.notFound);

    // Delete (postsuper -d) and queue stats.
    await waitFor(async () => !['queued', 'delivering'].includes(await stateOf(held)), { what: 'retried scan settled' });
    const deleted = await cli(['queue', 'delete', delivered, ...base]);
    expect(deleted.code).toBe(EXIT.ok);
    expect(deleted.stdout).toBe(`deleted ${delivered}\n`);
    expect((await cli(['queue', 'show', delivered, ...base])).code).toBe(EXIT.notFound);
    const stats = await cli(['queue', 'stats', ...base]);
    expect(stats.stdout).toMatch(/^STATE\s+MESSAGES/);
    expect(stats.stdout).toMatch(/delivered\s+1/);
    expect((await json<{ counts: Record<string, number> }>(['queue', 'stats'])).counts.delivered).toBe(1);

    for (const secret of [TOKEN, UPSTREAM_PASSWORD, TEST_DEVICE.password]) expect(g.logs.join('\n')).not.toContain(secret);
  });

  it('lockout list/clear, reload (and a refused reload), stats', async () => {
    const { g, raw, base, json } = await start();
    expect((await cli(['lockout', 'list', ...base])).stdout).toBe('no address is locked out\n');
    for (let i = 0; i < 2; i++) expect(await wrongLogin(g.smtpPort, TEST_DEVICE.username)).toMatchObject({ code: 'EAUTH' });
    const locked = await cli(['lockout', 'list', ...base]);
    expect(locked.stdout).toMatch(/^ADDRESS\s+USERNAME\s+FAILURES\s+LOCKED UNTIL\n127\.0\.0\.1\s+/);
    expect((await json<{ items: Array<{ address: string }> }>(['lockout', 'list'])).items[0].address).toBe('127.0.0.1');
    const cleared = await cli(['lockout', 'clear', '127.0.0.1', ...base]);
    expect(cleared.code).toBe(EXIT.ok);
    expect(cleared.stdout).toContain('127.0.0.1 unlocked');
    expect((await cli(['lockout', 'clear', '127.0.0.1', ...base])).code).toBe(EXIT.notFound);
    expect((await cli(['lockout', 'clear', 'not-an-ip', ...base])).code).toBe(EXIT.refused);
    await sendToGateway(g.smtpPort, { to: 'desk@example.org' }); // unlocked: the printer gets in again

    // reload (postfix reload) reads the gateway's own file; a broken file is refused with exit 78.
    await writeFile(g.config.file, stringify(testRawConfig(g.dataDir, raw)));
    const reloaded = await cli(['reload', ...base]);
    expect(reloaded.code).toBe(EXIT.ok);
    expect(reloaded.stdout).toBe('configuration reloaded: 1 device(s), 1 upstream(s)\n');
    await writeFile(g.config.file, stringify(testRawConfig(g.dataDir, { ...raw, smtp: { port: 'not-a-port' } })));
    const broken = await cli(['reload', ...base]);
    expect(broken.code).toBe(EXIT.config);
    expect(broken.stderr).toContain('smtp.port');
    expect(JSON.parse((await cli(['reload', '--json', ...base])).stdout)).toMatchObject({ status: 400, code: 'SCANRELAY_CONFIG_INVALID' });

    // stats: per device (GET /api/stats, or the counts of an older gateway).
    const stats = await cli(['stats', ...base]);
    expect(stats.code).toBe(EXIT.ok);
    expect(stats.stdout).toMatch(/^DEVICE\s+/);
    expect(stats.stdout).toMatch(/scanner-2f\s+1\s+/);
    expect((await json<{ devices: Array<{ device: string }> }>(['stats'])).devices.map((d) => d.device)).toEqual(['scanner-2f']);
  });

  // Needs the store's additions to the admin API (contract A): hold, flush, bulk, subject/recipient
  // filters, attempts and hold reasons in the detail.
  it('hold, flush, bulk release by selection, subject and recipient filters, attempts (store API)', async () => {
    const { g, up, base, json, stateOf } = await start();
    up.failAlways('auth', 535, '5.7.8 Username and Password not accepted');
    const first = await sendToGateway(g.smtpPort, { to: 'desk@example.org', subject: 'Invoice March' });
    const second = await sendToGateway(g.smtpPort, { to: 'boss@example.org', subject: 'Contract' });
    await waitFor(async () => (await stateOf(first)) === 'held' && (await stateOf(second)) === 'held', { what: 'both held' });
    expect((await json<{ items: Array<{ id: string }> }>(['log', '--subject', 'invoice'])).items.map((m) => m.id)).toEqual([first]);
    expect((await json<{ items: Array<{ id: string }> }>(['log', '--recipient', 'BOSS@example.org'])).items.map((m) => m.id)).toEqual([second]);
    const shown = await cli(['queue', 'show', first, ...base]);
    expect(shown.stdout).toMatch(/held because\s+\S/);
    expect(shown.stdout).toMatch(/to fix\s+\S/);
    expect(shown.stdout).toMatch(/attempts:\n\s+AT\s+UPSTREAM\s+OUTCOME\s+REPLY\n.*gmail-test\s+held\s+.*535/);

    // "release every scan held for gmail-warren", here gmail-test: one bulk request.
    up.clearFailures();
    const released = await cli(['queue', 'release', '--all-held', '--upstream', 'gmail-test', ...base]);
    expect(released.code).toBe(EXIT.ok);
    expect(released.stdout).toContain('2 of 2 matching message(s) released');
    await waitFor(() => up.received.length === 2, { what: 'both delivered' });

    // hold by ID (postsuper -h), with a note; flush (postqueue -f).
    up.failNext('rcpt', 451, '4.3.0 try later');
    const third = await sendToGateway(g.smtpPort, { to: 'desk@example.org', subject: 'Later' });
    await waitFor(async () => (await stateOf(third)) === 'deferred', { what: 'deferred' });
    const heldByAdmin = await cli(['queue', 'hold', third, '--note', 'checking with the sender', ...base]);
    expect(heldByAdmin.stdout).toBe(`held ${third}: now held\n`);
    expect((await cli(['queue', 'hold', '--all-held', ...base])).code).toBe(EXIT.usage);
    expect((await cli(['queue', 'release', third, ...base])).code).toBe(EXIT.ok);
    const flushed = await cli(['queue', 'flush', ...base]);
    expect(flushed.code).toBe(EXIT.ok);
    expect(flushed.stdout).toMatch(/^\d+ deferred message\(s\) due now/);
    await waitFor(async () => (await stateOf(third)) === 'delivered', { what: 'third delivered' });
    const bulkJson = await json<{ matched: number; changed: number }>(['queue', 'delete', '--all', '--state', 'delivered']);
    expect(bulkJson).toMatchObject({ matched: 3, changed: 3 });
  });

  // Needs the printer doctor stream (contract C, GET /api/watch) and session.step events (contract B).
  it('watch prints each SMTP step as it arrives, a failed AUTH with its explanation, then the delivery', async () => {
    const { g, up, url } = await start({ smtp: { authLockout: { maxFailures: 20 } } });
    const tokenDir = await makeTempDir();
    try {
      await writeFile(join(tokenDir, 'token'), `${TOKEN}\n`);
      const watch = cliChild(['watch', TEST_DEVICE.name, '--sessions', '2'], { SCANRELAY_ADMIN_URL: url, SCANRELAY_ADMIN_TOKEN_FILE: join(tokenDir, 'token') });
      try {
        await waitFor(
          () => {
            if (watch.child.exitCode !== null) throw new Error(`watch exited ${watch.child.exitCode}: ${watch.out.stderr}`);
            return watch.out.stderr.includes(`watching ${TEST_DEVICE.name}`);
          },
          { timeoutMs: 60_000, what: 'watch to start' },
        );
        expect(await wrongLogin(g.smtpPort, TEST_DEVICE.username)).toMatchObject({ code: 'EAUTH' });
        // The failed AUTH shows while the watch runs, explained, before anything else is sent.
        await waitFor(() => /FAIL\s+auth\s+.*\n\s+problem: .+\n\s+fix:\s+.+/.test(watch.out.stdout), { what: `the failed auth: ${watch.out.stdout}` });
        expect(watch.out.stdout).toMatch(/ok\s+connect\s+/);
        expect(watch.out.stdout).not.toContain('wrong-password-1');
        const id = await sendToGateway(g.smtpPort, { to: 'desk@example.org', subject: 'doctor' });
        expect(await watch.exited).toBe(EXIT.ok);
        expect(watch.out.stdout).toMatch(/ok\s+auth\s+/);
        expect(watch.out.stdout).toMatch(new RegExp(`ok\\s+queued\\s+.*${id}`));
        expect(watch.out.stdout).toMatch(new RegExp(`upstream\\s+ok\\s+delivered\\s+message ${id} via gmail-test: 250`));
        expect(up.received).toHaveLength(1);
        expect(watch.out.stdout).not.toContain(TEST_DEVICE.password);
      } finally {
        watch.child.kill('SIGKILL');
      }
      const unknown = await cliProcess(['watch', 'no-such-printer', '--url', url, '--token', TOKEN]);
      expect(unknown.code).toBe(EXIT.notFound);
    } finally {
      await rm(tokenDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('the real scanrelay command against a remote admin URL', () => {
  let gw: TestGateway | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('takes the URL and a token file from the environment or options; exits 66, 77, 69 with the reason', async () => {
    gw = await startTestGateway({ devices: [{ ...TEST_DEVICE }] });
    dir = await makeTempDir();
    const url = `http://127.0.0.1:${gw.addresses.admin!.port}`;
    const tokenFile = join(dir, 'admin-tokens.txt');
    await writeFile(tokenFile, `\n${TOKEN}\nsome-other-token-0123456789\n`, { mode: 0o600 });
    const env = { SCANRELAY_ADMIN_URL: url, SCANRELAY_ADMIN_TOKEN_FILE: tokenFile };

    const [list, asJson, notFound, badToken, noTokenFile] = await Promise.all([
      cliProcess(['device', 'list'], env),
      cliProcess(['device', 'show', TEST_DEVICE.name, '--json', '--url', url, '--token-file', tokenFile]),
      cliProcess(['device', 'show', 'nope'], env),
      cliProcess(['device', 'list'], { SCANRELAY_ADMIN_URL: url, SCANRELAY_ADMIN_TOKEN: 'wrong-token-0123456789' }),
      cliProcess(['queue', 'list', '--token-file', join(dir, 'missing')], env),
    ]);
    expect(list.code).toBe(EXIT.ok);
    expect(list.stdout).toMatch(/^NAME\s+MANAGED\s+ENABLED\s+STATE/);
    expect(list.stdout).toMatch(/scanner-2f\s+config\s+yes\s+Not connected/);
    expect(asJson.code).toBe(EXIT.ok);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ name: 'scanner-2f', managedBy: 'config' });
    expect(notFound.code).toBe(EXIT.notFound);
    expect(notFound.stderr).toContain("device 'nope' not found");
    expect(badToken.code).toBe(EXIT.unauthorized);
    expect(badToken.stderr).toContain('SCANRELAY_ADMIN_UNAUTHORIZED');
    expect(badToken.stderr).not.toContain('wrong-token-0123456789');
    expect(noTokenFile.code).toBe(EXIT.unauthorized);
    expect(noTokenFile.stderr).toContain(`cannot read the token file ${join(dir, 'missing')} (ENOENT)`);

    await gw.stop();
    gw = undefined;
    const down = await cliProcess(['device', 'list'], env);
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.stderr).toContain(`cannot reach the admin API at ${url}`);
  }, 120_000);
});
