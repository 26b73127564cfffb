/**
 * Message states, the transitions allowed between them and the guard that enforces them. The one list:
 * the admin schema, the metrics and the routes import it from here.
 *
 *   queued ──claim──> delivering ──> delivered | partly-failed | failed | deferred | held
 *   deferred ─claim─> delivering      (and back to queued by retry, flush or release)
 *   held ──release──> queued          failed / partly-failed ──retry──> queued
 *   any open state ──> quarantined    (recovery found its row or body unreadable; kept, never removed)
 *
 * `delivering` exists only in memory (a claim holds the lease); a crash makes the message what its row
 * says (queued or deferred), so it is due again (at-least-once).
 */
import { ConflictError } from '../shared/errors.js';

export const MESSAGE_STATES = ['queued', 'deferred', 'held', 'delivering', 'delivered', 'partly-failed', 'failed', 'quarantined'] as const;
export type MessageState = (typeof MESSAGE_STATES)[number];

/** States that still need work (counted as "waiting"; kept in memory and read at start-up). */
export const OPEN_STATES: readonly MessageState[] = ['queued', 'deferred', 'held', 'delivering'];
/** States that end a message's trip (the message log; removed by logRetention). */
export const FINISHED_STATES: readonly MessageState[] = ['delivered', 'partly-failed', 'failed'];

const TRANSITIONS: Readonly<Record<MessageState, readonly MessageState[]>> = {
  queued: ['delivering', 'held', 'quarantined'],
  deferred: ['delivering', 'queued', 'held', 'quarantined'],
  held: ['queued', 'held', 'quarantined'],
  delivering: ['delivered', 'partly-failed', 'failed', 'deferred', 'held', 'queued'],
  delivered: [],
  'partly-failed': ['queued'],
  failed: ['queued'],
  quarantined: ['queued'],
};

export function isOpenState(state: MessageState): boolean {
  return OPEN_STATES.includes(state);
}

export function canTransition(from: MessageState, to: MessageState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A 409 for the API (SCANRELAY_CONFLICT), like every other "not in this state" refusal. */
export class IllegalTransitionError extends ConflictError {
  constructor(
    readonly id: string,
    readonly from: MessageState,
    readonly to: MessageState,
  ) {
    super(`message '${id}' is ${from}; it cannot become ${to}`);
  }
}

/** Throws IllegalTransitionError unless `from -> to` is allowed. */
export function assertTransition(id: string, from: MessageState, to: MessageState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(id, from, to);
}
