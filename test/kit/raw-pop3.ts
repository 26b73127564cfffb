/**
 * A line-oriented POP3 client over a raw socket: exact commands in, reply lines out. `localAddress` picks
 * the loopback source address (127.x.y.z), so one test can be many clients.
 */
import { LineSocket } from './line-socket.js';

export class RawPop3Client extends LineSocket {
  static async open(port: number, localAddress?: string): Promise<{ client: RawPop3Client; greeting: string }> {
    const client = new RawPop3Client(await LineSocket.connectSocket(port, '127.0.0.1', localAddress), 'utf8');
    return { client, greeting: await client.readLine() };
  }
  /** Sends one command and reads a single-line reply. */
  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.readLine();
  }

  /** Sends one command and reads a multi-line reply up to the "." line (or a single -ERR line). */
  async multiline(line: string): Promise<string[]> {
    this.write(`${line}\r\n`);
    const first = await this.readLine();
    if (!first.startsWith('+OK')) return [first];
    const lines = [first];
    for (;;) {
      const next = await this.readLine();
      lines.push(next);
      if (next === '.') return lines;
    }
  }

  async readLine(timeoutMs = 10_000): Promise<string> {
    return this.until(
      () => {
        const end = this.buffer.indexOf('\r\n');
        if (end === -1) return undefined;
        const line = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return line;
      },
      timeoutMs,
      'a POP3 line',
    );
  }
}
