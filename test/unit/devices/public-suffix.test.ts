/** Wildcard address patterns are judged against the Public Suffix List (tldts, private section included). */
import { describe, expect, it } from 'vitest';
import { parseAddressRule } from '../../../src/devices/address-patterns.js';
import { parseConfig } from '../../../src/config/index.js';
import { ConfigError } from '../../../src/shared/errors.js';

describe('address patterns under a public suffix', () => {
  it.each(['*@*.com', '*@*.co.uk', '*@*.com.au', '*@*.github.io', '*@*.blogspot.com', '*@co.uk', '*@github.io'])('refuses %j', (pattern) => {
    expect(() => parseAddressRule(pattern)).toThrow(/public suffix/);
  });

  it.each(['*@*.example.co.uk', '*@*.berkeley.edu', '*@*.unit.example.com.au', '*@myorg.github.io', 'ops@example.co.uk', '*@*.corp.lan'])(
    'accepts %j',
    (pattern) => {
      expect(() => parseAddressRule(pattern)).not.toThrow();
    },
  );

  it('says what to write instead', () => {
    expect(() => parseAddressRule('*@*.co.uk')).toThrow('"*@*.co.uk" covers every domain under the public suffix "co.uk"');
    expect(() => parseAddressRule('*@*.co.uk')).toThrow('*@*.example.co.uk');
  });

  it.each(['allowRecipients', 'allowSenders'])('the config file refuses them in %s with file and key path', (key) => {
    const text = `devices:\n  - name: a\n    username: a\n    password: pw-8chars\n    allowRecipients: ["ops@example.org"]\n    ${key}: ["ops@example.org", "*@*.co.uk", "*@*.github.io"]\n`;
    let error: ConfigError | undefined;
    try {
      parseConfig(key === 'allowRecipients' ? text.replace('    allowRecipients: ["ops@example.org"]\n', '') : text, '/etc/g.yaml', {});
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.problems.map((p) => p.keyPath)).toEqual([`devices[0].${key}[1]`, `devices[0].${key}[2]`]);
    expect(error?.message).toContain(`/etc/g.yaml: devices[0].${key}[1]: "*@*.co.uk" covers every domain`);
  });
});
