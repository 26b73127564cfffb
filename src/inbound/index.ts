/**
 * The device-facing SMTP listener(s), the only user of smtp-server. Each connection is one
 * InboundSession (session.ts) holding its identity, logger, slot and deadlines; this file binds
 * smtp-server's callbacks to the session's stage methods. A message's trip starts here:
 * connect (lock-out, slot accountant) -> AUTH (login recorder) or source address / POP3 grant (policy.ts)
 * -> MAIL/RCPT checks (policy.ts) -> DATA streamed into queue.accept -> 250 only after the body and
 * record are fsynced.
 */
import type { SMTPServer, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import type { LegacyTls } from '../config/index.js';
import { errorMessage } from '../shared/errors.js';
import { InboundSession, type Listener, type SessionContext, type SessionParts } from './session.js';
import { installFastDataScan } from './data-scan.js';
import { replyError } from './replies.js';
import { QuirkTolerantSmtpServer } from './quirks.js';
import { SlotAccountant } from './slots.js';

export { replies, type SmtpReply } from './replies.js';
export { InMemoryAuthStateStore, type AuthStateStore } from './auth-state.js';
export { LockoutState, MAX_KEYS, addressKey, type LockoutPolicy, type Lock, type LoginAdmission, type LoginReservation } from './lockout.js';
export { LoginRecorder, type LoginOutcome, type LoginProof, type LoginRequest } from './login-recorder.js';
export { SlotAccountant, type SlotHolder, type SlotLimits } from './slots.js';

/** Certificate for STARTTLS / implicit TLS towards devices. */
export interface ServerTls {
  key: string | Buffer;
  cert: string | Buffer;
  /** Listeners that allow TLS 1.0/1.1 and old ciphers (explicit opt-in, LAN-only): true = both. */
  legacyTls: LegacyTls;
}

export interface InboundDeps extends SessionParts {
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
  /** Connection counts of the slot accountant (all listeners share it). */
  slots(): { total: number; unauthenticated: number; addresses: number };
}

export function createInboundServer(deps: InboundDeps): InboundServer {
  // The end of DATA found natively instead of by smtp-server's per-byte loop (data-scan.ts).
  installFastDataScan();
  const servers: Array<{ listener: Listener; server: SMTPServer; port: number }> = [];
  let listening = false;
  const slots = new SlotAccountant(() => {
    const config = deps.config();
    return {
      maxClients: config.maxClients,
      maxPerAddress: config.maxConnectionsPerIp,
      maxUnauthenticated: config.maxUnauthenticatedClients,
      reserved: config.reservedClients,
      stressThreshold: config.stressThreshold,
      evictIdle: true,
      minIdleToEvictMs: config.stressPreAuthTimeoutMs / 2,
    };
  });
  /** smtp-server hands every callback its session object; the InboundSession rides along with it. */
  const sessions = new WeakMap<SMTPServerSession, InboundSession>();
  const sessionOf = (session: SMTPServerSession): InboundSession => {
    const found = sessions.get(session);
    if (!found) throw new Error('smtp session without an InboundSession'); // connect() attaches one first
    return found;
  };

  function buildServer(listener: Listener): SMTPServer {
    const config = deps.config();
    const tls = deps.tls;
    const offerStarttls = listener === 'smtp' && config.starttls && tls !== undefined;
    const context: SessionContext = {
      listener,
      config: deps.config,
      devices: deps.devices,
      queue: deps.queue,
      events: deps.events,
      logger: deps.logger,
      logins: deps.logins,
      slots,
      popGrant: deps.popGrant ?? (() => undefined),
      expiredPopGrant: deps.expiredPopGrant ?? (() => undefined),
      fromModeOf: deps.fromModeOf ?? (() => undefined),
    };
    const options: SMTPServerOptions = {
      name: config.hostname,
      banner: 'scanrelay ready',
      secure: listener === 'smtps',
      size: config.maxMessageSize,
      authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5'],
      authOptional: true, // checked at MAIL: auth: none and POP-before-SMTP devices never AUTH
      allowInsecureAuth: true, // printers cannot do TLS; the LAN leg is plaintext by design
      disabledCommands: offerStarttls || listener === 'smtps' ? [] : ['STARTTLS'],
      disableReverseLookup: true,
      // Caps only sockets still in a TLS handshake; connections are counted by the slot accountant.
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
        const refusal = sessionOf(session).connect();
        callback(refusal ? replyError(refusal) : undefined);
      },
      onAuth(auth, session, callback) {
        sessionOf(session)
          .auth(auth)
          .then(
            (result) => ('user' in result ? callback(null, result) : callback(replyError(result))),
            (err: unknown) => callback(err as Error),
          );
      },
      onMailFrom(address, session, callback) {
        const refusal = sessionOf(session).mailFrom(address, session);
        callback(refusal ? replyError(refusal) : undefined);
      },
      onRcptTo(address, session, callback) {
        const refusal = sessionOf(session).rcptTo(address);
        callback(refusal ? replyError(refusal) : undefined);
      },
      onData(stream, session, callback) {
        sessionOf(session)
          .data(stream, session)
          .then((reply) => (reply.code < 300 ? callback(null, reply.text) : callback(replyError(reply))));
      },
    };
    const server = new QuirkTolerantSmtpServer(options, {
      maxSessionMs: config.maxSessionMs,
      onConnection: (session, control, remoteAddress) => sessions.set(session, new InboundSession(context, remoteAddress, control)),
      onCommand: (session, name, line) => sessions.get(session)?.command(name, name === 'HELO' || name === 'EHLO' ? line : name),
      onQuirk: (quirk, session, command) => sessions.get(session)?.quirk(quirk, command),
      onQuit: (session) => sessions.get(session)?.quit(),
      onSocketClosed: (session) => sessions.get(session)?.closed(),
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
    slots: () => slots.counts(),
  };
}

function allowsLegacyTls(setting: LegacyTls, listener: Listener): boolean {
  return setting === true || (setting === 'starttls' && listener === 'smtp') || (setting === 'tlsPort' && listener === 'smtps');
}
