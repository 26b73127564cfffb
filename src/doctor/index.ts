/**
 * The printer doctor: live, step-by-step view of one device's next sessions, built from the gateway's own
 * events (`session.step` carries the login recorder's true reason, not the uniform reply the printer hears)
 * and the message lifecycle events for the upstream trip.
 *
 * Attribution: a step naming a device belongs to it (login, allowFrom pin, POP3 grant). Before AUTH a
 * session is guessed from its address: the device's allowFrom, or the address it last logged in from.
 * Steps of sessions nobody can attribute yet wait in a small per-session buffer and are handed over when
 * the session names its device. Nothing is collected while nobody watches: the listeners are attached by
 * the first watcher and removed with the last. Imports shared and devices only; admin serves it as SSE.
 */
import { addressInRanges, parseCidr, type ParsedCidr } from '../shared/cidr.js';
import type { GatewayEventBus, GatewayEvents, SessionStep } from '../shared/events.js';
import { type DeviceFacts, type Explanation, explainStep, maskSecrets } from './explain.js';

export { explainStep, maskSecrets, type DeviceFacts, type Explanation } from './explain.js';

/** contract C `event: step` */
export interface DoctorStep {
  sessionId: string;
  protocol: 'smtp' | 'pop3';
  remoteAddress: string;
  device?: string;
  step: SessionStep['step'];
  ok: boolean;
  detail: string;
  reason?: string;
  at: string;
  explanation?: Explanation;
}

/** contract C `event: delivery` */
export interface DoctorDelivery {
  id: string;
  sessionId?: string;
  device: string;
  outcome: 'queued' | 'delivered' | 'deferred' | 'held' | 'failed';
  upstream?: string;
  reply?: string;
  at: string;
}

export type DoctorEvent = { type: 'step'; data: DoctorStep } | { type: 'delivery'; data: DoctorDelivery };

export interface PrinterDoctorDeps {
  events: GatewayEventBus;
  /** The device's public facts, or undefined when there is no such device. */
  device: (name: string) => DeviceFacts | undefined;
  /** Where the device last logged in from (device status). */
  lastSeenAddress: (name: string) => string | undefined;
  now?: () => number;
}

/** Sessions followed at once while someone watches; beyond this the oldest is forgotten. */
export const MAX_TRACKED_SESSIONS = 256;
/** Steps kept for a session not yet attributed (a normal session has about a dozen). */
export const MAX_PENDING_STEPS = 32;
/** Message ids remembered to tie later delivery events to their SMTP session. */
const MAX_TRACKED_MESSAGES = 512;

interface TrackedSession {
  /** Named by a step (login): decides. */
  device?: string;
  /** Guessed from the address before login. */
  guess?: string;
  pending: SessionStep[];
}

type Listener = (event: DoctorEvent) => void;
type Handlers = {
  [K in 'session.step' | 'message.queued' | 'message.delivered' | 'message.deferred' | 'message.held' | 'message.failed']: (...args: GatewayEvents[K]) => void;
};

export class PrinterDoctor {
  private readonly watchers = new Map<string, Set<Listener>>();
  private readonly sessions = new Map<string, TrackedSession>();
  private readonly messageSessions = new Map<string, string>();
  private readonly now: () => number;
  private handlers?: Handlers;

