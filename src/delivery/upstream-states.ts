/**
 * Upstream states, the transitions allowed between them and the guard that enforces them. The one list:
 * the admin schema, the metrics, the console and the docs follow it (tests keep them in step).
 *
 *   unknown ──success──> up            any state ──reset / new settings──> unknown
 *   any state but auth-failed ──failure──> unreachable | tls-failed | quota-paused | auth-failed
 *   auth-failed ──success (proof)──> up
 *
 * `auth-failed` is left only by proof (a login or a send that worked) or by a change (new settings, an
 * operator's retry): a later network, TLS or rate-limit failure says nothing about the credentials, and
 * leaving the state would let held scans go to an account known to refuse them. Upstream.noteFailure
 * keeps the state then; setState asserts every change.
 */
import { GatewayError } from '../shared/errors.js';

export const UPSTREAM_STATES = ['up', 'unknown', 'auth-failed', 'unreachable', 'quota-paused', 'tls-failed'] as const;
export type UpstreamState = (typeof UPSTREAM_STATES)[number];

const TRANSITIONS: Readonly<Record<UpstreamState, readonly UpstreamState[]>> = {
  unknown: ['up', 'auth-failed', 'unreachable', 'quota-paused', 'tls-failed'],
  up: ['unknown', 'auth-failed', 'unreachable', 'quota-paused', 'tls-failed'],
  unreachable: ['unknown', 'up', 'auth-failed', 'quota-paused', 'tls-failed'],
  'quota-paused': ['unknown', 'up', 'auth-failed', 'unreachable', 'tls-failed'],
  'tls-failed': ['unknown', 'up', 'auth-failed', 'unreachable', 'quota-paused'],
  'auth-failed': ['unknown', 'up'],
};

export function isUpstreamState(value: string): value is UpstreamState {
  return (UPSTREAM_STATES as readonly string[]).includes(value);
}

export function canUpstreamTransition(from: UpstreamState, to: UpstreamState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A bug, not an input problem: the code asked for a change the table forbids. */
export class IllegalUpstreamTransitionError extends GatewayError {
  constructor(
    readonly upstream: string,
    readonly from: UpstreamState,
    readonly to: UpstreamState,
  ) {
    super('SCANRELAY_UPSTREAM_ILLEGAL_TRANSITION', `upstream '${upstream}' is ${from}; it cannot become ${to}`, 500);
  }
}

/** Throws IllegalUpstreamTransitionError unless `from -> to` is allowed. */
export function assertUpstreamTransition(upstream: string, from: UpstreamState, to: UpstreamState): void {
  if (!canUpstreamTransition(from, to)) throw new IllegalUpstreamTransitionError(upstream, from, to);
}
