/**
 * Raw-socket helpers for the hostile-client and fuzz tests: send exact bytes, collect everything the
 * server says until it closes (bounded), and check that what it said is well-formed SMTP.
 */
import { connect } from 'node:net';

export interface Conversation {
  /** Everything received, latin1. */
  text: string;
  /** The server closed the connection within the bound. */
  closedByServer: boolean;
  /** The bound ran out first (the test closed the socket). */
  timedOut: boolean;
  elapsedMs: number;
}

export interface ConverseOptions {
  /** Chunks written in order; a number is a pause in ms between writes. */
  script: Array<string | Buffer | number>;
  /** Hard bound for the whole conversation. */
  timeoutMs: number;
  /** Wait for the greeting before writing (default true). */
  awaitGreeting?: boolean;
}

/** Connects, writes the script, and reads until the server closes or the bound runs out. */
export function converse(port: number, options: ConverseOptions): Promise<Conversation> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let text = '';
    let finished = false;
    let greeted = false;
    const finish = (closedByServer: boolean, timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closedByServer, timedOut, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false, true), options.timeoutMs);
    const write = async () => {
      for (const step of options.script) {
        if (finished || socket.destroyed) return;
        // A number in the script is the client's own pause between writes (pacing), not a wait before an assertion.
        if (typeof step === 'number') await new Promise((r) => setTimeout(r, step));
        else socket.write(step);
      }
    };
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => {
      text += data;
      if (!greeted && options.awaitGreeting !== false && text.includes('\n')) {
        greeted = true;
        void write();
      }
    });
    socket.on('connect', () => {
      if (options.awaitGreeting === false) void write();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true, false));
  });
}

export interface ParsedReplies {
  /** Final code of each complete reply, in order. */
  codes: number[];
  /** Lines that are not SMTP reply lines, or continuation lines whose code changed. */
  malformed: string[];
  /** Bytes after the last CRLF (a reply cut off). */
  partial: string;
}

const REPLY_LINE = /^([2-5]\d\d)([ -])([\x20-\x7e\t]*)$/;

/** Splits a server's byte stream into replies (RFC 5321 4.2: "ddd-text" continues, "ddd text" ends). */
export function parseReplies(text: string): ParsedReplies {
  const codes: number[] = [];
  const malformed: string[] = [];
  const lines = text.split('\r\n');
  const partial = lines.pop() ?? '';
  let continuing: string | undefined;
  for (const line of lines) {
    const match = REPLY_LINE.exec(line) ?? (/^[2-5]\d\d$/.test(line) ? [line, line, ' ', ''] : null);
    if (!match) {
      malformed.push(line);
      continue;
    }
    const [, code, separator] = match;
    if (continuing !== undefined && continuing !== code) malformed.push(line);
    if (separator === '-') continuing = code;
    else {
      continuing = undefined;
      codes.push(Number(code));
    }
  }
  return { codes, malformed, partial };
}
