/** DeviceRegistry over a real temp dataDir: lookups used by SMTP AUTH and source pinning, API devices. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceRegistry, hashPassword } from '../../../src/devices/index.js';
import type { DeviceConfig } from '../../../src/config/index.js';

const config = (extra: Partial<DeviceConfig> & { name: string }): DeviceConfig => ({
  auth: 'password',
  allowFrom: [],
  allowRecipients: ['*@berkeley.edu'],
  maxMessageSize: 25_000_000,
  enabled: true,
  ...extra,
});

const CONFIG_DEVICES: DeviceConfig[] = [
  config({ name: 'warren-2f-scanner', username: 'warren-2f', password: 'plain-secret-1', allowFrom: ['10.20.0.0/16'] }),
  config({ name: 'hashed', username: 'hashed', passwordHash: hashPassword('hashed-secret-2') }),
  config({ name: 'legacy-copier', auth: 'none', allowFrom: ['10.20.5.17/32'] }),
  config({ name: 'off-copier', auth: 'none', allowFrom: ['10.20.5.18/32'], enabled: false }),
];

describe('DeviceRegistry', () => {
  let dataDir: string;
  const SECRET_KEY = 'test-secret-key-0123456789abcdef';
  const limits = { smtpMaxMessageSize: 25_000_000, upstreams: new Map([['gmail-warren', 10_000_000]]) };

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-devices-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  async function open(): Promise<DeviceRegistry> {
    const registry = new DeviceRegistry({ dataDir, secretKey: SECRET_KEY, configDevices: CONFIG_DEVICES, limits });
    await registry.open();
    return registry;
  }

  it('finds devices by login case-insensitively', async () => {
    const registry = await open();
    expect(registry.findByUsername('WARREN-2F')?.name).toBe('warren-2f-scanner');
    expect(registry.findByUsername('nobody')).toBeUndefined();
    expect(registry.findByUsername('')).toBeUndefined();
  });

  it('finds an enabled auth: none device by its pinned address only', async () => {
    const registry = await open();
    expect(registry.findUnauthenticatedByAddress('10.20.5.17')?.name).toBe('legacy-copier');
    expect(registry.findUnauthenticatedByAddress('::ffff:10.20.5.17')?.name).toBe('legacy-copier');
    expect(registry.findUnauthenticatedByAddress('10.20.5.18')).toBeUndefined(); // disabled
    expect(registry.findUnauthenticatedByAddress('10.20.9.9')).toBeUndefined(); // only password devices there
  });

  it('checks allowFrom, with no allowFrom meaning anywhere', async () => {
    const registry = await open();
    expect(registry.isAllowedFrom(registry.require('warren-2f-scanner'), '10.20.1.1')).toBe(true);
    expect(registry.isAllowedFrom(registry.require('warren-2f-scanner'), '192.168.1.1')).toBe(false);
    expect(registry.isAllowedFrom(registry.require('hashed'), '192.168.1.1')).toBe(true);
  });

  it('verifies plaintext and hashed passwords; only plaintext gives a CRAM-MD5 secret', async () => {
    const registry = await open();
    const plain = registry.require('warren-2f-scanner');
    const hashed = registry.require('hashed');
    expect(registry.verifyPassword(plain, 'plain-secret-1')).toBe(true);
    expect(registry.verifyPassword(plain, 'plain-secret-2')).toBe(false);
    expect(registry.verifyPassword(hashed, 'hashed-secret-2')).toBe(true);
    expect(registry.verifyPassword(hashed, 'plain-secret-1')).toBe(false);
    expect(registry.verifyPassword(registry.require('legacy-copier'), '')).toBe(false);
    expect(registry.challengeSecret(plain)).toBe('plain-secret-1');
    expect(registry.challengeSecret(hashed)).toBeUndefined();
    expect(plain.supportsChallengeAuth).toBe(true);
    expect(hashed.supportsChallengeAuth).toBe(false);
    expect(JSON.stringify(registry.list())).not.toMatch(/plain-secret|scrypt\$/);
  });

  it('matches recipients against the device rules', async () => {
    const registry = await open();
    const device = registry.require('warren-2f-scanner');
    expect(registry.isRecipientAllowed(device, 'Dean@Berkeley.edu')).toBe(true);
    expect(registry.isRecipientAllowed(device, 'x@gmail.com')).toBe(false);
  });

  it('keeps API-created devices encrypted on disk and usable after a restart', async () => {
    const first = await open();
    const { device, password } = await first.create({ name: 'api-scanner', allowRecipients: ['ops@example.org'], upstream: 'gmail-warren' });
    expect(password).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(device).toMatchObject({ managedBy: 'api', maxMessageSize: 10_000_000 - 2048, supportsChallengeAuth: true });
    const onDisk = await readFile(join(dataDir, 'devices.json'), 'utf8');
    expect(onDisk).not.toContain(password!);

    const second = await open();
    const reloaded = second.findByUsername(device.username!);
    expect(reloaded?.name).toBe('api-scanner');
    expect(second.verifyPassword(reloaded!, password!)).toBe(true);
    expect(second.challengeSecret(reloaded!)).toBe(password);
  });

  it('refuses unsafe or clashing API devices', async () => {
    const registry = await open();
    await expect(registry.create({ name: 'open', allowRecipients: ['*@*'] })).rejects.toThrow(/allowRecipients\[0\]/);
    await expect(registry.create({ name: 'wide', auth: 'none', allowFrom: ['10.0.0.0/8'], allowRecipients: ['*@x.org'] })).rejects.toThrow(/too wide/);
    await expect(registry.create({ name: 'warren-2f-scanner', allowRecipients: ['*@x.org'] })).rejects.toThrow(/already exists/);
    await expect(registry.create({ name: 'dup-login', username: 'Warren-2F', allowRecipients: ['*@x.org'] })).rejects.toThrow(/already in use/);
    await expect(registry.create({ name: 'long-pw', password: 'p'.repeat(32), allowRecipients: ['*@x.org'] })).rejects.toThrow(/8-31/);
    await expect(registry.update('warren-2f-scanner', { enabled: false })).rejects.toThrow(/config file/);
  });
});
