/**
 * The POP3 listener for POP-before-SMTP (node:net). A device logs in with USER/PASS or APOP; on success
 * its source address is granted SMTP without AUTH for pop3.authWindow (PopGrants, checked by
 * inbound/policy.ts identifySender). Logins go through the same login recorder as SMTP AUTH (one
 * lock-out state, one `login.attempted` event); connections through a slot accountant of their own
 * (pop3.maxClients, pop3.maxConnectionsPerIp), and every session ends after pop3.sessionTimeout however
 * active it is. Imports devices, shared and the inbound login/slot parts only.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Pop3Config } from '../config/index.js';
import type { GatewayEventBus, SessionStepName } from '../shared/events.js';
import type { Logger } from '../observability/logger.js';
import type { LoginRecorder } from '../inbound/login-recorder.js';
import { SlotAccountant, refusalReason, type SlotHolder } from '../inbound/slots.js';
import { canonicalAddress } from '../shared/cidr.js';
import { errorMessage } from '../shared/errors.js';
import { newSessionId } from '../shared/ids.js';
import type { PopGrants } from './grants.js';
import { apopDigestMatches, apopTimestamp } from './apop.js';
import { Pop3Session, pop3Replies, type Pop3Login, type Pop3LoginOutcome, type Pop3Step } from './session.js';

/** RFC 2449 allows 255 octets per command; twice that leaves room for odd clients, not for abuse. */
export const POP3_MAX_LINE_BYTES = 512;
/** Detail log lines per POP3 session (a session summary is always written). */
const DETAIL_LINES_PER_SESSION = 20;

export interface Pop3Deps {
  /** Read at each connection, so a reload applies to new sessions. */
  config: () => Pop3Config;
  /** Host part of the APOP timestamp (smtp.hostname). */
  hostname: () => string;
  grants: PopGrants;
  logins: LoginRecorder;
  events: GatewayEventBus;
  logger: Logger;
}

export interface Pop3Server {
  listen(): Promise<AddressInfo>;
  /** Stops accepting and ends open sessions (they hold nothing worth waiting for). */
  close(): Promise<void>;
  isListening(): boolean;
}

