/**
 * The POP3 listener for POP-before-SMTP (node:net). A device logs in with USER/PASS or APOP; on success
 * its source address is granted SMTP without AUTH for pop3.authWindow (PopGrants, checked by
 * inbound/policy.ts identifySender). Bad logins count in the same AuthLockout as SMTP AUTH.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Pop3Config } from '../config/index.js';
import type { DeviceRegistry } from '../devices/index.js';
import type { GatewayEventBus } from '../shared/events.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { AuthLockout } from '../shared/auth-lockout.js';
import { canonicalAddress } from '../shared/cidr.js';
import { errorMessage } from '../shared/errors.js';
import { newSessionId } from '../shared/ids.js';
import type { PopGrants } from './grants.js';
import { apopTimestamp } from './apop.js';
import { decidePop3Login } from './auth.js';
import { Pop3Session, pop3Replies, type Pop3Login, type Pop3LoginOutcome } from './session.js';

/** RFC 2449 allows 255 octets per command; twice that leaves room for odd clients, not for abuse. */
export const POP3_MAX_LINE_BYTES = 512;

export interface Pop3Deps {
  /** Read at each connection, so a reload applies to new sessions. */
  config: () => Pop3Config;
  /** Host part of the APOP timestamp (smtp.hostname). */
  hostname: () => string;
  devices: DeviceRegistry;
  grants: PopGrants;
  lockout: AuthLockout;
  events: GatewayEventBus;
  metrics: GatewayMetrics;
  logger: Logger;
}

export interface Pop3Server {
  listen(): Promise<AddressInfo>;
  /** Stops accepting and ends open sessions (they hold nothing worth waiting for). */
  close(): Promise<void>;
  isListening(): boolean;
}

export function createPop3Server(deps: Pop3Deps): Pop3Server {
  const { devices, grants, lockout, events, metrics } = deps;
  const sockets = new Set<Socket>();
  let server: Server | undefined;

  function handleConnection(socket: Socket): void {
    const config = deps.config();
    if (!socket.remoteAddress) {
      socket.destroy(); // the client left before we got here
      return;
    }
    const remoteAddress = canonicalAddress(socket.remoteAddress);
    const sessionId = newSessionId();
    let logger = deps.logger.child({ sessionId, remoteAddress });
    sockets.add(socket);
    socket.on('error', (err) => logger.debug({ err: errorMessage(err) }, 'pop3.socket.error'));
    metrics.recordConnection('pop3');

    const finish = (line: string) => {
      if (socket.writableEnded) return;
      // Destroy once flushed: a client that never closes its side must not hold the socket.
      socket.end(`${line}\r\n`, () => socket.destroy());
    };

    if (sockets.size > config.maxClients) {
      logger.warn({ clients: sockets.size - 1 }, 'pop3.connect.limit');
      sockets.delete(socket);
      finish(pop3Replies.tooManyClients);
      return;
    }
    events.emit('session.opened', { sessionId, remoteAddress, protocol: 'pop3' });
    if (lockout.lockedUntilFor(remoteAddress) !== undefined) {
      logger.info('pop3.connect.locked');
      finish(pop3Replies.locked);
    }

    const timestamp = apopTimestamp(deps.hostname());
    const login = (attempt: Pop3Login): Pop3LoginOutcome => {
      const method = attempt.method;
      const eventMethod = `POP3-${method}`;
      if (lockout.lockedUntilFor(remoteAddress) !== undefined) {
        metrics.recordPop3Login(method, 'locked');
        logger.info({ method }, 'pop3.auth.locked');
        return { ok: false, reply: pop3Replies.locked, close: true };
      }
      const decision = decidePop3Login(attempt, timestamp, remoteAddress, devices);
      if (decision.ok) {
        const device = decision.device.name;
        lockout.recordSuccess(remoteAddress);
        const { replaced, expiresAt } = grants.grant(remoteAddress, device);
        logger = logger.child({ device });
        metrics.recordPop3Login(method, 'success');
        events.emit('auth.succeeded', { device, method: eventMethod, remoteAddress });
        logger.info({ method, grantUntil: new Date(expiresAt).toISOString() }, 'pop3.auth.succeeded');
        if (replaced)
          logger.warn(
            { previous: replaced, note: 'two devices log in from one address (shared NAT?): SMTP without AUTH from it now counts as this device' },
            'pop3.grant.replaced',
          );
        return { ok: true, device };
      }
      metrics.recordPop3Login(method, 'failure');
      // The login name is logged (trimmed); passwords and digests never are.
      const username = attempt.username.slice(0, 64);
      events.emit('auth.failed', { username, device: decision.device?.name, method: eventMethod, remoteAddress, reason: decision.reason });
      logger.warn({ method, username, device: decision.device?.name, reason: decision.reason }, 'pop3.auth.failed');
      const lockedUntil = lockout.recordFailure(remoteAddress);
      if (lockedUntil !== undefined) {
        metrics.recordLockout();
        events.emit('auth.lockedOut', { remoteAddress, until: lockedUntil });
        logger.warn({ until: new Date(lockedUntil).toISOString() }, 'pop3.auth.lockout');
        return { ok: false, reply: pop3Replies.locked, close: true };
      }
      return { ok: false, reply: decision.reply };
    };
    const session = new Pop3Session({ login });

    socket.on('close', () => {
      sockets.delete(socket);
      events.emit('session.closed', { sessionId, remoteAddress, device: session.device });
    });
    if (socket.writableEnded) return; // refused above (locked out)

    socket.setTimeout(config.socketTimeoutMs, () => {
      if (socket.writableEnded) socket.destroy();
      else {
        logger.info('pop3.idle-timeout');
        finish(pop3Replies.idleTimeout);
      }
    });
    socket.write(`${pop3Replies.greeting(timestamp)}\r\n`);
    logger.debug('pop3.connect');

    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      if (socket.writableEnded) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf(0x0a);
        if (end === -1) break;
        if (end > POP3_MAX_LINE_BYTES) break;
        // Bare LF is tolerated as a line end, like the SMTP side does.
        const line = pending.subarray(0, end).toString('utf8').replace(/\r$/, '');
        pending = pending.subarray(end + 1);
        const step = session.handle(line);
        const out = step.lines.map((l) => `${l}\r\n`).join('');
        if (step.close) {
          finish(out.slice(0, -2));
          return;
        }
        socket.write(out);
      }
      if (pending.length > POP3_MAX_LINE_BYTES) {
        logger.info({ bytes: pending.length }, 'pop3.line-too-long');
        finish(pop3Replies.lineTooLong);
      }
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
