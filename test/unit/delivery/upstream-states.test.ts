import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/index.js';
import {
  IllegalUpstreamTransitionError,
  UPSTREAM_STATES,
  assertUpstreamTransition,
  canUpstreamTransition,
  type UpstreamState,
} from '../../../src/delivery/upstream-states.js';
import { Upstream } from '../../../src/delivery/upstreams.js';
import { SmtpThread } from '../../../src/delivery/smtp-thread.js';
import { GatewayEventBus } from '../../../src/shared/events.js';

const ALLOWED: Array<[UpstreamState, UpstreamState]> = [
  ['unknown', 'up'],
  ['unknown', 'auth-failed'],
  ['unknown', 'unreachable'],
  ['unknown', 'quota-paused'],
  ['unknown', 'tls-failed'],
  ['up', 'unknown'],
  ['up', 'auth-failed'],
  ['up', 'unreachable'],
  ['up', 'quota-paused'],
  ['up', 'tls-failed'],
  ['unreachable', 'unknown'],
  ['unreachable', 'up'],
  ['unreachable', 'auth-failed'],
  ['unreachable', 'quota-paused'],
  ['unreachable', 'tls-failed'],
  ['quota-paused', 'unknown'],
  ['quota-paused', 'up'],
  ['quota-paused', 'auth-failed'],
  ['quota-paused', 'unreachable'],
  ['quota-paused', 'tls-failed'],
  ['tls-failed', 'unknown'],
  ['tls-failed', 'up'],
  ['tls-failed', 'auth-failed'],
  ['tls-failed', 'unreachable'],
  ['tls-failed', 'quota-paused'],
  ['auth-failed', 'unknown'],
  ['auth-failed', 'up'],
];

describe('upstream state transitions', () => {
  it.each(ALLOWED)('%s -> %s is allowed', (from, to) => {
    expect(canUpstreamTransition(from, to)).toBe(true);
    expect(() => assertUpstreamTransition('gmail', from, to)).not.toThrow();
  });

  it('allows nothing else (the table above is the whole machine)', () => {
    for (const from of UPSTREAM_STATES) {
      for (const to of UPSTREAM_STATES) {
        const listed = ALLOWED.some(([f, t]) => f === from && t === to);
        expect(canUpstreamTransition(from, to), `${from} -> ${to}`).toBe(listed);
      }
    }
  });

  it('throws a clear error for an illegal change: refused credentials are not lifted by a network failure', () => {
    expect(() => assertUpstreamTransition('gmail', 'auth-failed', 'unreachable')).toThrow(IllegalUpstreamTransitionError);
    expect(() => assertUpstreamTransition('gmail', 'auth-failed', 'unreachable')).toThrow("upstream 'gmail' is auth-failed; it cannot become unreachable");
    const thrown = (() => {
      try {
        assertUpstreamTransition('gmail', 'auth-failed', 'quota-paused');
      } catch (err) {
        return err;
      }
    })();
    expect(thrown).toMatchObject({ code: 'SCANRELAY_UPSTREAM_ILLEGAL_TRANSITION', upstream: 'gmail', from: 'auth-failed', to: 'quota-paused' });
  });
});

describe('an upstream whose credentials were refused', () => {
  const config = parseConfig(
    `
upstreams:
  - { name: gmail, host: 127.0.0.1, port: 465, security: tls, user: a@example.org, password: app-password-123 }
`,
    'test.yaml',
    {},
  );
  const upstream = () =>
    new Upstream(config.upstreams[0], {
      logger: pino({ level: 'silent' }),
      events: new GatewayEventBus(),
      hostname: 'test',
      now: () => 1_000,
      smtp: new SmtpThread(pino({ level: 'silent' })),
    });

  it('stays auth-failed after a later network failure (keeping its newest error), and leaves it on proof or reset', () => {
    const u = upstream();
    u.noteFailure({ message: 'Invalid login: 535 5.7.8', code: 'EAUTH', responseCode: 535 }, 'auth-failed', 1_000);
    expect(u.state).toBe('auth-failed');
    u.noteFailure({ message: 'connect ECONNREFUSED', code: 'ESOCKET' }, 'unreachable', 2_000);
    expect(u.state).toBe('auth-failed');
    expect(u.lastError).toMatchObject({ at: 2_000, code: 'ESOCKET' });
    u.noteFailure({ message: '454 4.7.0 temporary', code: 'EAUTH', responseCode: 454 }, 'up', 3_000);
    expect(u.state).toBe('auth-failed');
    u.noteSuccess(4_000, { loginOnly: true });
    expect(u.state).toBe('up');
    u.noteFailure({ message: 'Invalid login: 535 5.7.8', code: 'EAUTH', responseCode: 535 }, 'auth-failed', 5_000);
    u.reset();
    expect(u.state).toBe('unknown');
  });
});
