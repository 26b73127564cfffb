/**
 * The device rulebook through the admin API and a config reload: public-suffix wildcards refused in both,
 * allowSenders created, shown, changed and removed through the API and on the one-time setup sheet, and
 * file and API devices held to the same password rule.
 */
import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startTestGateway, testRawConfig, type TestGateway } from '../kit/gateway.js';

const TOKEN = 'test-admin-token-0123456789';
const FILE_DEVICE = { name: 'file-scanner', username: 'file-scanner', password: 'file-device-pw-1', allowRecipients: ['*@example.org'] };

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

async function call(method: string, url: string, body?: unknown) {
  const admin = gw?.gateway.admin;
  if (!admin) throw new Error('admin API not started');
  const answer = await admin.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });
  return { status: answer.statusCode, json: answer.body ? JSON.parse(answer.body) : undefined };
}

describe('public-suffix wildcards', () => {
  it.each(['*@*.co.uk', '*@*.com.au', '*@*.github.io', '*@*.com'])('refuses %j on create and patch, for recipients and senders', async (pattern) => {
    gw = await startTestGateway();
    for (const field of ['allowRecipients', 'allowSenders']) {
      const body = { name: 'api-scanner', allowRecipients: ['ops@example.org'], [field]: ['ops@example.org', pattern] };
      const created = await call('POST', '/api/devices', body);
      expect(created.status, field).toBe(400);
      expect(created.json.message).toContain(`${field}[1]`);
      expect(created.json.message).toMatch(/public suffix|invalid domain/);
    }
    expect((await call('POST', '/api/devices', { name: 'api-scanner', allowRecipients: ['*@*.example.co.uk'] })).status).toBe(201);
    const patched = await call('PATCH', '/api/devices/api-scanner', { allowRecipients: [pattern] });
    expect(patched.status).toBe(400);
    expect((await call('GET', '/api/devices/api-scanner')).json.allowRecipients).toEqual(['*@*.example.co.uk']);
  });

  it('refuses them on reload and keeps the running config', async () => {
    gw = await startTestGateway({ devices: [FILE_DEVICE] });
    const raw = testRawConfig(gw.dataDir, { devices: [{ ...FILE_DEVICE, allowRecipients: ['*@*.co.uk'] }] });
    await writeFile(gw.config.file, stringify(raw));
    const refused = await call('POST', '/api/reload');
    expect(refused.status).toBe(400);
    expect(refused.json.message).toContain('devices[0].allowRecipients[0]: "*@*.co.uk" covers every domain under the public suffix "co.uk"');
    expect((await call('GET', '/api/devices/file-scanner')).json.allowRecipients).toEqual(['*@example.org']);
  });
});

describe('allowSenders through the API', () => {
  it('is created, shown, on the setup sheet, changed, removed (null = any sender again) and validated', async () => {
    gw = await startTestGateway({ devices: [{ ...FILE_DEVICE, allowSenders: ['Scanner-2F@Example.org', '*@scans.example.org'] }] });
    expect((await call('GET', '/api/devices/file-scanner')).json.allowSenders).toEqual(['scanner-2f@example.org', '*@scans.example.org']);

    const created = await call('POST', '/api/devices', { name: 'api-scanner', allowRecipients: ['*@example.org'], allowSenders: ['Scans@Example.org'] });
    expect(created.status).toBe(201);
    expect(created.json.device.allowSenders).toEqual(['scans@example.org']);
    expect(created.json.printerSetup.senderAddresses).toEqual(['scans@example.org']);
    const device = gw.gateway.devices.require('api-scanner');
    expect(gw.gateway.devices.isSenderAllowed(device, 'SCANS@example.org')).toBe(true);
    expect(gw.gateway.devices.isSenderAllowed(device, 'ceo@bank.example')).toBe(false);

    expect((await call('PATCH', '/api/devices/api-scanner', { allowSenders: ['*@scans.example.org'] })).json.allowSenders).toEqual(['*@scans.example.org']);
    const any = await call('PATCH', '/api/devices/api-scanner', { allowSenders: null });
    expect(any.status).toBe(200);
    expect(any.json.allowSenders).toBeUndefined();
    expect(gw.gateway.devices.isSenderAllowed(gw.gateway.devices.require('api-scanner'), 'ceo@bank.example')).toBe(true);

    for (const allowSenders of [[], ['*@*'], ['not an address']]) {
      const refused = await call('PATCH', '/api/devices/api-scanner', { allowSenders });
      expect(refused.status, JSON.stringify(allowSenders)).toBe(400);
      expect(refused.json.message).toContain('allowSenders');
    }
    const withoutSenders = await call('POST', '/api/devices', { name: 'api-scanner-2', allowRecipients: ['*@example.org'] });
    expect(withoutSenders.json.device.allowSenders).toBeUndefined();
    expect(withoutSenders.json.printerSetup.senderAddresses).toBeUndefined();
  });
});

describe('one password rule for file and API devices', () => {
  it('refuses 7 characters from both and takes 8 from both', async () => {
    gw = await startTestGateway({ devices: [FILE_DEVICE] });
    expect((await call('POST', '/api/devices', { name: 'a', allowRecipients: ['*@example.org'], password: 'seven-7' })).status).toBe(400);
    expect((await call('POST', '/api/devices', { name: 'a', allowRecipients: ['*@example.org'], password: 'eight-88' })).status).toBe(201);
    await writeFile(gw.config.file, stringify(testRawConfig(gw.dataDir, { devices: [{ ...FILE_DEVICE, password: 'seven-7' }] })));
    const refused = await call('POST', '/api/reload');
    expect(refused.json.message).toMatch(/devices\[0\]\.password: .*8/);
    expect(refused.json.message).not.toContain('seven-7');
  });
});
