import { describe, expect, it } from 'vitest';
import { apopDigest, apopTimestamp } from '../../../src/pop3/index.js';
import { apopDigestMatches } from '../../../src/pop3/apop.js';

describe('APOP digest (RFC 1939 §7)', () => {
  it('matches the example in the RFC', () => {
    expect(apopDigest('<1896.697170952@dbc.mtview.ca.us>', 'tanstaaf')).toBe('c4c9334bac560ecc979e58001b3e22fb');
  });

  it('accepts the right digest in either case and nothing else', () => {
    const ts = '<1896.697170952@dbc.mtview.ca.us>';
    expect(apopDigestMatches(ts, 'tanstaaf', 'c4c9334bac560ecc979e58001b3e22fb')).toBe(true);
    expect(apopDigestMatches(ts, 'tanstaaf', 'C4C9334BAC560ECC979E58001B3E22FB')).toBe(true);
    expect(apopDigestMatches(ts, 'tanstaaX', 'c4c9334bac560ecc979e58001b3e22fb')).toBe(false);
    expect(apopDigestMatches(ts, 'tanstaaf', 'c4c9334bac560ecc979e58001b3e22f')).toBe(false);
    expect(apopDigestMatches(ts, 'tanstaaf', 'z4c9334bac560ecc979e58001b3e22fb')).toBe(false);
  });

  it('makes a msg-id style timestamp that differs on every greeting', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const ts = apopTimestamp('scanrelay', 1_700_000_000_000);
      expect(ts).toMatch(/^<[^<>@\s]+@scanrelay>$/);
      seen.add(ts);
    }
    expect(seen.size).toBe(100);
  });

  it('keeps the timestamp parseable whatever smtp.hostname holds', () => {
    expect(apopTimestamp('scan relay>x')).toMatch(/^<[^<>@\s]+@scan-relay-x>$/);
  });
});
