import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { describe, expect, it } from 'vitest';
import { escapeChunk, installFastDotStuffing, libraryTransform } from '../../../src/delivery/dot-stuffing.js';
import { createPrng } from '../hardening/prng.js';

/** Runs chunks through a DataStream whose _transform is `transform` (nodemailer's or ours); returns all it pushed. */
function escapeWith(transform: (...args: never[]) => void, chunks: Buffer[]): { out: Buffer; inBytes: number; outBytes: number } {
  const stream = new DataStream() as unknown as { inByteCount: number; outByteCount: number; lastByte: number | false; push(b: Buffer): boolean };
  const pushed: Buffer[] = [];
  stream.push = (b: Buffer) => {
    pushed.push(Buffer.from(b));
    return true;
  };
  for (const chunk of chunks) (transform as (...a: unknown[]) => void).call(stream, chunk, 'buffer', () => undefined);
  return { out: Buffer.concat(pushed), inBytes: stream.inByteCount, outBytes: stream.outByteCount };
}

/** The transform on nodemailer's DataStream now (ours once installed), and nodemailer's own, kept aside. */
const installedTransform = () => (DataStream as unknown as { prototype: { _transform: (...args: never[]) => void } }).prototype._transform;
const nodemailerTransform = () => libraryTransform as (...args: never[]) => void;

/** `bytes` cut into chunks of 1 + sizeOf() bytes each. */
function chunked(bytes: Buffer, sizeOf: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + sizeOf();
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Our transform and nodemailer's give the same bytes and byte counts for these chunks (input shown on a difference). */
function expectSameAsNodemailer(bytes: Buffer, chunks: Buffer[]): void {
  const expected = escapeWith(nodemailerTransform(), chunks);
  const actual = escapeWith(installedTransform(), chunks);
  if (!actual.out.equals(expected.out)) {
    // Shown as JSON so the input is readable.
    expect({ input: bytes.toString('latin1'), out: actual.out.toString('latin1') }).toEqual({
      input: bytes.toString('latin1'),
      out: expected.out.toString('latin1'),
    });
  }
  expect(actual.inBytes).toBe(expected.inBytes);
  expect(actual.outBytes).toBe(expected.outBytes);
}

describe('DATA escaping (dot-stuffing) put in place of nodemailer’s per-byte loop', () => {
  it('is installed over nodemailer’s DataStream, which keeps its own transform for comparison', () => {
    expect(installFastDotStuffing()).toBe(true);
    expect(libraryTransform).toBeTypeOf('function');
    expect(installFastDotStuffing()).toBe(true); // idempotent
  });

  it('gives the same bytes and byte counts as nodemailer’s own transform on 3,000 random messages and chunkings', () => {
    installFastDotStuffing();
    expect(installedTransform()).not.toBe(nodemailerTransform());
    const next = createPrng(20261202).next;
    const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x0d, 0x0a, 0x2e];
    for (let round = 0; round < 3000; round++) {
      const length = Math.floor(next() * 200);
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) bytes[i] = alphabet[Math.floor(next() * alphabet.length)];
      expectSameAsNodemailer(
        bytes,
        chunked(bytes, () => Math.floor(next() * 12)),
      );
    }
  });

  it('gives the same bytes as nodemailer’s transform on 3,000 scan-like messages (CRLF lines, rare escapes) in chunks of every size', () => {
    installFastDotStuffing();
    const next = createPrng(20261203).next;
    // Mostly CRLF lines, as scans are, with each anomaly now and then: a bare CR or LF, a dot at a line
    // start, CR LF split across two chunks.
    const anomalies = ['\r', '\n', '\r\n.', '.', '\r\r\n', '\n\r', '\r\n..'];
    for (let round = 0; round < 3000; round++) {
      const lines: string[] = [];
      const count = 1 + Math.floor(next() * 30);
      for (let i = 0; i < count; i++) {
        lines.push('Q'.repeat(Math.floor(next() * 20)));
        lines.push(next() < 0.08 ? anomalies[Math.floor(next() * anomalies.length)] : '\r\n');
      }
      const bytes = Buffer.from(lines.join(''), 'latin1');
      expectSameAsNodemailer(
        bytes,
        chunked(bytes, () => Math.floor(next() * (next() < 0.5 ? 8 : 300))),
      );
    }
  });

  it('covers each rule: bare CR, bare LF, a dot at a line start, at the message start and across chunks', () => {
    const cases: Array<[string, number | false, string]> = [
      ['a\r\nb\r\n', false, 'a\r\nb\r\n'],
      ['.a\r\n', false, '..a\r\n'],
      ['a\r\n.b\r\n', false, 'a\r\n..b\r\n'],
      ['a\nb', false, 'a\r\nb'],
      ['a\rb', false, 'a\r\nb'],
      ['a\r.b', false, 'a\r\n..b'],
      ['.b', 0x0a, '..b'],
      ['\nx', 0x0d, '\nx'],
      ['x', 0x0d, '\nx'],
      ['.x', 0x0d, '\n..x'],
      ['\n', 0x61, '\r\n'],
      ['\n.x\r\n', 0x0d, '\n..x\r\n'],
      ['a\r\nb\r', false, 'a\r\nb\r'],
      ['a\r\nb\r\r', false, 'a\r\nb\r\n\r'],
      ['a\r\nb\r\nc\n', false, 'a\r\nb\r\nc\r\n'],
      ['a\rb\r\n', false, 'a\r\nb\r\n'],
    ];
    for (const [input, lastByte, output] of cases) expect(escapeChunk(Buffer.from(input, 'latin1'), lastByte).toString('latin1')).toBe(output);
  });

  it('returns an untouched chunk as it is (no copy)', () => {
    const chunk = Buffer.from('line one\r\nline two\r\n');
    expect(escapeChunk(chunk, 0x0a)).toBe(chunk);
  });
});
