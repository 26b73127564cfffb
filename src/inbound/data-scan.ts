/**
 * The end of DATA, found with Buffer.indexOf instead of a JavaScript loop over every byte.
 *
 * smtp-server's `SMTPStream._feedDataStream` looks at each byte of a message in JavaScript for a line
 * that starts with "." (the terminator "\r\n.\r\n", or an escape dot to remove). On the main thread,
 * where every printer's session runs, that loop was the largest cost of receiving a scan. `feedDataStream`
 * below is the library's method with only that search changed: it jumps from one "\n." to the next
 * (found natively) and judges each exactly as the library does; everything else (the start-of-data
 * checks, byte counting, back-pressure) is the library's code as is. One more change: the library joins
 * the 4 bytes it keeps between chunks to the next chunk, copying every socket read; here they are
 * written on their own unless a line starting with "." crosses the seam (`seamHasLineDot`).
 *
 * The DATA stream itself (`startDataMode`) is the library's with one change: a PassThrough that holds no
 * chunk of its own (highWaterMark 0), see `startDataMode` below.
 *
 * `installFastDataScan()` puts both in place once, when inbound loads. test/unit/inbound/data-scan.test.ts
 * proves them equal to the library's own methods (data, byte counts, the commands after the end, the
 * stream's fields) on random messages and random chunkings, so an smtp-server upgrade that changes the
 * rules fails there; if a method is not where it was, nothing is replaced.
 */
import { PassThrough } from 'node:stream';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

const LF_DOT = Buffer.from('\n.');
const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

type Callback = (err?: Error | null) => void;

/** The DATA stream as smtp-server hands it to `onData` (its own two fields on a PassThrough). */
export type DataStream = PassThrough & { byteLength: number; sizeExceeded: boolean };

/** The parts of SMTPStream these methods use (its own fields and methods, public in its typings). */
interface StreamInternals {
  _dataStream: DataStream | null;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _dataMode: boolean;
  _maxBytes: number;
  dataBytes: number;
  _countDataBytes(length: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: Callback): void;
  _feedDataStream(chunk: Buffer, done: Callback): void;
  startDataMode(maxBytes?: number): DataStream;
}

/** smtp-server's own methods, kept for the equivalence tests (undefined until installed). */
export let libraryFeedDataStream: ((this: StreamInternals, chunk: Buffer, done: Callback) => void) | undefined;
export let libraryStartDataMode: ((this: StreamInternals, maxBytes?: number) => DataStream) | undefined;

function feedDataStream(this: StreamInternals, input: Buffer, done: Callback): void {
  // only called in data mode, which always has a stream
  const dataStream = this._dataStream as DataStream;
  let chunk = input;
  const held = this._lastBytes;
  if (held !== false && held.length > 0) {
    this._lastBytes = false;
    if (this._atDataStart || input.length < 4 || seamHasLineDot(held, input)) {
      chunk = Buffer.concat([held, input], held.length + input.length); // the library's way
    } else {
      // No line starts with a dot at the seam, so the held bytes are plain data: they go out on their own
      // and the chunk is scanned as if nothing were held. This spares a new buffer and a copy for every
      // socket read (up to 64 KiB each): half of the bytes the main thread allocated while receiving.
      this._countDataBytes(held.length);
      if (dataStream.writable) dataStream.write(held);
    }
  }
  let len = chunk.length;
  // A terminator right at the start of DATA (the library's check, including its smuggling guard).
  if (this._atDataStart && len >= 3 && chunk[0] === DOT && chunk[1] === CR && chunk[2] === LF) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // The library's loop visits i = 2 .. len - 3 and stops at a "." after an LF: here each such i comes
  // from indexOf("\n.") directly, in the same order.
  for (let lf = chunk.indexOf(LF_DOT, 1); lf !== -1 && lf + 1 < len - 2; lf = chunk.indexOf(LF_DOT, lf + 1)) {
    const i = lf + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      const buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === DOT) {
      const buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  // From here on, the library's code: keep the last bytes, emit the rest, respect back-pressure. One
  // change: the kept bytes are copied (from Node's small-buffer pool). The library keeps a view, which held
  // the whole 64 KiB socket read alive until the next read came, long enough to be promoted out of V8's
  // young generation and wait there for a full collection.
  this._lastBytes = Buffer.from(chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4));
  if (this._lastBytes.length < chunk.length) {
    const buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (dataStream.writable) {
      const handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        const onDrain = () => {
          dataStream.removeListener('drain', onDrain);
          dataStream.removeListener('close', onDrain);
          done();
        };
        dataStream.once('drain', onDrain);
        dataStream.once('close', onDrain);
      } else done();
    } else done();
  } else done();
}

/**
 * Whether held ++ input has a "\n." whose LF is at 1 .. held.length: exactly the positions the library's
 * loop over the joined buffer would judge with bytes of `held`. Every later one lies in `input` alone
 * (its loop from index 1 covers them); `input` has at least 4 bytes.
 */
function seamHasLineDot(held: Buffer, input: Buffer): boolean {
  const at = (k: number) => (k < held.length ? held[k] : input[k - held.length]);
  for (let lf = 1; lf <= held.length; lf++) if (at(lf) === LF && at(lf + 1) === DOT) return true;
  return false;
}

/**
 * smtp-server's `startDataMode` with one change: the PassThrough holds no chunk of its own
 * (highWaterMark 0; Node's default is 64 KiB from Node 22, 16 KiB before). Each write then waits until
 * the spool has taken the chunk (copied it into its batch), and smtp-server's back-pressure pauses the
 * socket sooner. With the default, each session had one more 64 KiB read waiting while its batch was being
 * written; at 20 x 25 MB at once those reads outlived V8's young generation, and full collections freed
 * them: on Node 24, gateway alone, peak USS 126 / 132 -> 111 / 115 MiB and CPU per 5 MB scan 47 / 43 ->
 * 38 / 33 ms (two interleaved pairs, README Performance).
 */
function startDataMode(this: StreamInternals, maxBytes?: number): DataStream {
  this._dataMode = true;
  this._maxBytes = (maxBytes && Number(maxBytes)) || Infinity;
  this.dataBytes = 0;
  this._atDataStart = true;
  const dataStream = Object.assign(new PassThrough({ highWaterMark: 0 }), { byteLength: 0, sizeExceeded: false });
  this._dataStream = dataStream;
  return dataStream;
}

/** Replaces smtp-server's per-byte search and its DATA stream (idempotent). Returns whether they are in place. */
export function installFastDataScan(): boolean {
  const prototype = (SMTPStream as unknown as { prototype?: Partial<StreamInternals> }).prototype;
  if (!prototype || typeof prototype._feedDataStream !== 'function' || prototype._feedDataStream.length !== 2) return false;
  if (typeof prototype.startDataMode !== 'function' || prototype.startDataMode.length !== 1) return false;
  if (prototype._feedDataStream === feedDataStream) return true;
  libraryFeedDataStream = prototype._feedDataStream;
  libraryStartDataMode = prototype.startDataMode;
  prototype._feedDataStream = feedDataStream;
  prototype.startDataMode = startDataMode;
  return true;
}
