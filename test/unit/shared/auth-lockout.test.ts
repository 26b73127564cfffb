import { describe, expect, it } from 'vitest';
import { AuthLockout } from '../../../src/shared/auth-lockout.js';

describe('AuthLockout', () => {
  const policy = { maxFailures: 3, windowMs: 60_000, durationMs: 300_000 };

  function clocked() {
    let now = 1_000_000;
    const lockout = new AuthLockout(policy, () => now);
    return {
      lockout,
      advance: (ms: number) => {
        now += ms;
      },
      now: () => now,
    };
  }

  it('locks an address on the maxFailures-th failure within the window, for durationMs', () => {
    const { lockout, advance, now } = clocked();
    expect(lockout.recordFailure('10.0.0.9')).toBeUndefined();
    expect(lockout.recordFailure('10.0.0.9')).toBeUndefined();
    const until = lockout.recordFailure('10.0.0.9');
    expect(until).toBe(now() + 300_000);
    expect(lockout.lockedUntilFor('10.0.0.9')).toBe(until);
    expect(lockout.lockedUntilFor('10.0.0.10')).toBeUndefined();
    advance(299_999);
    expect(lockout.lockedUntilFor('10.0.0.9')).toBe(until);
    advance(1);
    expect(lockout.lockedUntilFor('10.0.0.9')).toBeUndefined();
    expect(lockout.locked()).toEqual([]);
  });

  it('forgets failures older than the window', () => {
    const { lockout, advance } = clocked();
    lockout.recordFailure('10.0.0.9');
    lockout.recordFailure('10.0.0.9');
    advance(60_000);
    expect(lockout.recordFailure('10.0.0.9')).toBeUndefined();
  });

  it('resets on success and on unlock, and treats IPv4-mapped IPv6 as the same address', () => {
    const { lockout } = clocked();
    lockout.recordFailure('10.0.0.9');
    lockout.recordFailure('::ffff:10.0.0.9');
    lockout.recordSuccess('10.0.0.9');
    expect(lockout.recordFailure('10.0.0.9')).toBeUndefined();
    lockout.recordFailure('10.0.0.9');
    expect(lockout.recordFailure('::ffff:10.0.0.9')).toBeDefined();
    expect(lockout.lockedUntilFor('10.0.0.9')).toBeDefined();
    expect(lockout.locked().map((l) => l.address)).toEqual(['10.0.0.9']);
    expect(lockout.unlock('::ffff:10.0.0.9')).toBe(true);
    expect(lockout.lockedUntilFor('10.0.0.9')).toBeUndefined();
  });

  it('applies a new policy', () => {
    const { lockout } = clocked();
    lockout.setPolicy({ ...policy, maxFailures: 1 });
    expect(lockout.recordFailure('10.0.0.9')).toBeDefined();
  });
});
