import { EventEmitter } from 'node:events';

/**
 * Message and device lifecycle events. Lower layers (inbound, queue, delivery) emit them; device status
 * and metrics listen. Nobody calls "up" into the admin API.
 */
export interface GatewayEvents {
  /** An SMTP (or POP3) session opened from a device address. */
  'session.opened': [{ sessionId: string; remoteAddress: string; protocol: 'smtp' | 'pop3' }];
  'session.closed': [{ sessionId: string; remoteAddress: string; device?: string }];
  'auth.succeeded': [{ device: string; method: string; remoteAddress: string }];
  'auth.failed': [{ username?: string; device?: string; method: string; remoteAddress: string; reason: string }];
  'auth.lockedOut': [{ remoteAddress: string; until: number }];
  /** A device started a transmission (MAIL FROM accepted). */
  'message.receiving': [{ device: string; sessionId: string }];
  /** The client's transmission was refused or aborted before it was queued. */
  'message.rejected': [{ device?: string; sessionId: string; code: number; reason: string }];
  'message.queued': [{ id: string; device: string; size: number; upstream?: string }];
  'message.attempt': [{ id: string; device: string; upstream: string }];
  'message.delivered': [{ id: string; device: string; upstream: string; latencyMs: number; size: number }];
  'message.deferred': [{ id: string; device: string; upstream?: string; reason: string; nextAttemptAt: number }];
  'message.held': [{ id: string; device: string; upstream?: string; reason: string }];
  'message.failed': [{ id: string; device: string; upstream?: string; reason: string }];
  'message.deleted': [{ id: string; device: string }];
}

export class GatewayEventBus extends EventEmitter<GatewayEvents> {}
