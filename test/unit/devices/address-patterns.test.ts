import { describe, expect, it } from 'vitest';
import { addressTrick, parseAddressRule } from '../../../src/devices/address-patterns.js';

describe('parseAddressRule', () => {
  it('matches an exact address, case-insensitively', () => {
    const rule = parseAddressRule('Ops@Example.org');
    expect(rule.text).toBe('ops@example.org');
    expect(rule.matches('ops@example.org')).toBe(true);
    expect(rule.matches('OPS@EXAMPLE.ORG')).toBe(true);
    expect(rule.matches('ops2@example.org')).toBe(false);
    expect(rule.matches('ops@example.org.evil.com')).toBe(false);
  });

  it('matches any mailbox of one domain, not its sub-domains or look-alikes', () => {
    const rule = parseAddressRule('*@berkeley.edu');
    expect(rule.matches('anyone@berkeley.edu')).toBe(true);
    expect(rule.matches('x@cs.berkeley.edu')).toBe(false);
    expect(rule.matches('x@notberkeley.edu')).toBe(false);
    expect(rule.matches('x@berkeley.edu.evil.com')).toBe(false);
    expect(rule.matches('berkeley.edu')).toBe(false);
  });

  it('matches sub-domains with *@*.domain, not the domain itself', () => {
    const rule = parseAddressRule('*@*.berkeley.edu');
    expect(rule.matches('x@cs.berkeley.edu')).toBe(true);
    expect(rule.matches('x@a.b.berkeley.edu')).toBe(true);
    expect(rule.matches('x@berkeley.edu')).toBe(false);
    expect(rule.matches('x@evilberkeley.edu')).toBe(false);
  });

  it('judges the domain after the last @', () => {
    expect(parseAddressRule('*@berkeley.edu').matches('a@gmail.com@berkeley.edu')).toBe(true); // addressTrick refuses it first
    expect(addressTrick('a@gmail.com@berkeley.edu')).toMatch(/exactly one @/);
  });

  it.each(['*@*', '*', '*@', '@example.org', 'user@*', 'user@localhost', '*@*.com', 'a b@example.org', 'x@exa_mple.org'])('refuses %j', (text) => {
    expect(() => parseAddressRule(text)).toThrow(/"/);
  });
});

describe('addressTrick', () => {
  it.each([
    ['victim%gmail.com@berkeley.edu', /percent/],
    ['@a.example:victim@gmail.com', /source route/],
    ['gmail.com!victim@berkeley.edu', /bang/],
    ['"victim@gmail.com"@berkeley.edu', /quoted|exactly one/],
    ['x@[10.0.0.1]', /literal/],
    ['x@localhost', /invalid domain/],
    ['two@@berkeley.edu', /exactly one @/],
    [`${'l'.repeat(65)}@berkeley.edu`, /mailbox/],
    [`x@${'d'.repeat(250)}.edu`, /too long/],
  ])('refuses %j', (address, reason) => {
    expect(addressTrick(address)).toMatch(reason);
  });

  it.each(['ops@example.org', 'First.Last+scan@cs.berkeley.edu', "o'brien@example.org"])('accepts %j', (address) => {
    expect(addressTrick(address)).toBeUndefined();
  });
});
