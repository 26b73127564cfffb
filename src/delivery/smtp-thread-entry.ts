/**
 * The SMTP client thread: nodemailer's pooled connections to the upstreams, and their TLS, run here.
 * Encrypting and writing outgoing scans is most of a gateway's work; on the main thread it made every
 * printer's final dot wait behind it. The main thread (smtp-thread.ts) decides everything (which upstream,
 * which recipients, what an error means); this thread only speaks SMTP: send, verify, probe.
 *
 * Invariant: the body's file descriptor belongs to the main thread's claim and is closed there once this
 * thread answers. So every answer about a send goes out only after its body stream is closed, never while
 * a read on that descriptor may still be issued (the number could by then be another file's).
 */
import { read } from 'node:fs';
import { Readable } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { parentPort } from 'node:worker_threads';
import type nodemailerModule from 'nodemailer';
import { importHttpWithoutUndici } from '../shared/lazy-undici.js';
import { installFastDotStuffing } from './dot-stuffing.js';
import { errorFacts, errorFrom, type FromThread, type MailSpec, type SendOutcome, type ToThread, type TransportSpec } from './smtp-thread-protocol.js';

// nodemailer loads after node:http's namespace is built without undici (lazy-undici.ts): it imports node:http.
await importHttpWithoutUndici();
const [{ default: nodemailer }, { default: SMTPConnection }] = await Promise.all([import('nodemailer'), import('nodemailer/lib/smtp-connection')]);

type Mailer = ReturnType<typeof nodemailerModule.createTransport>;
type TokenCallback = (err: Error | null, accessToken?: string, expires?: number) => void;

const port = parentPort;
if (!port) throw new Error('smtp-thread-entry runs as a worker thread (smtp-thread.ts starts it)');
installFastDotStuffing();

const transports = new Map<string, Mailer>();
const contexts = new Map<string, SecureContext>();
const tokenRequests = new Map<number, TokenCallback>();
let nextTokenRequest = 1;

const post = (message: FromThread) => port.postMessage(message);

port.on('message', (message: ToThread) => {
  switch (message.type) {
    case 'send':
      send(message.key, message.spec, message.mail).then(
        (outcome) => post({ type: 'done', id: message.id, outcome }),
        (err: unknown) => post({ type: 'done', id: message.id, error: errorFacts(err) }),
      );
      break;
    case 'verify':
      transportFor(message.key, message.spec)
        .verify()
        .then(
          () => post({ type: 'done', id: message.id }),
          (err: unknown) => post({ type: 'done', id: message.id, error: errorFacts(err) }),
        );
      break;
    case 'probe':
      probe(message.spec).then(
        () => post({ type: 'done', id: message.id }),
        (err: unknown) => post({ type: 'done', id: message.id, error: errorFacts(err) }),
      );
      break;
    case 'close': {
      const mailer = transports.get(message.key);
      transports.delete(message.key);
      (mailer?.transporter as { close(options?: { force?: boolean }): void } | undefined)?.close({ force: message.force });
      break;
    }
    case 'token': {
      const callback = tokenRequests.get(message.id);
      tokenRequests.delete(message.id);
      if (message.error) callback?.(errorFrom(message.error));
      else callback?.(null, message.accessToken, message.expires);
      break;
    }
  }
});

