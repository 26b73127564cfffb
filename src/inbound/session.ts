/**
 * One SMTP connection: who it is (identity), its logger, its slot, its deadlines, and one method per
 * stage that returns the reply to send (undefined = accept). index.ts only binds smtp-server's callbacks
 * to these methods.
 *
 * Stages: connect (lock-out, slot admission, pre-auth deadline) -> auth (the login recorder) or
 * identification by address / POP3 grant at MAIL -> mail (sender rules, size) -> rcpt (each recipient)
 * -> data (streamed into queue.accept; 250 only after the body and record are fsynced) -> quit / closed.
 * Every stage emits a `session.step` for the printer doctor (built only when somebody listens).
 *
 * Logging is bounded per session: the first logDetailPerSession detail lines, then one in logSampleEvery,
 * and one summary line at the end, so a client sending 40,000 refused commands writes a few dozen lines.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import addressparser from 'nodemailer/lib/addressparser';
import type { SmtpConfig } from '../config/index.js';
import type { DeviceRegistry } from '../devices/index.js';
import type { Queue } from '../queue/index.js';
import type { ConnectionRefusal, GatewayEventBus, SessionStepName } from '../shared/events.js';
import type { Logger } from '../observability/logger.js';
import { canonicalAddress } from '../shared/cidr.js';
import { MessageTooLargeError, SpoolError, errorMessage } from '../shared/errors.js';
import { newSessionId } from '../shared/ids.js';
import type { LoginOutcome, LoginRecorder } from './login-recorder.js';
import { checkMailFrom, checkRecipient, identifySender, type SessionIdentity } from './policy.js';
import type { ConnectionControl } from './quirks.js';
import { replies, type SmtpReply } from './replies.js';
import { refusalReason, type SlotAccountant, type SlotHolder } from './slots.js';

export type Listener = 'smtp' | 'smtps';

/** The parts a session works with, as the composition root hands them to createInboundServer (InboundDeps). */
export interface SessionParts {
  /** Read at each use, so a config reload applies to new sessions. */
  config: () => SmtpConfig;
  devices: DeviceRegistry;
  queue: Queue;
  events: GatewayEventBus;
  logger: Logger;
  logins: LoginRecorder;
  /** POP-before-SMTP: the device a POP3 login authorised for this address, if any. */
  popGrant?: (address: string) => string | undefined;
  /** The device whose POP3 grant for this address ran out recently, if any (for a reply that says so). */
  expiredPopGrant?: (address: string) => string | undefined;
  /** fromMode of an upstream by name: with `keep` the printer's header From goes out as written. */
  fromModeOf?: (upstream: string) => 'keep' | 'rewrite' | undefined;
}

/** What every session of one listener shares: the parts (every lookup present) and the listener's slots. */
export interface SessionContext extends Required<SessionParts> {
  listener: Listener;
  slots: SlotAccountant;
}