  constructor(private readonly deps: PrinterDoctorDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Whether `name` is a device that can be watched. */
  knows(name: string): boolean {
    return this.deps.device(name) !== undefined;
  }

  /** Starts sending `name`'s sessions to `listener`; call the returned function to stop. */
  watch(name: string, listener: Listener): () => void {
    let set = this.watchers.get(name);
    if (!set) {
      set = new Set();
      this.watchers.set(name, set);
    }
    set.add(listener);
    this.attach();
    return () => {
      const current = this.watchers.get(name);
      if (!current?.delete(listener)) return;
      if (current.size === 0) this.watchers.delete(name);
      if (this.watchers.size === 0) this.detach();
    };
  }

  get watcherCount(): number {
    let count = 0;
    for (const set of this.watchers.values()) count += set.size;
    return count;
  }

  /** Sessions currently followed (bounded by MAX_TRACKED_SESSIONS; 0 when nobody watches). */
  get trackedSessions(): number {
    return this.sessions.size;
  }

  private attach(): void {
    if (this.handlers) return;
    const delivery =
      (outcome: DoctorDelivery['outcome']) => (event: { id: string; device: string; upstream?: string; reply?: string; reason?: string; sessionId?: string }) =>
        this.onDelivery(outcome, event);
    this.handlers = {
      'session.step': (step) => this.onStep(step),
      'message.queued': delivery('queued'),
      'message.delivered': delivery('delivered'),
      'message.deferred': delivery('deferred'),
      'message.held': delivery('held'),
      'message.failed': delivery('failed'),
    };
    for (const [name, handler] of Object.entries(this.handlers)) this.deps.events.on(name as 'session.step', handler as Handlers['session.step']);
  }

  private detach(): void {
    if (!this.handlers) return;
    for (const [name, handler] of Object.entries(this.handlers)) this.deps.events.off(name as 'session.step', handler as Handlers['session.step']);
    this.handlers = undefined;
    this.sessions.clear();
    this.messageSessions.clear();
  }

  private onStep(step: SessionStep): void {
    let session = this.sessions.get(step.sessionId);
    if (!session) {
      session = { pending: [] };
      remember(this.sessions, step.sessionId, session, MAX_TRACKED_SESSIONS);
    }
    if (step.device) session.device = step.device;
    if (!session.device && !session.guess) session.guess = this.guessByAddress(step.remoteAddress);
    const owner = session.device ?? session.guess;
    const listeners = owner ? this.watchers.get(owner) : undefined;
    if (owner && listeners) {
      for (const earlier of session.pending.splice(0)) this.send(listeners, this.stepView(earlier, owner));
      this.send(listeners, this.stepView(step, owner));
    } else if (!session.device) {
      // Not ours yet: keep the start of the session in case its login names a watched device.
      if (session.pending.length < MAX_PENDING_STEPS) session.pending.push(step);
    }
    if (step.step === 'closed') this.sessions.delete(step.sessionId);
  }

  private onDelivery(
    outcome: DoctorDelivery['outcome'],
    event: { id: string; device: string; upstream?: string; reply?: string; reason?: string; sessionId?: string },
  ): void {
    if (event.sessionId) remember(this.messageSessions, event.id, event.sessionId, MAX_TRACKED_MESSAGES);
    const listeners = this.watchers.get(event.device);
    if (!listeners) return;
    const sessionId = event.sessionId ?? this.messageSessions.get(event.id);
    const reply = event.reply ?? event.reason;
    this.send(listeners, {
      type: 'delivery',
      data: {
        id: event.id,
        ...(sessionId ? { sessionId } : {}),
        device: event.device,
        outcome,
        ...(event.upstream ? { upstream: event.upstream } : {}),
        ...(reply ? { reply: maskSecrets(reply) } : {}),
        at: new Date(this.now()).toISOString(),
      },
    });
    if (outcome === 'delivered' || outcome === 'failed') this.messageSessions.delete(event.id);
  }

  private guessByAddress(address: string): string | undefined {
    for (const name of this.watchers.keys()) {
      const device = this.deps.device(name);
      if (!device) continue;
      if (device.allowFrom.length > 0 && addressInRanges(address, parsedRanges(device.allowFrom))) return name;
      if (this.deps.lastSeenAddress(name) === address) return name;
    }
    return undefined;
  }

  private stepView(step: SessionStep, owner: string): DoctorEvent {
    const explanation = explainStep(step, this.deps.device(owner));
    return {
      type: 'step',
      data: {
        sessionId: step.sessionId,
        protocol: step.protocol,
        remoteAddress: step.remoteAddress,
        device: step.device ?? owner,
        step: step.step,
        ok: step.ok,
        detail: maskSecrets(step.detail),
        ...(step.reason ? { reason: step.reason } : {}),
        at: new Date(step.at).toISOString(),
        ...(explanation ? { explanation } : {}),
      },
    };
  }

  private send(listeners: Set<Listener>, event: DoctorEvent): void {
    for (const listener of listeners) listener(event);
  }
}

function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

const rangeCache = new WeakMap<readonly string[], ParsedCidr[]>();
function parsedRanges(allowFrom: readonly string[]): ParsedCidr[] {
  let ranges = rangeCache.get(allowFrom);
  if (!ranges) {
    ranges = allowFrom.map(parseCidr);
    rangeCache.set(allowFrom, ranges);
  }
  return ranges;
}
