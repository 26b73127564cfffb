/**
 * A real upstream for delivery tests: smtp-server on 127.0.0.1 that demands TLS (implicit, like 465, or
 * STARTTLS, like 587) and AUTH, records what it receives (envelope, raw bytes, sha256) and can fail a
 * chosen stage with a chosen reply, hang, or go down (closed port) and come back on the same port.
 * With `keep: 'count'` it keeps no bodies (the benchmark pushes gigabytes through it): it counts, and
 * hands each message's envelope, size and first 4 KiB of header text to `onMessage`.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { testCerts } from './certs.js';

export type UpstreamStage = 'connect' | 'auth' | 'mail' | 'rcpt' | 'data';

export interface TestUpstreamOptions {
  /** tls: implicit TLS from the first byte; starttls: plaintext greeting, STARTTLS required before AUTH. */
  mode: 'tls' | 'starttls';
  /** STARTTLS mode only: the server does not offer or accept STARTTLS at all (and would take AUTH in plaintext). */
  noStarttls?: boolean;
  user?: string;
  password?: string;
  /** Accept XOAUTH2 with this check instead of passwords. */
  checkAccessToken?: (user: string, accessToken: string) => boolean;
  /** SIZE limit advertised. */
  size?: number;
  /** Server key/cert; default: the test CA's localhost certificate. */
  tls?: { key: string; cert: string };
  port?: number;
  /** messages (default): every message is kept in `received`; count: only counted and passed to `onMessage`. */
  keep?: 'messages' | 'count';
  /** Called for every accepted message. */
  onMessage?: (message: UpstreamDelivery) => void;
  /** Greeting text after "220 <name>". */
  banner?: string;
}

/** What `onMessage` gets for every accepted message, in both `keep` modes. */
export interface UpstreamDelivery {
  mailFrom: string;
  rcptTo: string[];
  size: number;
  /** The first 4 KiB of the message as latin1 text (the header block of a scan). */
  head: string;
  user?: string;
  secure: boolean;
  /** The whole message, in `keep: 'messages'` mode only. */
  message?: ReceivedMessage;
}

export interface ReceivedMessage {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
  sha256: string;
  user?: string;
  /** TLS was in use on the session. */
  secure: boolean;
}

export interface AuthRecord {
  method: string;
  username?: string;
  secure: boolean;
  ok: boolean;
}

interface Trigger {
  stage: UpstreamStage;
  code: number;
  message: string;
  remaining: number;
  recipient?: string;
}

const HEAD_BYTES = 4096;

export const UPSTREAM_USER = 'scanner-account@example.edu';
export const UPSTREAM_PASSWORD = 'abcdefghijklmnop';

export class TestUpstream {
  readonly received: ReceivedMessage[] = [];
  readonly auths: AuthRecord[] = [];
  /** DATA transfers that began (including hung and aborted ones). */
  dataStarted = 0;
  connections = 0;
  /** Messages answered 250, in both `keep` modes. */
  accepted = 0;
  /** Called for every accepted message (starts as `options.onMessage`). */
  onMessage?: (message: UpstreamDelivery) => void;
  port = 0;
  password: string;
  private server?: SMTPServer;
  private triggers: Trigger[] = [];
  private hangStage?: 'data';
  private readonly hung: Array<(accept: boolean) => void> = [];

  private constructor(readonly options: TestUpstreamOptions) {
    this.password = options.password ?? UPSTREAM_PASSWORD;
    this.onMessage = options.onMessage;
  }

  static async start(options: TestUpstreamOptions): Promise<TestUpstream> {
    const upstream = new TestUpstream(options);
    await upstream.listen(options.port ?? 0);
    return upstream;
  }

  get user(): string {
    return this.options.user ?? UPSTREAM_USER;
  }

  /** The next `count` commands at `stage` get `code message` (rcpt: optionally only for one address). */
  failNext(stage: UpstreamStage, code: number, message: string, count = 1, recipient?: string): void {
    this.triggers.push({ stage, code, message, remaining: count, recipient: recipient?.toLowerCase() });
  }

  /** Every stage failure from now on (until clearFailures). */
  failAlways(stage: UpstreamStage, code: number, message: string, recipient?: string): void {
    this.failNext(stage, code, message, Infinity, recipient);
  }

  clearFailures(): void {
    this.triggers = [];
  }

  /** DATA content is read, but the final reply never comes (until releaseHung or close). */
  hangInData(on = true): void {
    this.hangStage = on ? 'data' : undefined;
  }

  /** Answers the hung transfers: 250 (recorded as received) when `accept`, else 451. */
  releaseHung(accept = false): void {
    for (const release of this.hung.splice(0)) release(accept);
  }

  get hungCount(): number {
    return this.hung.length;
  }

  setPassword(password: string): void {
    this.password = password;
  }

