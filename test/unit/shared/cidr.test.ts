import { describe, expect, it } from 'vitest';
import { addressInRanges, canonicalAddress, cidrHostBits, parseCidr } from '../../../src/shared/cidr.js';

describe('cidr', () => {
  it('parses ranges and single hosts', () => {
    expect(cidrHostBits(parseCidr('10.20.0.0/16'))).toBe(16);
    expect(cidrHostBits(parseCidr('10.20.5.17'))).toBe(0);
    expect(cidrHostBits(parseCidr(' 10.20.5.16/29 '))).toBe(3);
    expect(cidrHostBits(parseCidr('fd00::1'))).toBe(0);
    expect(cidrHostBits(parseCidr('fd00::/125'))).toBe(3);
  });

  it.each(['10.20.0.0/33', 'printer.local', '', '10.0.0.256', 'fd00::/129'])('refuses %j with a reason', (text) => {
    expect(() => parseCidr(text)).toThrow(/not a valid/);
  });

  // inet_aton forms would pin a device to another host than the admin meant:
  // "10.20.517" is 10.20.2.5, "010.020.005.017" (zero-padded) is octal 8.16.5.15.
  it.each(['10.20.517', '10.20.0/16', '010.020.005.017', '010.020.005.016/29', '0x0a.0.0.1', '167772161'])(
    'refuses the non-dotted-quad IPv4 form %j',
    (text) => {
      expect(() => parseCidr(text)).toThrow(/not a valid/);
    },
  );

  it('matches IPv4, IPv4-mapped IPv6 and IPv6 addresses', () => {
    const ranges = ['10.20.0.0/16', 'fd00::/64'].map((r) => parseCidr(r));
    expect(addressInRanges('10.20.5.17', ranges)).toBe(true);
    expect(addressInRanges('::ffff:10.20.5.17', ranges)).toBe(true);
    expect(addressInRanges('10.21.0.1', ranges)).toBe(false);
    expect(addressInRanges('fd00::abcd', ranges)).toBe(true);
    expect(addressInRanges('fd01::1', ranges)).toBe(false);
    expect(addressInRanges('not-an-ip', ranges)).toBe(false);
    expect(addressInRanges('10.20.5.17', [])).toBe(false);
  });

  it('gives one canonical text per address', () => {
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('fd00:0:0:0:0:0:0:1')).toBe('fd00::1');
  });
});
