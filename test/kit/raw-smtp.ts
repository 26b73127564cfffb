/**
 * A raw SMTP client over a plain socket, for protocol edge cases nodemailer would never send:
 * send exact bytes, read complete replies (multi-line aware).
 */
import type { Socket } from 'node:net';
import { LineSocket } from './line-socket.js';

export interface SmtpResponse {
  code: number;
  lines: string[];
  text: string;
}

export class RawSmtpClient extends LineSocket {
  private constructor(socket: Socket) {
    super(socket, 'latin1');
  }

  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawSmtpClient> {
    return new RawSmtpClient(await LineSocket.connectSocket(port, host, localAddress));
  }

  /** Connects and reads the greeting, and does not hang up when the server does (until close()). */
  static async openLingering(port: number): Promise<{ client: RawSmtpClient; greeting: SmtpResponse }> {
    const client = new RawSmtpClient(await LineSocket.connectSocket(port, '127.0.0.1', undefined, true));
    return { client, greeting: await client.read() };
  }

  /** Connects and reads the greeting; `localAddress` picks the loopback source (127.x.y.z). */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<{ client: RawSmtpClient; greeting: SmtpResponse }> {
    const client = await RawSmtpClient.connect(port, host, localAddress);
    const greeting = await client.read();
    return { client, greeting };
  }

  /** Sends one line (CRLF added unless `eol` given) and reads the reply. */
  async command(line: string, eol = '\r\n', timeoutMs = 10_000): Promise<SmtpResponse> {
    this.write(line + eol);
    return this.read(timeoutMs);
  }

  /** Reads one complete reply (all continuation lines). */
  async read(timeoutMs = 10_000): Promise<SmtpResponse> {
    return this.until(() => this.takeReply(), timeoutMs, 'an SMTP reply');
  }

  private takeReply(): SmtpResponse | undefined {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\n', offset);
      if (end === -1) return undefined;
      const line = this.buffer.slice(offset, end).replace(/\r$/, '');
      offset = end + 1;
      lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        this.buffer = this.buffer.slice(offset);
        return { code: Number(line.slice(0, 3)), lines, text: lines.map((l) => l.slice(4)).join('\n') };
      }
      if (!/^\d{3}-/.test(line)) {
        this.buffer = this.buffer.slice(offset);
        return { code: 0, lines, text: lines.join('\n') };
      }
    }
  }
}

export function plainAuth(username: string, password: string): string {
  return Buffer.from(`\0${username}\0${password}`).toString('base64');
}
