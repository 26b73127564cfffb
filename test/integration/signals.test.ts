/**
 * The process-level promises of src/main.ts: SIGHUP reloads the config file without dropping a
 * connection, a broken file on SIGHUP keeps the running config; a store found damaged after a kill -9
 * stops the process (exit 1) with the steps to recover.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startGatewayProcess, writeGatewayConfig, type GatewayProcess } from '../kit/gateway-process.js';
import { makeTempDir } from '../kit/gateway.js';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';
import { damageLeafPage, leaveUncleanStop } from '../kit/store-damage.js';

const FIRST = { name: 'first', username: 'first-login', password: 'first-password-1', allowRecipients: ['*@example.org'] };
const SECOND = { name: 'second', username: 'second-login', password: 'second-password-2', allowRecipients: ['*@example.org'] };

function config(dataDir: string, devices: unknown[]) {
  return { dataDir, smtp: { host: '127.0.0.1', port: 0 }, admin: { enabled: false }, devices };
}

describe('signals of the gateway process', () => {
  let gateway: GatewayProcess | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await gateway?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
    gateway = dir = undefined;
  });

  it('SIGHUP adds a device from the edited file while an open session carries on; a broken file is refused and the old config kept', async () => {
    dir = await makeTempDir();
    const file = await writeGatewayConfig(dir, config(join(dir, 'data'), [FIRST]));
    gateway = await startGatewayProcess(file);

    // A session opened before the reload, already authenticated.
    const { client: open } = await RawSmtpClient.open(gateway.smtpPort);
    await open.command('EHLO before.reload');
    expect((await open.command(`AUTH PLAIN ${plainAuth(FIRST.username, FIRST.password)}`)).code).toBe(235);

    const login = async (device: typeof FIRST) => {
      const { client } = await RawSmtpClient.open(gateway!.smtpPort);
      await client.command('EHLO x');
      const code = (await client.command(`AUTH PLAIN ${plainAuth(device.username, device.password)}`)).code;
      client.close();
      return code;
    };
    expect(await login(SECOND)).toBe(535);

    await writeFile(file, stringify(config(join(dir, 'data'), [FIRST, SECOND])));
    gateway.child.kill('SIGHUP');
    await gateway.waitForLog((entry) => entry.msg === 'config.reloaded');
    expect(await login(SECOND)).toBe(235);

    // The session from before the reload was not dropped.
    expect((await open.command('MAIL FROM:<scanner@example.org>')).code).toBe(250);
    expect((await open.command('RCPT TO:<inbox@example.org>')).code).toBe(250);
    open.close();

    await writeFile(file, 'devices: [ { name: broken');
    gateway.child.kill('SIGHUP');
    const rejected = await gateway.waitForLog((entry) => entry.msg === 'config.reload.rejected');
    expect(String(rejected.err)).toMatch(/gateway\.yaml/);
    expect(await login(SECOND)).toBe(235);
  });

  it('after a kill -9 opens SMTP at once, checks the store behind it, and exits 1 with the steps to recover when a page is damaged', async () => {
    dir = await makeTempDir();
    const dataDir = join(dir, 'data');
    const file = await writeGatewayConfig(dir, config(dataDir, [FIRST]));
    const crashed = await startGatewayProcess(file);
    await crashed.kill();
    const path = join(dataDir, 'store.db');
    await damageLeafPage(path, 'message_subjects_data');
    await leaveUncleanStop(path);

    gateway = await startGatewayProcess(file);
    const corrupt = await gateway.waitForLog((entry) => String(entry.msg).startsWith('store.corrupt'));
    expect(corrupt.recover).toEqual(expect.arrayContaining([expect.stringMatching(/\.recover/)]));
    expect(await gateway.exited).toBe(1);
    // The gateway was ready (SMTP open) before the check answered.
    const order = gateway.logs.map((entry) => String(entry.msg));
    expect(order.indexOf('scanrelay.ready')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('scanrelay.ready')).toBeLessThan(order.findIndex((msg) => msg.startsWith('store.corrupt')));
  });
});