async function send(key: string, spec: TransportSpec, mail: MailSpec): Promise<SendOutcome> {
  const body = mail.body ? new BodyReader(mail.body.fd, mail.body.start) : undefined;
  const raw = Readable.from(bytesOf(Buffer.from(mail.head.buffer, mail.head.byteOffset, mail.head.byteLength), body), { objectMode: false });
  try {
    const info = await transportFor(key, spec).sendMail({
      envelope: { from: mail.from, to: mail.to, size: mail.size, use8BitMime: mail.use8BitMime } as { from: string; to: string[] },
      raw,
      messageId: mail.messageId,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
    const rejectedErrors = (info as { rejectedErrors?: Error[] }).rejectedErrors ?? [];
    return {
      accepted: (info.accepted ?? []).map(String),
      rejected: (info.rejected ?? []).map(String),
      rejectedErrors: rejectedErrors.map(errorFacts),
      response: info.response,
    };
  } finally {
    raw.destroy();
    await body?.stop();
  }
}

async function* bytesOf(head: Buffer, body: BodyReader | undefined): AsyncGenerator<Buffer> {
  yield head;
  if (body) yield* body.chunks();
}

/**
 * Positioned reads of the claim's descriptor. Not fs.ReadStream: destroying one closes its descriptor
 * even with autoClose off, and this descriptor is not ours to close (see the invariant above).
 */
class BodyReader {
  private position: number;
  private reading?: Promise<number>;
  private stopped = false;

  constructor(
    private readonly fd: number,
    start: number,
  ) {
    this.position = start;
  }

  async *chunks(): AsyncGenerator<Buffer> {
    while (!this.stopped) {
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      this.reading = readAt(this.fd, buffer, this.position);
      const bytesRead = await this.reading;
      if (bytesRead === 0 || this.stopped) return;
      this.position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  }

  /** Resolves once no read is running and none can start. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.reading?.catch(() => undefined);
  }
}

const CHUNK_BYTES = 64 * 1024;

function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, buffer.length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
}

function transportFor(key: string, spec: TransportSpec): Mailer {
  let mailer = transports.get(key);
  if (mailer) return mailer;
  mailer = nodemailer.createTransport({
    ...connectionOptions(spec),
    pool: true,
    maxConnections: spec.maxConnections,
    maxMessages: 100,
    maxRequeues: 0,
    forceAuth: true,
    auth: spec.auth.oauth2 ? { type: 'OAuth2', user: spec.auth.user, provisionCallback: tokenProvider(key) } : { user: spec.auth.user, pass: spec.auth.pass },
  });
  mailer.on('error', (err) => post({ type: 'transport-error', key, message: (err as Error).message }));
  transports.set(key, mailer);
  return mailer;
}

/** XOAUTH2: nodemailer asks for a token, the main thread (which owns the refresh token) answers. */
function tokenProvider(key: string) {
  return (_user: string, renew: boolean, callback: TokenCallback) => {
    const id = nextTokenRequest++;
    tokenRequests.set(id, callback);
    post({ type: 'token', id, key, renew });
  };
}

function connectionOptions(spec: TransportSpec) {
  return {
    host: spec.host,
    port: spec.port,
    secure: spec.secure,
    requireTLS: spec.requireTLS,
    opportunisticTLS: false,
    ignoreTLS: false,
    servername: spec.servername,
    tls: {
      secureContext: secureContext(spec),
      rejectUnauthorized: spec.tls.rejectUnauthorized,
      servername: spec.tls.servername,
      minVersion: spec.tls.minVersion,
    },
    name: spec.name,
    connectionTimeout: spec.connectionTimeout,
    greetingTimeout: spec.greetingTimeout,
    socketTimeout: spec.socketTimeout,
    logger: false,
  } as const;
}

/**
 * One TLS context per CA bundle, built once: a configured CA is trusted in addition to the public roots
 * (never instead of verification), and parsing that bundle per connection would cost more than the handshake.
 */
function secureContext(spec: TransportSpec): SecureContext {
  const key = `${spec.tls.minVersion ?? ''}\n${spec.tls.ca ?? ''}`;
  let context = contexts.get(key);
  if (!context) {
    context = createSecureContext({ ca: spec.tls.ca ? [...rootCertificates, spec.tls.ca] : undefined, minVersion: spec.tls.minVersion });
    contexts.set(key, context);
  }
  return context;
}

/** auto's probe: connect and TLS only, no AUTH. */
function probe(spec: TransportSpec): Promise<void> {
  const connection = new SMTPConnection(connectionOptions(spec));
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) {
        connection.close();
        reject(err);
      } else {
        connection.quit();
        resolve();
      }
    };
    connection.once('error', (err: Error) => finish(err));
    connection.once('end', () => finish(Object.assign(new Error('connection closed during the probe'), { code: 'ECONNECTION' })));
    connection.connect((err?: Error | null) => finish(err ?? undefined));
  });
}
