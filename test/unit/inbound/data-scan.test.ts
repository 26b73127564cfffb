import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { type DataStream, installFastDataScan, libraryFeedDataStream, libraryStartDataMode } from '../../../src/inbound/data-scan.js';
import { createPrng } from '../hardening/prng.js';

type Feed = (...args: never[]) => void;
type StartDataMode = (this: SMTPStream, maxBytes?: number) => DataStream;
type StreamWithHeld = SMTPStream & { _lastBytes: Buffer | false; startDataMode(): PassThrough };

interface Outcome {
  data: Buffer;
  dataBytes: number;
  /** Command lines after the end of DATA (pipelined after the terminator). */
  commands: string[];
  ended: boolean;
}

/**
 * Feeds `chunks` to a real SMTPStream in data mode whose `_feedDataStream` is `feed` (smtp-server's or
 * ours, set on the instance so the method's own re-entry uses it too); returns what it produced.
 */
async function runWith(feed: Feed, chunks: Buffer[]): Promise<Outcome> {
  const stream = new SMTPStream();
  (stream as unknown as { _feedDataStream: Feed })._feedDataStream = feed;
  const commands: string[] = [];
  stream.oncommand = (line: Buffer, callback?: () => void) => {
    commands.push(line.toString('binary'));
    callback?.();
  };
  const dataStream = stream.startDataMode();
  const data: Buffer[] = [];
  let ended = false;
  dataStream.on('data', (chunk: Buffer) => data.push(Buffer.from(chunk)));
  dataStream.on('end', () => {
    ended = true;
    stream.continue();
  });
  for (const chunk of chunks) await new Promise<void>((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => setImmediate(resolve));
  return { data: Buffer.concat(data), dataBytes: stream.dataBytes, commands, ended };
}

/** DATA as a client sends it: lines (some starting with dots, some escaped), maybe a terminator, maybe commands after. */
function randomTransfer(next: () => number): Buffer {
  const pieces = ['\r\n', '.', '..', '\r\n.\r\n', '\n', '\r', 'a', 'base64line', 'x'.repeat(70), '\r\n..\r\n', '.\r\n'];
  const parts: string[] = [];
  const count = Math.floor(next() * 60);
  for (let i = 0; i < count; i++) parts.push(pieces[Math.floor(next() * pieces.length)]);
  if (next() < 0.8) parts.push('\r\n.\r\n');
  if (next() < 0.5) parts.push('QUIT\r\n');
  return Buffer.from(parts.join(''), 'binary');
}

function randomChunks(bytes: Buffer, next: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(next() * (next() < 0.3 ? 4 : 40));
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

describe('end-of-DATA search put in place of smtp-server’s per-byte loop', () => {
  it('is installed over SMTPStream, which keeps its own method for comparison', () => {
    expect(installFastDataScan()).toBe(true);
    expect(libraryFeedDataStream).toBeTypeOf('function');
    expect(libraryStartDataMode).toBeTypeOf('function');
    expect(installFastDataScan()).toBe(true); // idempotent
  });

  it('starts DATA with the same fields as smtp-server, on a stream that holds no chunk of its own', async () => {
    installFastDataScan();
    const ours = (SMTPStream.prototype as unknown as { startDataMode: StartDataMode }).startDataMode;
    const theirs = libraryStartDataMode as unknown as StartDataMode;
    expect(ours).not.toBe(theirs);
    // The fields each method sets on the SMTPStream, and their values.
    const started = (start: StartDataMode) => {
      const stream = new SMTPStream() as unknown as Record<string, unknown>;
      const before = { ...stream };
      const dataStream = start.call(stream as unknown as SMTPStream, 5_000);
      expect(stream._dataStream).toBe(dataStream);
      const fields = Object.fromEntries(Object.entries(stream).filter(([key, value]) => key !== '_dataStream' && before[key] !== value));
      return { fields, dataStream };
    };
    const mine = started(ours);
    const library = started(theirs);
    expect(mine.fields).toEqual(library.fields);
    expect(mine.dataStream).toBeInstanceOf(PassThrough);
    expect({ byteLength: mine.dataStream.byteLength, sizeExceeded: mine.dataStream.sizeExceeded }).toEqual({
      byteLength: library.dataStream.byteLength,
      sizeExceeded: library.dataStream.sizeExceeded,
    });
    expect([mine.dataStream.writableHighWaterMark, mine.dataStream.readableHighWaterMark]).toEqual([0, 0]);

    // With no reader, 64 chunks of 1 KiB: the library's stream takes in up to its high-water marks, ours
    // only the chunk in hand; smtp-server's back-pressure holds the rest (and, on a socket, pauses it).
    const held = async (start: StartDataMode) => {
      const stream = new SMTPStream();
      const dataStream = start.call(stream);
      for (let i = 0; i < 64; i++) stream.write(Buffer.alloc(1024, 0x61));
      for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
      return dataStream.readableLength; // the bytes waiting for a reader
    };
    expect(await held(theirs)).toBeGreaterThanOrEqual(16 * 1024);
    expect(await held(ours)).toBeLessThanOrEqual(1024);
  });

  it('keeps a copy of the bytes it holds back between chunks, not a view that keeps the whole read alive', async () => {
    installFastDataScan();
    const stream = new SMTPStream() as unknown as StreamWithHeld;
    const dataStream = stream.startDataMode();
    dataStream.resume();
    const read = Buffer.alloc(65_536, 0x61);
    await new Promise<void>((resolve, reject) => stream.write(read, (err?: Error | null) => (err ? reject(err) : resolve())));
    expect(stream._lastBytes).toEqual(Buffer.from('aaaa'));
    expect((stream._lastBytes as Buffer).buffer).not.toBe(read.buffer);
  });

  it('gives the same data, byte count and following commands as smtp-server’s own method on 2,000 random transfers and chunkings', async () => {
    installFastDataScan();
    const ours = (SMTPStream.prototype as unknown as { _feedDataStream: Feed })._feedDataStream;
    const theirs = libraryFeedDataStream as unknown as Feed;
    expect(ours).not.toBe(theirs);
    const next = createPrng(20261202).next;
    for (let round = 0; round < 2_000; round++) {
      const transfer = randomTransfer(next);
      const chunks = randomChunks(transfer, next);
      const expected = await runWith(theirs, chunks);
      const actual = await runWith(ours, chunks);
      if (!actual.data.equals(expected.data) || actual.dataBytes !== expected.dataBytes || actual.ended !== expected.ended) {
        throw new Error(`round ${round} differs for ${JSON.stringify(transfer.toString('binary'))} in ${chunks.length} chunks`);
      }
      expect(actual.commands).toEqual(expected.commands);
    }
  });

  it('ends a large scan at its terminator, unescaping its dot lines, in big chunks', async () => {
    installFastDataScan();
    const body = `${'QUJDRA=='.repeat(8_000)}\r\n..hidden dot\r\n${'x'.repeat(76)}\r\n`.repeat(20);
    const wire = Buffer.from(`${body}.\r\nQUIT\r\n`, 'binary');
    const chunks = [wire.subarray(0, 65_536), wire.subarray(65_536)];
    const outcome = await runWith((SMTPStream.prototype as unknown as { _feedDataStream: Feed })._feedDataStream, chunks);
    expect(outcome.data.toString('binary')).toBe(body.replaceAll('\r\n..hidden', '\r\n.hidden'));
    expect(outcome.commands).toEqual(['QUIT']);
  });
});
