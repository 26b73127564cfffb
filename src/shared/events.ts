import { EventEmitter } from 'node:events';
// Type only: the one list of upstream states lives with delivery (upstream-states.ts); nothing is loaded.
import type { UpstreamState } from '../delivery/upstream-states.js';

/** The listener a connection arrived on. */
export type ListenerName = 'smtp' | 'smtps' | 'pop3';
/** Why a connection was refused before its first command (the metric's `reason` label). */
export type ConnectionRefusal = 'max-clients' | 'per-ip-limit' | 'locked-out';

/** The true reason of one login attempt (the client may hear a uniform reply; this is what really happened). */
export type LoginReason =
  | 'ok'
  | 'unknown-user'
  | 'bad-password'
  | 'wrong-address'
  | 'disabled'
  | 'locked-out'
  | 'method-unavailable'
  | 'pop-grant-expired'
  | 'malformed';

/** One step of a device's SMTP or POP3 session, as the printer doctor shows it (secrets never included). */
export type SessionStepName = 'connect' | 'helo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'queued' | 'refused' | 'quit' | 'timeout' | 'closed';

export interface SessionStep {
  sessionId: string;
  protocol: 'smtp' | 'pop3';
  remoteAddress: string;
  /** Known once the session is attributed (login, allowFrom, POP3 grant). */
  device?: string;
  step: SessionStepName;
  ok: boolean;
  /** What happened, in words (e.g. "EHLO printer.local", "AUTH LOGIN as scanner-2f", "250 queued as ..."). */
  detail: string;
  /** Machine-readable cause of a failed step (a LoginReason for auth, an SMTP code for refusals). */
  reason?: string;
  at: number;
}

export interface LoginAttempt {
  protocol: 'smtp' | 'pop3';
  sessionId: string;
  remoteAddress: string;
  username?: string;
  /** The device the username (or address) belongs to, when there is one. */
  device?: string;
  method: string;
  ok: boolean;
  reason: LoginReason;
  /** This attempt started a lock-out. */
  lockedOut?: boolean;
  at: number;
}

/**
 * Message and device lifecycle events. Lower layers (inbound, queue, delivery) emit them; device status
 * and metrics listen. Nobody calls "up" into the admin API.
 */
export interface GatewayEvents {
  /** An SMTP (or POP3) connection was accepted (before any limit or lock-out check). */
  'session.opened': [{ sessionId: string; remoteAddress: string; protocol: 'smtp' | 'pop3'; listener: ListenerName }];
  /** An SMTP connection was refused at connect (limits, lock-out); its session.closed follows. */
  'session.refused': [{ sessionId: string; remoteAddress: string; listener: ListenerName; reason: ConnectionRefusal }];
  'session.closed': [{ sessionId: string; remoteAddress: string; device?: string }];
  /** Every login attempt (SMTP AUTH, POP3 USER/PASS/APOP), emitted once by the login recorder. */
  'login.attempted': [LoginAttempt];
  /** Every step of a session, for the printer doctor (cheap when nobody listens). */
  'session.step': [SessionStep];
  /** A device started a transmission (MAIL FROM accepted). */
  'message.receiving': [{ device: string; sessionId: string }];
  /** A MAIL, RCPT or DATA was refused, or the transmission aborted, before queueing (`device` once the session is attributed). */
  'message.rejected': [{ device?: string; sessionId: string; code: number; reason: string }];
  /** Durable (body and row committed): the client hears 250 now. `acceptMs`: queue.accept's call to commit. */
  'message.queued': [{ id: string; device: string; size: number; upstream?: string; sessionId: string; subject?: string; acceptMs: number }];
  'message.attempt': [{ id: string; device: string; upstream: string }];
  /** One pass of the delivery worker: the messages it started and the due ones it left (upstream busy, or paused / pacing / cooling down). */
  'delivery.decided': [{ started: string[]; left: Array<{ id: string; why: 'busy' | 'waiting' }> }];
  /** `partly`: some recipients were refused for good (state partly-failed). */
  'message.delivered': [{ id: string; device: string; upstream: string; latencyMs: number; size: number; reply?: string; attempt?: number; partly?: boolean }];
  'message.deferred': [{ id: string; device: string; upstream?: string; reason: string; nextAttemptAt: number; reply?: string; attempt?: number }];
  /** `code`: the hold reason (queue/holds.ts); `fix`: what the admin can do; `attempted`: an upstream was tried (counted as an attempt). */
  'message.held': [
    { id: string; device: string; upstream?: string; reason: string; code?: string; fix?: string; reply?: string; attempt?: number; attempted?: boolean },
  ];
  'message.failed': [{ id: string; device: string; upstream?: string; reason: string; reply?: string; attempt?: number }];
  'message.deleted': [{ id: string; device: string }];
  /** A message (or, without id, several) became due again: delivery looks now instead of being kicked. */
  'message.due': [{ id?: string; reason: 'retry' | 'release' | 'reload' | 'flush' | 'start' }];
  /** Recovery found a message it cannot use (unreadable row, missing body, body without a row); kept. */
  'message.quarantined': [{ id: string; reason: string }];
  /** SQLite found a damaged page of store.db while the gateway runs (said once; store/health.ts). */
  'store.damaged': [{ problem: string }];
  /** The device registry changed (API create/update/delete, or a reload changed a file device). */
  'device.created': [{ name: string; enabled: boolean }];
  'device.updated': [{ name: string; enabled: boolean }];
  'device.removed': [{ name: string }];
  /** An upstream is configured (start, reload): its first state. */
  'upstream.added': [{ upstream: string; state: UpstreamState }];
  /** An upstream's state changed (upstream-states.ts allows the change); `reason`: the error that caused it. */
  'upstream.state-changed': [{ upstream: string; previous: UpstreamState; state: UpstreamState; reason?: string }];
  /** An upstream left the config (reload). */
  'upstream.removed': [{ upstream: string }];
}

export class GatewayEventBus extends EventEmitter<GatewayEvents> {}