  /** Closes the port: new connections are refused until `resume()`. */
  async down(): Promise<void> {
    await this.closeServer();
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    this.releaseHung();
    await this.closeServer();
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private take(stage: UpstreamStage, recipient?: string): Error | undefined {
    const trigger = this.triggers.find((t) => t.stage === stage && t.remaining > 0 && (!t.recipient || t.recipient === recipient?.toLowerCase()));
    if (!trigger) return undefined;
    trigger.remaining--;
    return Object.assign(new Error(trigger.message), { responseCode: trigger.code });
  }

  private async listen(port: number): Promise<void> {
    const certs = this.options.tls ?? (await testCerts());
    const implicit = this.options.mode === 'tls';
    const server = new SMTPServer({
      secure: implicit,
      key: certs.key,
      cert: certs.cert,
      name: 'upstream.test',
      banner: this.options.banner,
      logger: false,
      disableReverseLookup: true,
      closeTimeout: 300,
      size: this.options.size,
      authMethods: this.options.checkAccessToken ? ['XOAUTH2'] : ['PLAIN', 'LOGIN'],
      disabledCommands: this.options.noStarttls ? ['STARTTLS'] : [],
      onConnect: (_session, callback) => {
        this.connections++;
        callback(this.take('connect'));
      },
      onAuth: (auth, session, callback) => this.onAuth(auth, session, callback),
      onMailFrom: (_address, _session, callback) => callback(this.take('mail')),
      onRcptTo: (address, _session, callback) => callback(this.take('rcpt', address.address)),
      onData: (stream, session, callback) => {
        this.dataStarted++;
        const keepAll = this.options.keep !== 'count';
        const chunks: Buffer[] = [];
        let size = 0;
        let head = '';
        stream.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (keepAll) chunks.push(chunk);
          else if (head.length < HEAD_BYTES) head += chunk.subarray(0, HEAD_BYTES - head.length).toString('latin1');
        });
        stream.on('error', () => undefined);
        const accept = () => {
          this.accepted++;
          const envelope = {
            mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            user: session.user as string | undefined,
            secure: session.secure,
          };
          let message: ReceivedMessage | undefined;
          if (keepAll) {
            const raw = Buffer.concat(chunks);
            message = { ...envelope, raw, sha256: createHash('sha256').update(raw).digest('hex') };
            this.received.push(message);
            head = raw.subarray(0, HEAD_BYTES).toString('latin1');
          }
          this.onMessage?.({ ...envelope, size, head, message });
          callback(null, `2.0.0 OK ${this.accepted} upstream-accepted`);
        };
        stream.on('end', () => {
          if (this.hangStage === 'data') {
            this.hung.push((ok) => (ok ? accept() : callback(Object.assign(new Error('4.3.0 released'), { responseCode: 451 }))));
            return;
          }
          const failure = this.take('data');
          if (failure) return callback(failure);
          if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
            return callback(Object.assign(new Error('5.3.4 Message size exceeds fixed maximum message size'), { responseCode: 552 }));
          }
          accept();
        });
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.server.address() as AddressInfo).port;
  }

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: { user?: string; data?: object }) => void,
  ): void {
    const failure = this.take('auth');
    const record = (ok: boolean) => this.auths.push({ method: auth.method, username: auth.username, secure: session.secure, ok });
    if (failure) {
      record(false);
      return callback(failure);
    }
    if (auth.method === 'XOAUTH2') {
      const ok = Boolean(auth.username && auth.accessToken && this.options.checkAccessToken?.(auth.username, auth.accessToken));
      record(ok);
      if (ok) return callback(null, { user: auth.username });
      return callback(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } });
    }
    const ok = auth.username === this.user && auth.password === this.password;
    record(ok);
    if (ok) return callback(null, { user: auth.username });
    callback(Object.assign(new Error('5.7.8 Username and Password not accepted. BadCredentials'), { responseCode: 535 }));
  }
}

// ---- gateway-side config and sending, shared by the delivery tests ----

export const TEST_DEVICE = { name: 'scanner-2f', username: 'scanner-2f', password: 'device-pass-0123', allowRecipients: ['*@example.org'] };

/** The `upstreams[]` entry (YAML shape) pointing at a test upstream, trusting the test CA in `caFile`. */
export function upstreamEntry(upstream: TestUpstream, caFile: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'gmail-test',
    host: '127.0.0.1',
    port: upstream.port,
    security: upstream.options.mode,
    user: upstream.user,
    password: upstream.password,
    tls: { ca: caFile },
    connectionTimeout: '5s',
    socketTimeout: '10s',
    ...extra,
  };
}

/** Sends one message to the gateway as the test device; resolves with the queue id from "250 ... queued as <id>". */
export async function sendToGateway(
  smtpPort: number,
  mail: { to: string | string[]; raw?: Buffer | string; subject?: string; text?: string; from?: string },
): Promise<string> {
  const { default: nodemailer } = await import('nodemailer');
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: smtpPort,
    ignoreTLS: true,
    auth: { user: TEST_DEVICE.username, pass: TEST_DEVICE.password },
  });
  try {
    const to = Array.isArray(mail.to) ? mail.to : [mail.to];
    const from = mail.from ?? 'printer@example.org';
    const info =
      mail.raw !== undefined
        ? await transport.sendMail({ envelope: { from, to }, raw: mail.raw })
        : await transport.sendMail({ from, to, subject: mail.subject ?? 'Scan', text: mail.text ?? 'scanned document' });
    const id = /queued as (\w+)/.exec(info.response)?.[1];
    if (!id) throw new Error(`no queue id in ${info.response}`);
    return id;
  } finally {
    transport.close();
  }
}

/** The part of a received message after its header block (the body, byte for byte). */
export function bodyOf(raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  return end < 0 ? Buffer.alloc(0) : raw.subarray(end + 4);
}

/** The header block of a received message as text. */
export function headersOf(raw: Buffer): string {
  const end = raw.indexOf('\r\n\r\n');
  return raw.subarray(0, end < 0 ? raw.length : end + 2).toString('latin1');
}
