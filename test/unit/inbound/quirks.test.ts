import { describe, expect, it } from 'vitest';
import { addressLiteral, bracketPath, helloWithOneName } from '../../../src/inbound/quirks.js';

describe('SMTP quirk rewrites', () => {
  it('puts angle brackets around a bare MAIL FROM / RCPT TO path and keeps the parameters', () => {
    expect(bracketPath('MAIL FROM:scanner@example.org')).toEqual({ line: 'MAIL FROM:<scanner@example.org>', quirk: 'path-without-brackets' });
    expect(bracketPath('mail from: scanner@example.org SIZE=1200 BODY=8BITMIME')?.line).toBe('mail from:<scanner@example.org> SIZE=1200 BODY=8BITMIME');
    expect(bracketPath('RCPT TO:inbox@example.org')?.line).toBe('RCPT TO:<inbox@example.org>');
    expect(bracketPath('MAIL FROM:')).toEqual({ line: 'MAIL FROM:<>', quirk: 'empty-mail-from' });
  });

  it('leaves well-formed and unrelated lines alone', () => {
    expect(bracketPath('MAIL FROM:<scanner@example.org> SIZE=1')).toBeUndefined();
    expect(bracketPath('MAIL FROM: <scanner@example.org>')).toBeUndefined();
    expect(bracketPath('MAIL FROM:<>')).toBeUndefined();
    expect(bracketPath('RCPT TO:')).toBeUndefined(); // no recipient stays a syntax error
    expect(bracketPath('MAIL scanner@example.org')).toBeUndefined();
    expect(bracketPath('NOOP')).toBeUndefined();
  });

  it('gives HELO/EHLO exactly one name', () => {
    expect(helloWithOneName('HELO', '[10.1.2.3]')).toEqual({ line: 'HELO [10.1.2.3]', quirk: 'helo-without-name' });
    expect(helloWithOneName('ehlo   ', '[10.1.2.3]')?.line).toBe('ehlo [10.1.2.3]');
    expect(helloWithOneName('EHLO Xerox WorkCentre 6505', '[10.1.2.3]')).toEqual({ line: 'EHLO Xerox', quirk: 'helo-with-spaces' });
    expect(helloWithOneName('HELO NPIF65E56', '[10.1.2.3]')).toBeUndefined();
  });

  it('writes address literals as RFC 5321 wants them', () => {
    expect(addressLiteral('192.168.1.5')).toBe('[192.168.1.5]');
    expect(addressLiteral('fd00::5')).toBe('[IPv6:fd00::5]');
  });
});
