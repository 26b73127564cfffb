import { describe, expect, it } from 'vitest';
import { addressTrick } from '../../../src/devices/address-patterns.js';

describe('recipient mailbox names', () => {
  it('refuses local parts that are not plain dot-atoms (nodemailer would parse them as address lists)', () => {
    for (const address of [
      'a,b@example.org',
      'x(y)@example.org',
      'a b@example.org',
      'a..b@example.org',
      '.a@example.org',
      'a.@example.org',
      'a<b>@example.org',
      'a;b@example.org',
    ]) {
      expect(addressTrick(address), address).toMatch(/dot-atom/);
    }
  });

  it('accepts the ordinary ones', () => {
    for (const address of ['john.doe@example.org', "o'neil@example.org", 'user+tag@example.org', 'a_b-c@example.org', 'jörg@example.org']) {
      expect(addressTrick(address), address).toBeUndefined();
    }
  });
});
