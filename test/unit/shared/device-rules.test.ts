import { describe, expect, it } from 'vitest';
import { checkDeviceRules } from '../../../src/shared/device-rules.js';

describe('checkDeviceRules', () => {
  const rcpt = ['*@berkeley.edu'];

  it('accepts a pinned auth: none device and a password device without pinning', () => {
    expect(checkDeviceRules({ auth: 'none', allowFrom: ['10.20.5.17/32'], allowRecipients: rcpt })).toBeUndefined();
    expect(checkDeviceRules({ auth: 'none', allowFrom: ['10.20.5.16/29'], allowRecipients: rcpt })).toBeUndefined();
    expect(checkDeviceRules({ auth: 'password', allowRecipients: rcpt })).toBeUndefined();
    expect(checkDeviceRules({ auth: 'password', allowFrom: ['0.0.0.0/0'], allowRecipients: rcpt })).toBeUndefined();
  });

  it('refuses an unsafe device with the field at fault', () => {
    expect(checkDeviceRules({ auth: 'none', allowRecipients: rcpt })?.field).toBe('allowFrom');
    expect(checkDeviceRules({ auth: 'none', allowFrom: [], allowRecipients: rcpt })?.field).toBe('allowFrom');
    expect(checkDeviceRules({ auth: 'none', allowFrom: ['10.20.5.17', '10.20.5.0/28'], allowRecipients: rcpt })).toMatchObject({
      field: 'allowFrom[1]',
      problem: expect.stringMatching(/too wide/),
    });
    expect(checkDeviceRules({ auth: 'none', allowFrom: ['fd00::/120'], allowRecipients: rcpt })?.field).toBe('allowFrom[0]');
    expect(checkDeviceRules({ auth: 'password', allowFrom: ['nonsense'], allowRecipients: rcpt })?.field).toBe('allowFrom[0]');
    expect(checkDeviceRules({ auth: 'password' })?.field).toBe('allowRecipients');
    expect(checkDeviceRules({ auth: 'password', allowRecipients: ['ops@x.org', '*@*'] })?.field).toBe('allowRecipients[1]');
  });
});
