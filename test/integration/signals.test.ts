/**
 * The process-level promises of src/main.ts: SIGHUP reloads the config file without dropping a
 * connection, a broken file on SIGHUP keeps the running config.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startGatewayProcess, writeGatewayConfig, type GatewayProcess } from '../kit/gateway-process.js';
import { makeTempDir } from '../kit/gateway.js';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';

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
});
