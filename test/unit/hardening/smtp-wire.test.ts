/** The reply parser the fuzz and hostile-client tests rely on must itself catch malformed output. */
import { describe, expect, it } from 'vitest';
import { parseReplies } from './smtp-wire.js';
import { createPrng } from './prng.js';

describe('parseReplies', () => {
  it('reads single and multi-line replies in order', () => {
    const parsed = parseReplies('220 host ESMTP\r\n250-host\r\n250-SIZE 10\r\n250 8BITMIME\r\n421 bye\r\n');
    expect(parsed).toEqual({ codes: [220, 250, 421], malformed: [], partial: '' });
  });

  it('accepts a bare code line and keeps an unfinished line apart', () => {
    expect(parseReplies('250\r\n354 go')).toEqual({ codes: [250], malformed: [], partial: '354 go' });
  });

  it.each([
    ['no code', 'hello\r\n'],
    ['1xx code', '199 nope\r\n'],
    ['6xx code', '600 nope\r\n'],
    ['code changes inside a multi-line reply', '250-a\r\n550 b\r\n'],
    ['control character in the text', '250 a\x01b\r\n'],
    ['bare LF inside a line', '250 a\nb\r\n'],
  ])('flags %s', (_name, text) => {
    expect(parseReplies(text).malformed.length).toBeGreaterThan(0);
  });
});

describe('createPrng', () => {
  it('replays the same sequence for the same seed', () => {
    const a = createPrng(42);
    const b = createPrng(42);
    const seqA = Array.from({ length: 20 }, () => a.int(0, 1000));
    expect(Array.from({ length: 20 }, () => b.int(0, 1000))).toEqual(seqA);
    expect(new Set(seqA).size).toBeGreaterThan(10);
    expect(createPrng(43).int(0, 1_000_000)).not.toBe(createPrng(42).int(0, 1_000_000));
  });
});
