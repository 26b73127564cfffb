import { describe, expect, it } from 'vitest';
import { bearerToken, tokenMatches } from '../../../src/admin/auth.js';
import { validationField } from '../../../src/admin/errors.js';

describe('admin bearer token check', () => {
  it('reads only a well-formed Bearer header', () => {
    expect(bearerToken('Bearer abc.def-123')).toBe('abc.def-123');
    expect(bearerToken('bearer  abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it('matches any configured token exactly, whatever the lengths', () => {
    const tokens = ['first-token-0123456789', 'second-token-0123456789'];
    expect(tokenMatches('second-token-0123456789', tokens)).toBe(true);
    expect(tokenMatches('first-token-0123456789', tokens)).toBe(true);
    expect(tokenMatches('first-token-012345678', tokens)).toBe(false);
    expect(tokenMatches('first-token-01234567890', tokens)).toBe(false);
    expect(tokenMatches('', tokens)).toBe(false);
    expect(tokenMatches('anything', [])).toBe(false);
  });
});

describe('validation error field names', () => {
  it('names the nested, missing or unknown property', () => {
    expect(validationField('body', { instancePath: '/allowRecipients/0', keyword: 'minLength' })).toBe('body.allowRecipients[0]');
    expect(validationField('body', { instancePath: '', keyword: 'required', params: { missingProperty: 'allowRecipients' } })).toBe('body.allowRecipients');
    expect(validationField('body', { instancePath: '', keyword: 'additionalProperties', params: { additionalProperty: 'password2' } })).toBe('body.password2');
    expect(validationField('querystring', { instancePath: '/limit', keyword: 'maximum' })).toBe('querystring.limit');
  });
});
