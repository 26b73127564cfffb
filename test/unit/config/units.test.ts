import { describe, expect, it } from 'vitest';
import { formatBytes, parseConfig, parseDuration, parseSize } from '../../../src/config/index.js';

describe('parseSize', () => {
  it.each<[string | number, number]>([
    [0, 0],
    [1000, 1000],
    ['1000', 1000],
    ['25MB', 25_000_000],
    ['25mb', 25_000_000],
    [' 25 MB ', 25_000_000],
    ['1.5MB', 1_500_000],
    ['512KiB', 524_288],
    ['1GiB', 1024 ** 3],
    ['2GB', 2e9],
    ['10kb', 10_000],
    ['100B', 100],
    ['25M', 25_000_000],
    ['64K', 64_000],
    ['1Mi', 1024 ** 2],
    ['1G', 1e9],
  ])('%j is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each<string | number>(['', 'lots', '25 megabytes', '-1', 'MB', '25TB', '25 M B', 1.5, -1])('%j is not a size', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it('accepts every form the schema lets through (the schema and the parser agree)', () => {
    for (const value of ['25M', '25Mi', '64k', '1g', '2Gi', '25MB', '512KiB']) {
      const config = parseConfig(`smtp:\n  maxMessageSize: ${value}\n`, '/x.yaml', {});
      expect(config.smtp.maxMessageSize).toBe(parseSize(value));
    }
  });
});

describe('parseDuration', () => {
  it.each<[string | number, number]>([
    [0, 0],
    [1500, 1500],
    ['1500', 1500],
    ['250ms', 250],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['5d', 5 * 86_400_000],
    ['1w', 7 * 86_400_000],
    ['1h30m', 5_400_000],
    ['1h 30m', 5_400_000],
    ['1.5h', 5_400_000],
    [' 10M ', 600_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each<string | number>(['', 'soon', '5 minutes', '5x', 'm5', '1h and 5m', -5, Number.NaN])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it('prints human sizes', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(25_000)).toBe('25.0 kB');
    expect(formatBytes(25_000_000)).toBe('25.0 MB');
  });
});