type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export class InboundSession implements SlotHolder {
  readonly sessionId = newSessionId();
  readonly remoteAddress: string;
  readonly deviceAddress: boolean;
  identity?: SessionIdentity;
  private authMethod?: string;
  private logger: Logger;
  private readonly openedAt = Date.now();
  private lastActive = Date.now();
  private preAuthTimer?: NodeJS.Timeout;
  private preAuthDeadline = 0;
  private admitted = false;
  private ended = false;
  private readonly tally = { commands: 0, refused: 0, logins: 0, messages: 0, detailLines: 0, suppressedLines: 0 };

  constructor(
    private readonly ctx: SessionContext,
    remoteAddress: string,
    private readonly control: ConnectionControl,
  ) {
    this.remoteAddress = canonicalAddress(remoteAddress);
    this.logger = ctx.logger.child({ sessionId: this.sessionId, remoteAddress: this.remoteAddress });
    // A printer lives here (pinned, seen logging in, or holding a POP3 grant): reserved slots, no lock-out.
    this.deviceAddress = ctx.logins.isDeviceAddress(this.remoteAddress) || ctx.popGrant(this.remoteAddress) !== undefined;
  }

  // ---- stages ----

  connect(): SmtpReply | undefined {
    const { events, logins, slots, listener } = this.ctx;
    events.emit('session.opened', { sessionId: this.sessionId, remoteAddress: this.remoteAddress, protocol: 'smtp', listener });
    this.step('connect', true, () => `connection from ${this.remoteAddress} to the ${listener} listener`);
    // Others' failures never lock out an address a device lives at (auth: none, POP3 grant, seen, pinned).
    if (!this.deviceAddress && logins.lockout.lockedUntilFor(this.remoteAddress) !== undefined) {
      this.refused('locked-out');
      return this.refuse(replies.connectionLocked, 'smtp.connect.locked');
    }
    const admission = slots.admit(this);
    if (!admission.ok) {
      this.refused(refusalReason(admission.refusal));
      const reply =
        admission.refusal === 'per-address'
          ? replies.tooManyFromAddress
          : admission.refusal === 'max-clients'
            ? replies.tooManyClients
            : replies.tooManyUnauthenticated;
      return this.refuse(reply, 'smtp.connect.limit', { refusal: admission.refusal, ...slots.counts() });
    }
    this.admitted = true;
    this.armPreAuthDeadline(slots.inStress() ? this.ctx.config().stressPreAuthTimeoutMs : this.ctx.config().preAuthTimeoutMs);
    this.logger.debug({ listener }, 'smtp.connect');
    return undefined;
  }

  /** Every command line: activity for eviction, the count for the summary, HELO and STARTTLS steps. */
  command(name: string, line: string): void {
    this.lastActive = Date.now();
    this.tally.commands++;
    if (name === 'HELO' || name === 'EHLO') this.step('helo', true, () => line.slice(0, 120));
    else if (name === 'STARTTLS') {
      const offered = this.ctx.listener === 'smtp' && this.ctx.config().starttls;
      this.step(
        'starttls',
        offered,
        () => (offered ? 'STARTTLS attempted' : 'STARTTLS refused: not offered on this listener'),
        offered ? undefined : 'not-offered',
      );
    }
  }

  async auth(auth: SMTPServerAuthentication): Promise<{ user: string } | SmtpReply> {
    const method = auth.method;
    const username = auth.username ?? '';
    this.tally.logins++;
    const outcome: LoginOutcome = await this.ctx.logins.attempt({
      protocol: 'smtp',
      sessionId: this.sessionId,
      remoteAddress: this.remoteAddress,
      method,
      username,
      proof:
        method === 'CRAM-MD5' ? { kind: 'challenge', matches: (secret) => auth.validatePassword(secret) } : { kind: 'password', password: auth.password ?? '' },
    });
    // Usernames are logged trimmed; passwords and AUTH payloads never are.
    const shownUser = username.slice(0, 64);
    if (outcome.ok) {
      this.identified({ device: outcome.device, via: 'auth', method });
      this.authMethod = method;
      this.step('auth', true, () => `AUTH ${method} as ${shownUser}`);
      this.logger.info({ method }, 'smtp.auth.succeeded');
      return { user: outcome.device.name };
    }
    const reply =
      outcome.refusal === 'locked'
        ? replies.authLocked
        : outcome.refusal === 'disabled'
          ? replies.authDisabled
          : outcome.refusal === 'wrong-address'
            ? replies.authWrongAddress
            : replies.authFailed;
    this.step('auth', false, () => `AUTH ${method} as ${shownUser}: ${reply.code} ${reply.text}`, outcome.reason, outcome.device?.name);
    this.detail('warn', { method, username: shownUser, device: outcome.device?.name, reason: outcome.reason }, 'smtp.auth.failed');
    if (outcome.lockStarted) this.logger.warn({ until: new Date(outcome.lockedUntil ?? 0).toISOString() }, 'smtp.auth.lockout');
    this.tally.refused++;
    return reply;
  }

  mailFrom(address: SMTPServerAddress, session: SMTPServerSession): SmtpReply | undefined {
    const { devices, popGrant, events } = this.ctx;
    const identity = identifySender(session.user as string | undefined, this.remoteAddress, devices, popGrant);
    if (!identity) {
      const expired = this.ctx.expiredPopGrant(this.remoteAddress);
      if (expired) {
        this.ctx.logins.record({
          protocol: 'smtp',
          sessionId: this.sessionId,
          remoteAddress: this.remoteAddress,
          device: expired,
          method: 'pop-before-smtp',
          ok: false,
          reason: 'pop-grant-expired',
        });
        return this.refuseStep('mail', replies.popGrantExpired, 'smtp.mail.refused', { device: expired, reason: 'pop-grant-expired' }, expired);
      }
    }
    const refusal = checkMailFrom(identity, address, devices);
    if (refusal) {
      events.emit('message.rejected', { device: identity?.device.name, sessionId: this.sessionId, code: refusal.code, reason: refusal.text });
      return this.refuseStep('mail', refusal, 'smtp.mail.refused', { device: identity?.device.name }, identity?.device.name);
    }
    // biome-ignore lint/style/noNonNullAssertion: checkMailFrom refuses every session without an identity.
    const known = identity!;
    this.identified(known);
    events.emit('message.receiving', { device: known.device.name, sessionId: this.sessionId });
    this.step('mail', true, () => `MAIL FROM:<${address.address}>`);
    return undefined;
  }

  rcptTo(address: SMTPServerAddress): SmtpReply | undefined {
    const refusal = checkRecipient(this.identity, address.address, this.ctx.devices);
    if (refusal) {
      this.ctx.events.emit('message.rejected', { device: this.identity?.device.name, sessionId: this.sessionId, code: refusal.code, reason: refusal.text });
      return this.refuseStep('rcpt', refusal, 'smtp.rcpt.refused', { recipient: address.address.slice(0, 254) });
    }
    this.step('rcpt', true, () => `RCPT TO:<${address.address}> accepted`);
    return undefined;
  }

  /** Streams the body into the queue; the reply is 250 only once it is durable. */
  async data(stream: Readable, session: SMTPServerSession): Promise<SmtpReply> {
    const identity = this.identity;
    stream.on('error', () => undefined); // a client vanishing mid-DATA surfaces through queue.accept
    if (!identity) {
      stream.resume();
      await new Promise((resolve) => stream.once('end', resolve));
      return this.refuseStep('data', replies.authRequired, 'smtp.data.refused');
    }
    const { devices, queue, events } = this.ctx;
    const device = identity.device;
    const started = process.hrtime.bigint();
    const envelope = session.envelope;
    // With fromMode keep the printer's header From is what recipients see: hold it to allowSenders too.
    const fromCheck =
      device.allowSenders && device.upstream && this.ctx.fromModeOf(device.upstream) === 'keep'
        ? new HeaderFromCheck((address) => devices.isSenderAllowed(device, address))
        : undefined;
    let body: Readable = stream;
    if (fromCheck) {
      stream.on('error', (err) => fromCheck.destroy(err));
      body = stream.pipe(fromCheck);
    }
    try {
      const message = await queue.accept(
        {
          device: device.name,
          upstream: device.upstream,
          envelope: {
            mailFrom: envelope.mailFrom ? envelope.mailFrom.address : '',
            rcptTo: envelope.rcptTo.map((r) => r.address),
            bodyType: envelope.bodyType === '8bitmime' ? '8bitmime' : '7bit',
            smtpUtf8: Boolean(envelope.smtpUtf8),
          },
          client: {
            address: this.remoteAddress,
            heloName: session.hostNameAppearsAs || undefined,
            sessionId: this.sessionId,
            authMethod: identity.via === 'auth' ? this.authMethod : identity.method,
          },
          maxSize: device.maxMessageSize,
          hold: device.upstream ? undefined : { code: 'no-upstream', reason: `device ${device.name} has no upstream configured` },
        },
        body,
      );
      // Counted by the metrics from message.queued (emitted by the queue once durable).
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.tally.messages++;
      this.step('data', true, () => `DATA ${message.size} bytes`);
      this.logger.info(
        { queueId: message.id, size: message.size, recipients: message.recipients.length, sha256: message.sha256, acceptMs: Math.round(seconds * 1000) },
        'queue.accepted',
      );
      const reply = replies.queued(message.id);
      this.step('queued', true, () => `${reply.code} ${reply.text}`);
      return reply;
    } catch (err) {
      const reply = fromCheck?.refused !== undefined ? replies.headerFromNotAllowed(fromCheck.refused, device.name) : dataFailureReply(err);
      events.emit('message.rejected', { device: device.name, sessionId: this.sessionId, code: reply.code, reason: reply.text });
      const level = reply.code >= 500 ? 'info' : 'error';
      this.tally.refused++;
      this.step('refused', false, () => `${reply.code} ${reply.text}`, String(reply.code));
      this.detail(level, { code: reply.code, err: errorMessage(err), errCode: (err as { code?: string }).code }, 'smtp.data.refused');
      return reply;
    }
  }

  quirk(quirk: string, command: string): void {
    this.detail('info', { quirk, command }, 'smtp.quirk');
  }

  /** QUIT was answered: the slot is free for the client's next connection at once. */
  quit(): void {
    this.step('quit', true, () => 'QUIT');
    this.releaseSlot();
  }

  /** The socket closed. */
  closed(): void {
    if (this.ended) return;
    this.ended = true;
    this.releaseSlot();
    this.ctx.events.emit('session.closed', { sessionId: this.sessionId, remoteAddress: this.remoteAddress, device: this.identity?.device.name });
    this.step('closed', true, () => 'connection closed');
    if (this.admitted) this.logger.info({ ...this.tally, device: this.identity?.device.name, durationMs: Date.now() - this.openedAt }, 'smtp.session.summary');
  }

  // ---- SlotHolder ----

  lastActivity(): number {
    return this.lastActive;
  }

  evict(): void {
    this.admitted = true;
    this.step('timeout', false, () => 'closed to make room: the gateway is full and this session had not logged in', 'evicted');
    this.detail('info', { idleMs: Date.now() - this.lastActive }, 'smtp.session.evicted');
    this.end(replies.evicted);
  }

  onStress(): void {
    if (!this.preAuthTimer) return;
    const stressDeadline = this.openedAt + this.ctx.config().stressPreAuthTimeoutMs;
    if (stressDeadline < this.preAuthDeadline) this.armPreAuthDeadline(Math.max(0, stressDeadline - Date.now()));
  }

  // ---- internals ----

  private identified(identity: SessionIdentity): void {
    if (this.identity?.device.name !== identity.device.name)
      this.logger = this.ctx.logger.child({ sessionId: this.sessionId, remoteAddress: this.remoteAddress, device: identity.device.name });
    this.identity = identity;
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.preAuthTimer = undefined;
    this.ctx.slots.authenticated(this);
  }

  private armPreAuthDeadline(ms: number): void {
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.preAuthDeadline = Date.now() + ms;
    const seconds = Math.round((this.preAuthDeadline - this.openedAt) / 1000);
    this.preAuthTimer = setTimeout(() => {
      this.preAuthTimer = undefined;
      if (this.identity || this.ended) return;
      this.step('timeout', false, () => `no login within ${seconds} s`, 'pre-auth-timeout');
      this.detail('info', { seconds }, 'smtp.preauth.timeout');
      this.end(replies.preAuthTimeout(seconds));
    }, ms);
    this.preAuthTimer.unref();
  }

  private end(reply: SmtpReply): void {
    this.releaseSlot();
    this.control.end(reply.code, reply.text);
  }

  private releaseSlot(): void {
    if (this.preAuthTimer) clearTimeout(this.preAuthTimer);
    this.preAuthTimer = undefined;
    this.ctx.slots.release(this);
  }

  /** The connection is refused before its first command (the metrics count it by reason). */
  private refused(reason: ConnectionRefusal): void {
    this.ctx.events.emit('session.refused', { sessionId: this.sessionId, remoteAddress: this.remoteAddress, listener: this.ctx.listener, reason });
  }

  private refuse(reply: SmtpReply, event: string, extra: Record<string, unknown> = {}): SmtpReply {
    this.tally.refused++;
    this.step('refused', false, () => `${reply.code} ${reply.text}`, String(reply.code));
    this.detail('info', { code: reply.code, ...extra }, event);
    return reply;
  }

  private refuseStep(step: SessionStepName, reply: SmtpReply, event: string, extra: Record<string, unknown> = {}, device?: string): SmtpReply {
    this.tally.refused++;
    this.step(step, false, () => `${reply.code} ${reply.text}`, String(reply.code), device);
    this.detail('info', { code: reply.code, ...extra }, event);
    return reply;
  }

  /** A detail line, within this session's budget. */
  private detail(level: LogLevel, fields: Record<string, unknown>, event: string): void {
    const { logDetailPerSession, logSampleEvery } = this.ctx.config();
    const n = ++this.tally.detailLines;
    const over = n - logDetailPerSession;
    if (over > 0 && over % logSampleEvery !== 0) {
      this.tally.suppressedLines++;
      return;
    }
    this.logger[level](over > 0 ? { ...fields, sampled: true, detailLines: n } : fields, event);
  }

  /** session.step, built only when somebody listens (the doctor). */
  private step(step: SessionStepName, ok: boolean, detail: () => string, reason?: string, device?: string): void {
    const { events } = this.ctx;
    if (events.listenerCount('session.step') === 0) return;
    events.emit('session.step', {
      sessionId: this.sessionId,
      protocol: 'smtp',
      remoteAddress: this.remoteAddress,
      device: this.identity?.device.name ?? device,
      step,
      ok,
      detail: detail(),
      ...(reason ? { reason } : {}),
      at: Date.now(),
    });
  }
}