export function createPop3Server(deps: Pop3Deps): Pop3Server {
  const { grants, logins, events } = deps;
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const slots = new SlotAccountant(() => {
    const config = deps.config();
    return {
      maxClients: config.maxClients,
      maxPerAddress: config.maxConnectionsPerIp,
      maxUnauthenticated: config.maxClients,
      reserved: 0,
      stressThreshold: 1,
      evictIdle: false,
      minIdleToEvictMs: 0,
    };
  });

  function handleConnection(socket: Socket): void {
    const config = deps.config();
    if (!socket.remoteAddress) {
      socket.destroy(); // the client left before we got here
      return;
    }
    const remoteAddress = canonicalAddress(socket.remoteAddress);
    const sessionId = newSessionId();
    const openedAt = Date.now();
    let logger = deps.logger.child({ sessionId, remoteAddress });
    let device: string | undefined;
    let detailLines = 0;
    let suppressedLines = 0;
    let commands = 0;
    const detail = (level: 'info' | 'warn', fields: Record<string, unknown>, event: string) => {
      if (++detailLines > DETAIL_LINES_PER_SESSION) suppressedLines++;
      else logger[level](fields, event);
    };
    const step = (name: SessionStepName, ok: boolean, text: () => string, reason?: string) => {
      if (events.listenerCount('session.step') === 0) return;
      events.emit('session.step', {
        sessionId,
        protocol: 'pop3',
        remoteAddress,
        device,
        step: name,
        ok,
        detail: text(),
        ...(reason ? { reason } : {}),
        at: Date.now(),
      });
    };
    socket.on('error', (err) => logger.debug({ err: errorMessage(err) }, 'pop3.socket.error'));

    const finish = (line: string) => {
      if (socket.writableEnded) return;
      // Destroy once flushed: a client that never closes its side must not hold the socket.
      socket.end(`${line}\r\n`, () => socket.destroy());
    };
    const holder: SlotHolder = {
      remoteAddress,
      deviceAddress: logins.isDeviceAddress(remoteAddress),
      lastActivity: () => openedAt,
      evict: () => finish(pop3Replies.tooManyClients),
    };

    events.emit('session.opened', { sessionId, remoteAddress, protocol: 'pop3', listener: 'pop3' });
    step('connect', true, () => `connection from ${remoteAddress} to the POP3 listener`);
    const admission = slots.admit(holder);
    if (!admission.ok) {
      detail('warn', { refusal: admission.refusal, ...slots.counts() }, 'pop3.connect.limit');
      const reply = admission.refusal === 'per-address' ? pop3Replies.tooManyFromAddress : pop3Replies.tooManyClients;
      step('refused', false, () => reply, admission.refusal);
      finish(reply);
      events.emit('session.refused', { sessionId, remoteAddress, listener: 'pop3', reason: refusalReason(admission.refusal) });
      socket.on('close', () => events.emit('session.closed', { sessionId, remoteAddress }));
      return;
    }
    sockets.add(socket);
    if (!holder.deviceAddress && logins.lockout.lockedUntilFor(remoteAddress) !== undefined) {
      detail('info', {}, 'pop3.connect.locked');
      events.emit('session.refused', { sessionId, remoteAddress, listener: 'pop3', reason: 'locked-out' });
      finish(pop3Replies.locked);
    }

    const timestamp = apopTimestamp(deps.hostname());
    const login = async (attempt: Pop3Login): Promise<Pop3LoginOutcome> => {
      const method = attempt.method;
      const outcome = await logins.attempt({
        protocol: 'pop3',
        sessionId,
        remoteAddress,
        method,
        username: attempt.username,
        proof:
          attempt.method === 'APOP'
            ? { kind: 'challenge', matches: (secret) => apopDigestMatches(timestamp, secret, attempt.digest) }
            : { kind: 'password', password: attempt.password },
      });
      const username = attempt.username.slice(0, 64);
      if (outcome.ok) {
        device = outcome.device.name;
        slots.authenticated(holder);
        const { replaced, expiresAt } = grants.grant(remoteAddress, device);
        logger = logger.child({ device });
        logger.info({ method, grantUntil: new Date(expiresAt).toISOString() }, 'pop3.auth.succeeded');
        step('auth', true, () => `${method} as ${username}: POP before SMTP granted until ${new Date(expiresAt).toISOString()}`);
        if (replaced)
          logger.warn(
            { previous: replaced, note: 'two devices log in from one address (shared NAT?): SMTP without AUTH from it now counts as this device' },
            'pop3.grant.replaced',
          );
        return { ok: true, device };
      }
      // The login name is logged (trimmed); passwords and digests never are.
      detail('warn', { method, username, device: outcome.device?.name, reason: outcome.reason }, 'pop3.auth.failed');
      step('auth', false, () => `${method} as ${username} refused`, outcome.reason);
      if (outcome.lockStarted) logger.warn({ until: new Date(outcome.lockedUntil ?? 0).toISOString() }, 'pop3.auth.lockout');
      if (outcome.refusal === 'locked') return { ok: false, reply: pop3Replies.locked, close: true };
      if (outcome.refusal === 'disabled') return { ok: false, reply: pop3Replies.disabled };
      if (outcome.refusal === 'wrong-address') return { ok: false, reply: pop3Replies.wrongAddress };
      return { ok: false, reply: pop3Replies.authFailed };
    };
    const session = new Pop3Session({ login });

    socket.on('close', () => {
      sockets.delete(socket);
      slots.release(holder);
      clearTimeout(sessionTimer);
      events.emit('session.closed', { sessionId, remoteAddress, device: session.device });
      step('closed', true, () => 'connection closed');
      logger.info({ commands, detailLines, suppressedLines, device, durationMs: Date.now() - openedAt }, 'pop3.session.summary');
    });
    // Bounds sessions kept alive by activity (CAPA every few seconds): the idle timeout alone never fires.
    const sessionTimer = setTimeout(() => {
      if (socket.writableEnded) return;
      detail('info', { ms: deps.config().sessionTimeoutMs }, 'pop3.session-timeout');
      step('timeout', false, () => 'session time limit reached', 'session-timeout');
      slots.release(holder);
      finish(pop3Replies.sessionTimeout);
    }, config.sessionTimeoutMs);
    sessionTimer.unref();
    if (socket.writableEnded) return; // refused above (locked out)

    socket.setTimeout(config.socketTimeoutMs, () => {
      if (socket.writableEnded) socket.destroy();
      else {
        detail('info', {}, 'pop3.idle-timeout');
        step('timeout', false, () => 'idle timeout', 'idle-timeout');
        finish(pop3Replies.idleTimeout);
      }
    });
    socket.write(`${pop3Replies.greeting(timestamp)}\r\n`);
    logger.debug('pop3.connect');

    let pending: Buffer = Buffer.alloc(0);
    let busy = false;
    const send = (reply: Pop3Step): boolean => {
      const out = reply.lines.map((l) => `${l}\r\n`).join('');
      if (reply.close) {
        if (session.state === 'closed' && reply.lines[0] === pop3Replies.bye) {
          step('quit', true, () => 'QUIT');
          slots.release(holder); // answered: the client may reconnect at once
        }
        finish(out.slice(0, -2));
        return false;
      }
      if (out) socket.write(out);
      return true;
    };
    /** One command at a time, in order: a login answers later, and what was pipelined behind it waits. */
    const drain = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          if (socket.writableEnded) return;
          const end = pending.indexOf(0x0a);
          if (end === -1 || end > POP3_MAX_LINE_BYTES) break;
          // Bare LF is tolerated as a line end, like the SMTP side does.
          const line = pending.subarray(0, end).toString('utf8').replace(/\r$/, '');
          pending = pending.subarray(end + 1);
          commands++;
          const reply = session.handle(line);
          if (!send(reply instanceof Promise ? await reply : reply)) return;
        }
        if (pending.length > POP3_MAX_LINE_BYTES) {
          detail('info', { bytes: pending.length }, 'pop3.line-too-long');
          finish(pop3Replies.lineTooLong);
        }
      } finally {
        busy = false;
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (socket.writableEnded) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      void drain();
    });
  }
  return {
    async listen() {
      const config = deps.config();
      const created = createServer(handleConnection);
      created.on('error', (err) => deps.logger.warn({ err: errorMessage(err) }, 'pop3.server.error'));
      await new Promise<void>((resolve, reject) => {
        created.once('error', reject);
        created.listen(config.port, config.host, () => {
          created.off('error', reject);
          resolve();
        });
      });
      server = created;
      const address = created.address() as AddressInfo;
      deps.logger.info({ address, authWindowMs: config.authWindowMs }, 'pop3.listening');
      return address;
    },
    async close() {
      const current = server;
      server = undefined;
      if (!current) return;
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) {
        if (socket.writableEnded) socket.destroy();
        else socket.end(`${pop3Replies.shuttingDown}\r\n`, () => socket.destroy());
      }
      await closed;
    },
    isListening: () => server !== undefined,
  };
}
