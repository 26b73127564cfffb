/**
 * The device-facing SMTP listener(s), the only user of smtp-server. A message's trip starts here:
 * connect (limits, lock-out) -> AUTH (auth.ts) or source address / POP3 grant (policy.ts) -> MAIL/RCPT
 * checks (policy.ts) -> DATA streamed into queue.accept -> 250 only after the body and record are fsynced.
 */
import type { SMTPServer, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import type { LegacyTls, SmtpConfig } from '../config/index.js';
import type { DeviceRegistry } from '../devices/index.js';
import type { Queue } from '../queue/index.js';
import type { GatewayEventBus } from '../shared/events.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { AuthLockout } from '../shared/auth-lockout.js';
import { canonicalAddress } from '../shared/cidr.js';
import { MessageTooLargeError, SpoolError, errorMessage } from '../shared/errors.js';
import { newSessionId } from '../shared/ids.js';
import { decideAuth } from './auth.js';
import { checkMailFrom, checkRecipient, identifySender, type SessionIdentity } from './policy.js';
import { replies, replyError, type SmtpReply } from './replies.js';
import { QuirkTolerantSmtpServer } from './quirks.js';

export { replies, type SmtpReply } from './replies.js';

/** Certificate for STARTTLS / implicit TLS towards devices. */
export interface ServerTls {
  key: string | Buffer;
  cert: string | Buffer;
  /** Listeners that allow TLS 1.0/1.1 and old ciphers (explicit opt-in, LAN-only): true = both. */
  legacyTls: LegacyTls;
}

export interface InboundDeps {
  /** Read at each use, so a config reload applies to new sessions. */
  config: () => SmtpConfig;
  devices: DeviceRegistry;
  queue: Queue;
  events: GatewayEventBus;
  metrics: GatewayMetrics;
  logger: Logger;
  lockout: AuthLockout;
  /** POP-before-SMTP: the device a POP3 login authorised for this address, if any. */
  popGrant?: (address: string) => string | undefined;
  tls?: ServerTls;
}

export interface InboundAddresses {
  smtp: AddressInfo;
  smtps?: AddressInfo;
}

export interface InboundServer {
  listen(): Promise<InboundAddresses>;
  /** Stops accepting; in-flight DATA finishes (bounded by smtp.closeTimeout). */
  close(): Promise<void>;
  isListening(): boolean;
}

interface SessionState {
  sessionId: string;
  remoteAddress: string;
  identity?: SessionIdentity;
  authMethod?: string;
  logger: Logger;
}

type Listener = 'smtp' | 'smtps';

export function createInboundServer(deps: InboundDeps): InboundServer {
  const { devices, queue, events, metrics, lockout } = deps;
  const sessions = new Map<string, SessionState>();
  const perAddress = new Map<string, number>();
  const popGrant = deps.popGrant ?? (() => undefined);
  const servers: Array<{ listener: Listener; server: SMTPServer; port: number }> = [];
  let listening = false;

  const stateOf = (session: SMTPServerSession): SessionState => {
    let state = sessions.get(session.id);
    if (!state) {
      const remoteAddress = canonicalAddress(session.remoteAddress);
      const sessionId = newSessionId();
      state = { sessionId, remoteAddress, logger: deps.logger.child({ sessionId, remoteAddress }) };
      sessions.set(session.id, state);
    }
    return state;
  };

  const refuse = (state: SessionState, reply: SmtpReply, event: string, extra: Record<string, unknown> = {}) => {
    state.logger.info({ code: reply.code, ...extra }, event);
    return replyError(reply);
  };

  function buildServer(listener: Listener): SMTPServer {
    const config = deps.config();
    const tls = deps.tls;
    const offerStarttls = listener === 'smtp' && config.starttls && tls !== undefined;
    const options: SMTPServerOptions = {
      name: config.hostname,
      banner: 'scanrelay ready',
      secure: listener === 'smtps',
      size: config.maxMessageSize,
      authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5'],
      authOptional: true, // checked in onMailFrom: auth: none and POP-before-SMTP devices never AUTH
      allowInsecureAuth: true, // printers cannot do TLS; the LAN leg is plaintext by design
      disabledCommands: offerStarttls || listener === 'smtps' ? [] : ['STARTTLS'],
      disableReverseLookup: true,
      maxClients: config.maxClients,
      maxRecipients: config.maxRecipients,
      socketTimeout: config.socketTimeoutMs,
      closeTimeout: config.closeTimeoutMs,
      logger: false,
      ...(tls && (offerStarttls || listener === 'smtps')
        ? {
            key: tls.key,
            cert: tls.cert,
            ...(allowsLegacyTls(tls.legacyTls, listener)
              ? { minVersion: 'TLSv1' as const, ciphers: 'DEFAULT@SECLEVEL=0' }
              : { minVersion: 'TLSv1.2' as const }),
          }
        : {}),

      onConnect(session, callback) {
        const state = stateOf(session);
        metrics.recordConnection(listener);
        events.emit('session.opened', { sessionId: state.sessionId, remoteAddress: state.remoteAddress, protocol: 'smtp' });
        const count = (perAddress.get(state.remoteAddress) ?? 0) + 1;
        perAddress.set(state.remoteAddress, count);
        if (lockout.lockedUntilFor(state.remoteAddress) !== undefined) {
          metrics.recordConnectionRefused('locked-out');
          return callback(refuse(state, replies.connectionLocked, 'smtp.connect.locked'));
        }
        if (count > deps.config().maxConnectionsPerIp) {
          metrics.recordConnectionRefused('per-ip-limit');
          return callback(refuse(state, replies.tooManyFromAddress, 'smtp.connect.limit', { connections: count }));
        }
        state.logger.debug({ listener }, 'smtp.connect');
        callback();
      },

      onAuth(auth, session, callback) {
        const state = stateOf(session);
        const method = auth.method;
        if (lockout.lockedUntilFor(state.remoteAddress) !== undefined) {
          metrics.recordAuthAttempt(method, 'locked');
          return callback(refuse(state, replies.authLocked, 'smtp.auth.locked', { method }));
        }
        const decision = decideAuth(auth, state.remoteAddress, devices);
        if (decision.ok) {
          lockout.recordSuccess(state.remoteAddress);
          state.identity = { device: decision.device, via: 'auth', method };
          state.authMethod = method;
          state.logger = state.logger.child({ device: decision.device.name });
          metrics.recordAuthAttempt(method, 'success');
          events.emit('auth.succeeded', { device: decision.device.name, method, remoteAddress: state.remoteAddress });
          state.logger.info({ method }, 'smtp.auth.succeeded');
          return callback(null, { user: decision.device.name });
        }
        metrics.recordAuthAttempt(method, 'failure');
        // Usernames of unknown logins are logged (trimmed); passwords and AUTH payloads never are.
        const username = (auth.username ?? '').slice(0, 64);
        events.emit('auth.failed', { username, device: decision.device?.name, method, remoteAddress: state.remoteAddress, reason: decision.reason });
        state.logger.warn({ method, username, device: decision.device?.name, reason: decision.reason }, 'smtp.auth.failed');
        // A hash-only device whose printer picks CRAM-MD5 is a config problem, not a guess: not counted.
        const lockedUntil = decision.reply === replies.authCramNeedsSecret ? undefined : lockout.recordFailure(state.remoteAddress);
        if (lockedUntil !== undefined) {
          metrics.recordLockout();
          events.emit('auth.lockedOut', { remoteAddress: state.remoteAddress, until: lockedUntil });
          state.logger.warn({ until: new Date(lockedUntil).toISOString() }, 'smtp.auth.lockout');
        }
        callback(replyError(decision.reply));
      },

      onMailFrom(address, session, callback) {
        const state = stateOf(session);
        const identity = identifySender(session.user as string | undefined, state.remoteAddress, devices, popGrant);
        const refusal = checkMailFrom(identity, address);
        if (refusal) {
          metrics.recordMessageRejected(refusal.code);
          if (identity) events.emit('message.rejected', { device: identity.device.name, sessionId: state.sessionId, code: refusal.code, reason: refusal.text });
          return callback(refuse(state, refusal, 'smtp.mail.refused', { device: identity?.device.name }));
        }
        if (identity && state.identity?.device.name !== identity.device.name) state.logger = state.logger.child({ device: identity.device.name });
        state.identity = identity;
        // biome-ignore lint/style/noNonNullAssertion: checkMailFrom refuses every session without an identity.
        events.emit('message.receiving', { device: identity!.device.name, sessionId: state.sessionId });
        callback();
      },

      onRcptTo(address, session, callback) {
        const state = stateOf(session);
        const refusal = checkRecipient(state.identity, address.address, devices);
        if (refusal) {
          metrics.recordMessageRejected(refusal.code);
          if (state.identity)
            events.emit('message.rejected', { device: state.identity.device.name, sessionId: state.sessionId, code: refusal.code, reason: refusal.text });
          return callback(refuse(state, refusal, 'smtp.rcpt.refused', { recipient: address.address.slice(0, 254) }));
        }
        callback();
      },

      onData(stream, session, callback) {
        const state = stateOf(session);
        const identity = state.identity;
        stream.on('error', () => undefined); // a client vanishing mid-DATA surfaces through queue.accept
        if (!identity) {
          stream.resume();
          stream.once('end', () => callback(replyError(replies.authRequired)));
          return;
        }
        const device = identity.device;
        const started = process.hrtime.bigint();
        const envelope = session.envelope;
        queue
          .accept(
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
                address: state.remoteAddress,
                heloName: session.hostNameAppearsAs || undefined,
                sessionId: state.sessionId,
                authMethod: identity.via === 'auth' ? state.authMethod : identity.method,
              },
              maxSize: device.maxMessageSize,
              hold: device.upstream ? undefined : { code: 'no-upstream', reason: `device ${device.name} has no upstream configured` },
            },
            stream,
          )
          .then(
            (message) => {
              const seconds = Number(process.hrtime.bigint() - started) / 1e9;
              metrics.recordMessageReceived(device.name, message.size, seconds);
              state.logger.info(
                {
                  queueId: message.id,
                  size: message.size,
                  recipients: message.recipients.length,
                  sha256: message.sha256,
                  acceptMs: Math.round(seconds * 1000),
                },
                'queue.accepted',
              );
              const reply = replies.queued(message.id);
              callback(null, reply.text);
            },
            (err: unknown) => {
              const reply = dataFailureReply(err);
              metrics.recordMessageRejected(reply.code);
              events.emit('message.rejected', { device: device.name, sessionId: state.sessionId, code: reply.code, reason: reply.text });
              const level = reply.code >= 500 ? 'info' : 'error';
              state.logger[level]({ code: reply.code, err: errorMessage(err), errCode: (err as { code?: string }).code }, 'smtp.data.refused');
              callback(replyError(reply));
            },
          );
      },

      onClose(session) {
        const state = sessions.get(session.id);
        if (!state) return;
        sessions.delete(session.id);
        const left = (perAddress.get(state.remoteAddress) ?? 1) - 1;
        if (left <= 0) perAddress.delete(state.remoteAddress);
        else perAddress.set(state.remoteAddress, left);
        events.emit('session.closed', { sessionId: state.sessionId, remoteAddress: state.remoteAddress, device: state.identity?.device.name });
      },
    };
    const server = new QuirkTolerantSmtpServer(options, {
      maxSessionMs: config.maxSessionMs,
      onQuirk: (quirk, session, command) => stateOf(session).logger.info({ quirk, command }, 'smtp.quirk'),
    });
    server.on('error', (err) => deps.logger.warn({ err: errorMessage(err), listener }, 'smtp.server.error'));
    return server;
  }

  return {
    async listen() {
      const config = deps.config();
      const wanted: Array<{ listener: Listener; port: number }> = [{ listener: 'smtp', port: config.port }];
      if (config.tlsPort !== undefined && deps.tls) wanted.push({ listener: 'smtps', port: config.tlsPort });
      const addresses: Partial<InboundAddresses> = {};
      for (const { listener, port } of wanted) {
        const server = buildServer(listener);
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(err);
          server.server.once('error', onError);
          server.listen(port, config.host, () => {
            server.server.off('error', onError);
            resolve();
          });
        });
        servers.push({ listener, server, port });
        addresses[listener] = server.server.address() as AddressInfo;
        deps.logger.info({ listener, address: addresses[listener] }, 'smtp.listening');
      }
      listening = true;
      return addresses as InboundAddresses;
    },
    async close() {
      listening = false;
      await Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
      servers.length = 0;
    },
    isListening: () => listening,
  };
}

function allowsLegacyTls(setting: LegacyTls, listener: Listener): boolean {
  return setting === true || (setting === 'starttls' && listener === 'smtp') || (setting === 'tlsPort' && listener === 'smtps');
}

function dataFailureReply(err: unknown): SmtpReply {
  if (err instanceof MessageTooLargeError) return replies.tooLarge(err.limit);
  if (err instanceof SpoolError && err.code === 'SCANRELAY_SPOOL_DISK_FULL') return replies.diskFull;
  return replies.spoolError;
}