/** Reads the header block as it streams past; when a From address is not allowed, fails the stream at its end. */
class HeaderFromCheck extends Transform {
  /** The first From address that is not allowed. */
  refused?: string;
  private head: Buffer[] = [];
  private headBytes = 0;
  private done = false;

  constructor(private readonly allowed: (address: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.done) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      const text = Buffer.concat(this.head).toString('latin1');
      const end = text.search(/\r?\n\r?\n/);
      if (end !== -1 || this.headBytes > MAX_HEADER_BYTES) this.judge(end === -1 ? text : text.slice(0, end));
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.done) this.judge(Buffer.concat(this.head).toString('latin1'));
    callback(this.refused === undefined ? null : new Error('header From not allowed for this device'));
  }

  private judge(header: string): void {
    this.done = true;
    this.head = [];
    const unfolded = header.replace(/\r?\n[ \t]+/g, ' ');
    for (const line of unfolded.split(/\r?\n/)) {
      const match = /^from\s*:(.*)$/i.exec(line);
      if (!match) continue;
      for (const entry of addressparser(match[1], { flatten: true })) {
        const address = entry.address ?? '';
        if (!address || !this.allowed(address)) {
          this.refused ??= address || match[1].trim().slice(0, 200);
          return;
        }
      }
    }
  }
}

const MAX_HEADER_BYTES = 256 * 1024;

function dataFailureReply(err: unknown): SmtpReply {
  if (err instanceof MessageTooLargeError) return replies.tooLarge(err.limit);
  if (err instanceof SpoolError && err.code === 'SCANRELAY_SPOOL_DISK_FULL') return replies.diskFull;
  return replies.spoolError;
}
