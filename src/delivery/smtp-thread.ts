/**
 * The main thread's side of the SMTP client thread (smtp-thread-entry.ts): it starts the thread at the
 * first use, sends it work, answers its XOAUTH2 token requests, and turns its answers back into results
 * and Errors with nodemailer's facts, so the rest of delivery sees what nodemailer would have given it.
 *
 * If the thread dies, every send in flight fails with a connection error (ECONNECTION), so those messages
 * are deferred and tried again like after a dropped connection, and the next use starts a new thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.js';
import { errorFacts, errorFrom, type FromThread, type MailSpec, type SendOutcome, type ToThread, type TransportSpec } from './smtp-thread-protocol.js';

/** nodemailer's provisionCallback shape (oauth2.ts). */
export type TokenProvision = (user: string, renew: boolean, callback: (err: Error | null, accessToken?: string, expires?: number) => void) => void;

interface Pending {
  resolve: (outcome: SendOutcome | undefined) => void;
  reject: (err: Error) => void;
}

export class SmtpThread {
  private worker?: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly tokenProviders = new Map<string, TokenProvision>();
  private nextId = 1;
  private stopped = false;

  constructor(private readonly logger: Logger) {}

  async send(key: string, spec: TransportSpec, mail: MailSpec, tokens?: TokenProvision): Promise<SendOutcome> {
    if (tokens) this.tokenProviders.set(key, tokens);
    // The head goes over in a buffer of its own, moved rather than copied (a Buffer is often a view into
    // a larger shared one, which cloning would copy whole).
    const head = new Uint8Array(mail.head);
    const outcome = await this.call((id) => ({ type: 'send', id, key, spec, mail: { ...mail, head } }), [head.buffer]);
    if (!outcome) throw new Error('the SMTP client thread answered a send without a result');
    return outcome;
  }

  async verify(key: string, spec: TransportSpec, tokens?: TokenProvision): Promise<void> {
    if (tokens) this.tokenProviders.set(key, tokens);
    await this.call((id) => ({ type: 'verify', id, key, spec }));
  }

  async probe(spec: TransportSpec): Promise<void> {
    await this.call((id) => ({ type: 'probe', id, spec }));
  }

  /** Closes one transport's pooled connections (force: also those in the middle of a send). */
  close(key: string, force: boolean): void {
    this.tokenProviders.delete(key);
    this.worker?.postMessage({ type: 'close', key, force } satisfies ToThread);
  }

  /** Ends the thread (after delivery has drained); a send still running fails as a dropped connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.failPending('the gateway is stopping');
  }

  private call(build: (id: number) => ToThread, transfer: ArrayBuffer[] = []): Promise<SendOutcome | undefined> {
    if (this.stopped) return Promise.reject(Object.assign(new Error('the gateway is stopping'), { code: 'ECONNECTION' }));
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Work in flight keeps the process alive; an idle thread never does.
      if (this.pending.size === 1) worker.ref();
      worker.postMessage(build(id), transfer);
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = startWorker();
    worker.unref();
    worker.on('message', (message: FromThread) => this.onMessage(worker, message));
    worker.on('error', (err) => this.logger.error({ err: err.message }, 'delivery.smtp-thread.error'));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.logger.error({ exitCode: code }, 'delivery.smtp-thread.exited: sends in flight are deferred; the next send starts a new thread');
      this.failPending(`the SMTP client thread stopped (exit code ${code})`);
    });
    this.worker = worker;
    return worker;
  }

  private onMessage(worker: Worker, message: FromThread): void {
    switch (message.type) {
      case 'done': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (this.pending.size === 0) worker.unref();
        if (!pending) return;
        if (message.error) pending.reject(errorFrom(message.error));
        else pending.resolve(message.outcome);
        break;
      }
      case 'token': {
        const provision = this.tokenProviders.get(message.key);
        const answer = (reply: Omit<Extract<ToThread, { type: 'token' }>, 'type' | 'id'>) =>
          worker.postMessage({ type: 'token', id: message.id, ...reply } satisfies ToThread);
        if (!provision) {
          answer({ error: { message: 'no OAuth2 settings for this upstream any more', code: 'EOAUTH2' } });
          return;
        }
        provision('', message.renew, (err, accessToken, expires) => answer(err ? { error: errorFacts(err) } : { accessToken, expires }));
        break;
      }
      case 'transport-error':
        this.logger.warn({ transport: message.key, err: message.message }, 'upstream.transport.error');
        break;
    }
  }

  private failPending(reason: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(Object.assign(new Error(reason), { code: 'ECONNECTION' }));
  }
}

/**
 * The compiled thread runs as is; from the TypeScript sources (npm start, the tests), a small boot file
 * registers tsx in the thread first, since a loader given to the main thread does not reach workers on Node 20.
 */
function startWorker(): Worker {
  const compiled = new URL('./smtp-thread-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, { resourceLimits: THREAD_LIMITS });
  return new Worker(new URL('./smtp-thread-boot.mjs', import.meta.url), {
    workerData: { entry: new URL('./smtp-thread-entry.ts', import.meta.url).href },
    resourceLimits: THREAD_LIMITS,
  });
}

/**
 * V8 lets a heap grow to up to 4x its live size before the next full collection when its limit is large
 * (the default, about 2 GB), and 1.3x when the limit is 256 MB or less. The thread's live heap is about
 * 13 MB (transports, sessions; bodies are outside the heap), so 256 MB leaves 20x headroom while Node 24's
 * thread no longer grows to 40 MB committed. Were the limit ever reached, the thread dies, its sends are
 * deferred (ECONNECTION) and the next send starts a new one.
 */
const THREAD_LIMITS = { maxOldGenerationSizeMb: 256 };
