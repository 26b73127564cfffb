/** API-created device secrets under a changed secret key: refused logins with a reason, never a crash. */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceRegistry } from '../../../src/devices/index.js';

describe('DeviceRegistry with a changed secret key', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses the old password, reports the device as undecryptable, and works again after a rotation', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-secret-key-'));
    const limits = { smtpMaxMessageSize: 25_000_000, upstreams: new Map<string, number>() };
    const first = new DeviceRegistry({ dataDir, secretKey: 'first-key-0123456789abcdef0123456789', configDevices: [], limits });
    await first.open();
    const { device, password } = await first.create({ name: 'copier', allowRecipients: ['*@example.org'] });
    expect(first.verifyPassword(device, password!)).toBe(true);

    const second = new DeviceRegistry({ dataDir, secretKey: 'other-key-0123456789abcdef0123456789', configDevices: [], limits });
    await second.open();
    const reopened = second.require('copier');
    expect(second.verifyPassword(reopened, password!)).toBe(false);
    expect(second.challengeSecret(reopened)).toBeUndefined();
    expect(second.undecryptableDevices()).toEqual(['copier']);

    const rotated = await second.rotatePassword('copier');
    expect(second.verifyPassword(second.require('copier'), rotated.password)).toBe(true);
    expect(second.undecryptableDevices()).toEqual([]);
  });
});
