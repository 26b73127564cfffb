import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';

describe('shipped config files', () => {
  it('config/gateway.example.yaml documents a config that loads and matches the schema', () => {
    const text = readFileSync('config/gateway.example.yaml', 'utf8');
    const config = parseConfig(text, 'config/gateway.example.yaml', { WARREN_2F_PASSWORD: 'device-secret-1', WARREN_APP_PASSWORD: 'abcdefghijklmnop' });
    expect(config.devices.map((d) => d.name)).toEqual(['warren-2f-scanner', 'legacy-copier']);
    expect(config.upstreams[0].security).toBe('auto');
    expect(config.smtp.maxMessageSize).toBe(25_000_000);
    expect(config.delivery.maxLifetimeMs).toBe(5 * 86_400_000);
  });

  it('config/gateway.example.yaml fails with the key when a referenced variable is missing', () => {
    const text = readFileSync('config/gateway.example.yaml', 'utf8');
    expect(() => parseConfig(text, 'config/gateway.example.yaml', {})).toThrow(/devices\[0\]\.password: environment variable WARREN_2F_PASSWORD is not set/);
  });

  it('config/gateway.yaml (npm start) loads without any environment', () => {
    const config = parseConfig(readFileSync('config/gateway.yaml', 'utf8'), 'config/gateway.yaml', {});
    expect(config.smtp.port).toBe(2525);
    expect(config.devices[0].name).toBe('demo-scanner');
  });
});

describe('list keys written as a mapping', () => {
  it('refuses devices written without "-" instead of dropping every device', () => {
    expect(() => parseConfig('devices:\n  name: a\n  username: a\n', 'x.yaml', {})).toThrow(/x\.yaml: devices: must be a list/);
    expect(() => parseConfig('upstreams:\n  name: g\n  host: smtp.gmail.com\n', 'x.yaml', {})).toThrow(/x\.yaml: upstreams: must be a list/);
  });

  it('reads an empty "devices:" as no devices', () => {
    expect(parseConfig('devices:\nupstreams:\n', 'x.yaml', {}).devices).toEqual([]);
  });
});
