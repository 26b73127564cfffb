/** The device rulebook: one check for file and API devices, every problem with the field at fault. */
import { describe, expect, it } from 'vitest';
import { checkDevice, type DeviceRuleInput } from '../../../src/devices/rules.js';

const rcpt = ['*@berkeley.edu'];
const none = (over: Partial<DeviceRuleInput>): DeviceRuleInput => ({ name: 'copier', auth: 'none', allowRecipients: rcpt, ...over });
const pw = (over: Partial<DeviceRuleInput>): DeviceRuleInput => ({
  name: 'scanner',
  auth: 'password',
  username: 'scanner-2f',
  password: 'eight-ch',
  allowRecipients: rcpt,
  ...over,
});
const fields = (device: DeviceRuleInput) => checkDevice(device).map((p) => p.field);

describe('checkDevice', () => {
  it('accepts a pinned auth: none device and a password device without pinning', () => {
    expect(checkDevice(none({ allowFrom: ['10.20.5.17/32'] }))).toEqual([]);
    expect(checkDevice(none({ allowFrom: ['10.20.5.16/29'] }))).toEqual([]);
    expect(checkDevice(pw({}))).toEqual([]);
    expect(checkDevice(pw({ allowFrom: ['0.0.0.0/0'] }))).toEqual([]);
  });

  it('refuses an unsafe device with the field at fault', () => {
    expect(fields(none({}))).toEqual(['allowFrom']);
    expect(fields(none({ allowFrom: [] }))).toEqual(['allowFrom']);
    expect(checkDevice(none({ allowFrom: ['10.20.5.17', '10.20.5.0/28'] }))).toEqual([{ field: 'allowFrom[1]', problem: expect.stringMatching(/too wide/) }]);
    expect(fields(none({ allowFrom: ['fd00::/120'] }))).toEqual(['allowFrom[0]']);
    expect(fields(pw({ allowFrom: ['nonsense'] }))).toEqual(['allowFrom[0]']);
    expect(fields(pw({ allowRecipients: undefined }))).toEqual(['allowRecipients']);
    expect(fields(pw({ allowRecipients: ['ops@x.org', '*@*'] }))).toEqual(['allowRecipients[1]']);
  });

  it('gives every problem at once', () => {
    expect(fields(pw({ name: '-bad', username: 'has space', password: 'short', allowFrom: ['x'], allowRecipients: ['*'] }))).toEqual([
      'name',
      'username',
      'password',
      'allowFrom[0]',
      'allowRecipients[0]',
    ]);
  });

  it('one password rule for both sources: 8 to 31 characters', () => {
    expect(fields(pw({ password: 'p'.repeat(7) }))).toEqual(['password']);
    expect(fields(pw({ password: 'p'.repeat(8) }))).toEqual([]);
    expect(fields(pw({ password: 'p'.repeat(31) }))).toEqual([]);
    expect(checkDevice(pw({ password: 'p'.repeat(32) }))[0].problem).toMatch(/8-31/);
  });

  it('a size limit under 1KB', () => {
    expect(fields(pw({ maxMessageSize: 1023 }))).toEqual(['maxMessageSize']);
    expect(fields(pw({ maxMessageSize: 1024 }))).toEqual([]);
  });
});
