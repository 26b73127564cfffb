/**
 * Message bodies on disk. A body is streamed (never buffered whole) into an exclusively created temp
 * file, in batches of up to 256 KiB copied into a reused buffer, hashed on the way, and fsynced before
 * this resolves. Oversize or a disk error stops the writing but keeps reading the client's data to its
 * end, so the SMTP session can still answer 552 or 452 and go on.
 */
import { createHash } from 'node:crypto';
import { isAscii } from 'node:buffer';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { MessageTooLargeError, SpoolError } from '../shared/errors.js';

export interface SniffedHeaders {
  from?: string;
  to?: string;
  subject?: string;
  messageId?: string;
  hasDate: boolean;
  /** Byte length of the header block including the blank line, when found within the sniff limit. */
  headerBytes?: number;
}

export interface SpoolResult {
  size: number;
  sha256: string;
  headers: SniffedHeaders;
  /** Any byte > 0x7F seen (undeclared 8-bit data needs BODY=8BITMIME upstream). */
  has8bit: boolean;
}

const BATCH_BYTES = 256 * 1024;
const HEADER_SNIFF_LIMIT = 64 * 1024;

/**
 * Batch buffers, reused from one body to the next. A body's chunks are copied into one, so each socket
 * read (up to 64 KiB) is garbage as soon as it has been copied, and the next scavenge frees it. Batched as
 * they came, the reads lived through the batch's write, survived scavenges into V8's old generation and
 * waited there for a full collection: 40-60 MiB of dead reads on the main thread at 20 x 25 MB.
 */
class BatchPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buffer);
  }
}

/** Enough for 10 printers sending at once without holding more than 2.5 MiB idle. */
const batches = new BatchPool(10);

export async function spoolBody(source: Readable, path: string, maxSize: number): Promise<SpoolResult> {
  // The source may fail while the file is being opened, before the loop below listens: without this an
  // 'error' event with no listener would crash the process. The loop still sees the error (stream.errored).
  source.on('error', () => undefined);
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    drain(source);
    throw toSpoolError(err);
  }
  const hash = createHash('sha256');
  const sniffer = new HeaderSniffer();
  let size = 0;
  let has8bit = false;
  let batch: Buffer | undefined;
  let batchBytes = 0;
  let writeError: unknown;
  let tooLarge = false;

  const flush = async () => {
    if (batch === undefined || batchBytes === 0 || writeError || tooLarge) return;
    const bytes = batchBytes;
    batchBytes = 0;
    try {
      await writeAll(handle, batch.subarray(0, bytes));
    } catch (err) {
      writeError = err;
    }
  };

  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxSize) tooLarge = true;
      if (tooLarge || writeError) continue; // keep reading to the end of DATA, store nothing more
      hash.update(chunk);
      sniffer.push(chunk);
      if (!has8bit) has8bit = hasHighBit(chunk);
      for (let at = 0; at < chunk.length; ) {
        batch ??= batches.take();
        const copied = chunk.copy(batch, batchBytes, at);
        batchBytes += copied;
        at += copied;
        if (batchBytes === BATCH_BYTES) await flush();
      }
    }
    await flush();
    if (!writeError && !tooLarge) await handle.sync();
  } catch (err) {
    // The client went away mid-DATA (socket closed, timeout): nothing was promised, nothing is kept.
    await discard(handle, path);
    throw new SpoolError('SCANRELAY_SPOOL_ABORTED', `transfer aborted: ${(err as Error).message}`, err);
  } finally {
    // Invariant: the batch goes back only with no write from it in flight; flush is only ever awaited inline.
    if (batch !== undefined) batches.give(batch);
  }
  if (tooLarge) {
    await discard(handle, path);
    throw new MessageTooLargeError(maxSize);
  }
  if (writeError) {
    await discard(handle, path);
    throw toSpoolError(writeError);
  }
  // The data is on disk (fsynced): closing the descriptor is not waited for, it only costs the accept a
  // trip through the thread pool. A close error after a successful fsync loses nothing.
  void handle.close().catch(() => undefined);
  return { size, sha256: hash.digest('hex'), headers: sniffer.result(), has8bit };
}

/**
 * write until every byte is on disk. One write may write less than asked without an error (a nearly
 * full disk, a file-size limit); the next call then reports the real error (ENOSPC, EFBIG). Ignoring the
 * count would acknowledge a truncated body.
 */
async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; ) {
    const { bytesWritten } = await handle.write(data, at, data.length - at);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    at += bytesWritten;
  }
}

async function discard(handle: FileHandle, path: string): Promise<void> {
  await handle.close().catch(() => undefined);
  await unlink(path).catch(() => undefined);
}

function drain(source: Readable): void {
  source.on('error', () => undefined);
  source.resume();
}

export function toSpoolError(err: unknown): SpoolError {
  if (err instanceof SpoolError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  // SQLITE_FULL: the database commit found the disk full (the row, after the body).
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return new SpoolError('SCANRELAY_SPOOL_DISK_FULL', 'the spool disk is full', err);
  return new SpoolError('SCANRELAY_SPOOL_WRITE', `cannot write to the spool (${code ?? 'error'})`, err);
}

/** Native (SIMD) ASCII check: a JS byte loop showed up in the bench profile. */
function hasHighBit(chunk: Buffer): boolean {
  return !isAscii(chunk);
}

/** Reads the header block (first 64 KiB at most) to learn From/Subject/Message-ID for the message log. */
class HeaderSniffer {
  private buffered: Buffer[] = [];
  private bytes = 0;
  private done = false;
  private parsed: SniffedHeaders = { hasDate: false };

  push(chunk: Buffer): void {
    if (this.done) return;
    this.buffered.push(chunk);
    this.bytes += chunk.length;
    const all = Buffer.concat(this.buffered);
    this.buffered = [all];
    const end = findHeaderEnd(all);
    if (end !== -1) this.finish(all.subarray(0, end), end);
    else if (this.bytes >= HEADER_SNIFF_LIMIT) this.finish(all.subarray(0, HEADER_SNIFF_LIMIT), undefined);
  }

  result(): SniffedHeaders {
    if (!this.done) this.finish(Buffer.concat(this.buffered), undefined);
    return this.parsed;
  }

  private finish(block: Buffer, headerBytes: number | undefined): void {
    this.done = true;
    this.buffered = [];
    const headers = parseHeaderBlock(block.toString('latin1'));
    const first = (name: string) => headers.find(([key]) => key === name)?.[1];
    this.parsed = {
      from: clip(first('from')),
      to: clip(first('to')),
      subject: clip(first('subject')),
      messageId: clip(first('message-id')),
      hasDate: headers.some(([key]) => key === 'date'),
      headerBytes,
    };
  }
}

/** Index just past the blank line ending the header block (CRLF or bare LF), or -1. */
export function findHeaderEnd(data: Buffer): number {
  if (data.length >= 2 && data[0] === 0x0d && data[1] === 0x0a) return 2; // no headers at all
  if (data.length >= 1 && data[0] === 0x0a) return 1;
  for (let i = 0; i < data.length - 1; i++) {
    if (data[i] !== 0x0a) continue;
    if (data[i + 1] === 0x0a) return i + 2;
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** [lower-case name, unfolded value] pairs, in order. */
export function parseHeaderBlock(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break;
    if (/^[ \t]/.test(line) && out.length > 0) {
      out[out.length - 1][1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}

function clip(value: string | undefined): string | undefined {
  return value === undefined ? undefined : value.slice(0, 500);
}
