/**
 * A raw client socket that collects what the server sends into a text buffer and lets a reader wait,
 * bounded, for more. RawSmtpClient and the POP3 test client parse replies on top of it.
 */
import { connect, type Socket } from 'node:net';

export class LineSocket {
  protected buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;

  protected constructor(
    readonly socket: Socket,
    encoding: BufferEncoding,
  ) {
    socket.setEncoding(encoding);
    socket.on('data', (data: string) => {
      this.buffer += data;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: the source address to bind (a 127.x.y.z address lets one test be many clients). */
  /** `allowHalfOpen`: keep our side open after the server's FIN (a client that is slow to hang up). */
  protected static async connectSocket(port: number, host = '127.0.0.1', localAddress?: string, allowHalfOpen = false): Promise<Socket> {
    const socket = connect({ port, host, allowHalfOpen, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return socket;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Calls `take` on the buffer until it returns a value; throws when the connection closes or time runs out. */
  protected async until<T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = take();
      if (value !== undefined) return value;
      if (this.closed) throw new Error(`connection closed while waiting for ${what} (buffer: ${JSON.stringify(this.buffer)})`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buffer)})`);
      await this.nextEvent(deadline);
    }
  }

  /** Waits for the server to close the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await this.nextEvent(deadline);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private nextEvent(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}
