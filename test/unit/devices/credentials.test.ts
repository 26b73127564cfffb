import { describe, expect, it } from 'vitest';
import {
  SecretBox,
  generatePassword,
  generateUsername,
  hashPassword,
  isValidLogin,
  safeEqual,
  verifyPasswordHash,
  MAX_LOGIN_LENGTH,
  MAX_PASSWORD_LENGTH,
} from '../../../src/devices/credentials.js';

describe('device credentials', () => {
  it('generates printer-safe passwords: alphanumeric, no look-alikes, fits 31 characters', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const password = generatePassword();
      expect(password).toMatch(/^[A-HJ-NP-Za-km-z2-9]{24}$/);
      seen.add(password);
    }
    expect(seen.size).toBe(50);
    expect(generatePassword(MAX_PASSWORD_LENGTH)).toHaveLength(31);
  });

  it('generates valid logins from any device name', () => {
    for (const name of ['warren-2f-scanner', 'Büro Kopierer #3', 'x'.repeat(63)]) {
      const login = generateUsername(name);
      expect(isValidLogin(login)).toBe(true);
      expect(login.length).toBeLessThanOrEqual(MAX_LOGIN_LENGTH);
    }
    expect(generateUsername('a')).not.toBe(generateUsername('a'));
  });

  it('validates logins like the printer does', () => {
    expect(isValidLogin('warren-2f')).toBe(true);
    expect(isValidLogin('scans@berkeley.edu')).toBe(true);
    expect(isValidLogin('u'.repeat(63))).toBe(true);
    expect(isValidLogin('u'.repeat(64))).toBe(false);
    expect(isValidLogin('')).toBe(false);
    expect(isValidLogin('with space')).toBe(false);
    expect(isValidLogin('semi;colon')).toBe(false);
  });

  it('hashes with scrypt and verifies only the right password', () => {
    const hash = hashPassword('s3cret-31-chars-at-most');
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(hash).not.toContain('s3cret');
    expect(hashPassword('s3cret-31-chars-at-most')).not.toBe(hash); // salted
    expect(verifyPasswordHash('s3cret-31-chars-at-most', hash)).toBe(true);
    expect(verifyPasswordHash('s3cret-31-chars-at-mosT', hash)).toBe(false);
    expect(verifyPasswordHash('', hash)).toBe(false);
    expect(verifyPasswordHash('x', 'bcrypt$whatever')).toBe(false);
    expect(verifyPasswordHash('x', 'scrypt$1$2$3')).toBe(false);
    // parameters node:crypto refuses give "no match", never an exception inside the SMTP AUTH handler
    expect(verifyPasswordHash('x', 'scrypt$1$8$1$c2FsdA==$aGFzaA==')).toBe(false);
    expect(verifyPasswordHash('x', 'scrypt$16384$8$1$c2FsdA==$')).toBe(false);
  });

  it('compares strings in constant time, whatever their lengths', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });

  it('seals secrets with AES-GCM: different each time, opened only with the same key, tamper-evident', () => {
    const box = new SecretBox('a-gateway-secret-key-of-32-chars!!');
    const sealed = box.seal('device-pw');
    expect(sealed).toMatch(/^v1:/);
    expect(sealed).not.toContain('device-pw');
    expect(box.seal('device-pw')).not.toBe(sealed);
    expect(box.open(sealed)).toBe('device-pw');
    expect(new SecretBox('a-gateway-secret-key-of-32-chars!!').open(sealed)).toBe('device-pw');
    expect(() => new SecretBox('another-key-another-key-another-k').open(sealed)).toThrow();
    const [v, iv, tag, data] = sealed.split(':');
    const flipped = Buffer.from(data, 'base64');
    flipped[0] ^= 1;
    expect(() => box.open([v, iv, tag, flipped.toString('base64')].join(':'))).toThrow();
    expect(() => box.open('v2:x:y:z')).toThrow(/unknown secret format/);
  });
});
