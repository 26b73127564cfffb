/**
 * config/gateway.example.yaml is the reference: every key of the schema appears there (as a key, or as a
 * commented-out key at the same place), and its note on secrets names every key the schema marks secret.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSecret, schemaKeyPaths, secretKeyNames } from '../../../src/config/schema.js';

const EXAMPLE = readFileSync('config/gateway.example.yaml', 'utf8');

/** Key paths written in a YAML file, commented-out keys included ("# tlsPort: 4650" under smtp is smtp.tlsPort). */
function documentedKeyPaths(text: string): Set<string> {
  const paths = new Set<string>();
  const stack: Array<{ indent: number; key: string }> = [];
  for (const raw of text.split('\n')) {
    let line = raw;
    let indent = line.length - line.trimStart().length;
    line = line.trimStart();
    // "#" then the key as it would be indented without the comment marker(s)
    while (line.startsWith('#')) {
      line = line.replace(/^#\s?/, '');
      indent += line.length - line.trimStart().length;
      line = line.trimStart();
    }
    let list = false;
    if (line.startsWith('- ')) {
      list = true;
      line = line.slice(2);
      indent += 2;
    }
    const match = /^([A-Za-z][A-Za-z0-9]*):(\s|$)/.exec(line);
    if (!match) continue;
    while (stack.length > 0 && stack[stack.length - 1].indent >= indent) stack.pop();
    const parent = stack
      .map((s) => s.key)
      .filter(Boolean)
      .join('.');
    const path = parent ? `${parent}.${match[1]}` : match[1];
    paths.add(path);
    // A list item is a level of its own (key ''), so the item's later keys, at its first key's indent, are siblings.
    if (list) stack.push({ indent: indent - 1, key: '' });
    stack.push({ indent, key: match[1] });
  }
  return paths;
}

describe('config/gateway.example.yaml', () => {
  it('documents every key of the schema', () => {
    const documented = documentedKeyPaths(EXAMPLE);
    const keys = schemaKeyPaths()
      .map(({ path }) => path.replace(/\[\]/g, ''))
      // a secret's <key>File variant is generated from the mark and documented by the note on secrets
      .filter((path) => !/File$/.test(path) || !schemaKeyPaths().some((k) => k.path.replace(/\[\]/g, '') === path.slice(0, -4) && isSecret(k.schema)));
    expect(keys.length).toBeGreaterThan(60);
    const missing = keys.filter((key) => !documented.has(key));
    expect(missing, 'keys of src/config/schema.ts missing from config/gateway.example.yaml').toEqual([]);
  });

  it('names every secret key in its note on secrets and *File', () => {
    const note = EXAMPLE.slice(0, EXAMPLE.indexOf('dataDir:'));
    for (const name of secretKeyNames()) expect(note, name).toContain(`\`${name}\``);
  });

  it('the checker sees a key that is missing', () => {
    const without = EXAMPLE.replace(/^ {2}maxConnectionsPerIp:.*$/m, '');
    expect(documentedKeyPaths(EXAMPLE).has('smtp.maxConnectionsPerIp')).toBe(true);
    expect(documentedKeyPaths(without).has('smtp.maxConnectionsPerIp')).toBe(false);
    expect(documentedKeyPaths(EXAMPLE).has('upstreams.oauth2.clientSecret')).toBe(true);
    expect(documentedKeyPaths(EXAMPLE).has('devices.allowRecipients')).toBe(true);
  });
});
