/** The login guard's lock-out state: which counter locks what, forgiveness, bounds, IPv6 /64, persistence, guess rates. */
import { describe, expect, it } from 'vitest';
import { InMemoryAuthStateStore, LockoutState, MAX_KEYS, addressKey, type LockoutPolicy } from '../../../src/inbound/index.js';

const POLICY: LockoutPolicy = {
  maxFailures: 5,
  windowMs: 10 * 60_000,
  durationMs: 15 * 60_000,
  maxFailuresPerAddress: 20,
  maxFailuresPerUsername: 30,
  usernameWindowMs: 60 * 60_000,
  usernameDurationMs: 60 * 60_000,
};

function clock(start = 1_700_000_000_000) {
  const c = { now: start, tick: (ms: number) => (c.now += ms) };
  return c;
}

/** A LockoutState on the test clock; a fresh in-memory store and no known logins unless given. */
function lockoutOn(c: ReturnType<typeof clock>, store = new InMemoryAuthStateStore(), isKnown: (username: string) => boolean = () => false) {
  return new LockoutState(POLICY, store, isKnown, () => c.now);
}

describe('LockoutState', () => {
  it('counts per (address, username): a success forgives only its own identity', () => {
    const c = clock();
    const state = lockoutOn(c);
    // Four wrong passwords for B, one correct login as A, repeated: B is locked all the same.
    let lockedAt = -1;
    for (let round = 0; round < 10 && lockedAt < 0; round++) {
      for (let i = 0; i < 4; i++) {
        if (state.blockFor('10.0.0.9', 'device-b', false)) lockedAt = round;
        else state.recordFailure('10.0.0.9', 'device-b');
      }
      state.forgive('10.0.0.9', 'device-a');
    }
    expect(lockedAt).toBe(1);
    expect(state.blockFor('10.0.0.9', 'device-b', false)?.scope).toBe('pair');
    expect(state.blockFor('10.0.0.9', 'device-a', false)).toBeUndefined();
    expect(state.blockFor('10.0.0.10', 'device-b', false)).toBeUndefined();
  });

  it('locks an address that tries many logins, and a login tried from many addresses, except from its home', () => {
    const c = clock();
    const state = lockoutOn(c);
    for (let i = 0; i < 20; i++) state.recordFailure('10.0.0.9', `user-${i}`);
    expect(state.blockFor('10.0.0.9', 'someone-new', false)?.scope).toBe('address');
    expect(state.lockedUntilFor('10.0.0.9')).toBe(c.now + POLICY.durationMs);
    expect(state.blockFor('10.0.0.9', 'printer-home', true)).toBeUndefined(); // a device at home is not locked out by others

    for (let i = 0; i < 30; i++) state.recordFailure(`10.1.${i}.1`, 'scanner-2f');
    expect(state.blockFor('10.9.9.9', 'scanner-2f', false)?.scope).toBe('username');
    expect(state.blockFor('10.20.5.17', 'scanner-2f', true)).toBeUndefined();
    c.tick(POLICY.usernameDurationMs);
    expect(state.blockFor('10.9.9.9', 'scanner-2f', false)).toBeUndefined();
  });

  it('counts IPv6 per /64 and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    const state = new LockoutState(POLICY);
    for (let i = 0; i < 5; i++) state.recordFailure(`2001:db8:1:2::${i + 1}`, 'scanner-2f');
    expect(state.blockFor('2001:db8:1:2:dead:beef::9', 'scanner-2f', false)?.scope).toBe('pair');
    expect(state.blockFor('2001:db8:1:3::1', 'scanner-2f', false)).toBeUndefined();
  });

  it('stays bounded whatever usernames and addresses an attacker invents, keeping known logins', () => {
    const c = clock();
    const state = lockoutOn(c, undefined, (u) => u === 'scanner-2f');
    for (let i = 0; i < 4; i++) state.recordFailure('10.0.0.1', 'scanner-2f');
    for (let i = 0; i < 2 * MAX_KEYS; i++) state.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `invented-${i}`);
    const sizes = state.sizes();
    expect(sizes.pairs).toBeLessThanOrEqual(MAX_KEYS + 1);
    expect(sizes.addresses).toBeLessThanOrEqual(MAX_KEYS + 1);
    expect(sizes.usernames).toBeLessThanOrEqual(MAX_KEYS + 1);
    expect(sizes.locks).toBeLessThanOrEqual(MAX_KEYS);
    state.recordFailure('10.0.0.1', 'scanner-2f'); // the fifth: its four earlier failures were kept
    expect(state.blockFor('10.0.0.1', 'scanner-2f', false)?.scope).toBe('pair');
  });

  it('survives a restart through the AuthStateStore: lock-outs and seen addresses', () => {
    const c = clock();
    const store = new InMemoryAuthStateStore();
    const first = lockoutOn(c, store);
    for (let i = 0; i < 5; i++) first.recordFailure('10.0.0.9', 'scanner-2f');
    first.markSeen('warren-2f-scanner', '10.20.5.17');
    const second = lockoutOn(c, store);
    expect(second.blockFor('10.0.0.9', 'scanner-2f', false)?.scope).toBe('pair');
    expect(second.seenFrom('warren-2f-scanner', '10.20.5.17')).toBe(true);
    expect(second.unlock('10.0.0.9')).toBe(true);
    expect(lockoutOn(c, store).blockFor('10.0.0.9', 'scanner-2f', false)).toBeUndefined();
    c.tick(86_400_000);
    expect(lockoutOn(c, store).seenFrom('warren-2f-scanner', '10.20.5.17')).toBe(false);
  });

  it('admits attempts in flight only up to the limit: the next waits for a verdict, then meets the lock', async () => {
    const c = clock();
    const state = lockoutOn(c);
    const admitted = Array.from({ length: 8 }, () => state.admit('10.0.0.9', 'scanner-2f', false));
    expect(admitted.map((a) => a.kind)).toEqual(['admitted', 'admitted', 'admitted', 'admitted', 'admitted', 'wait', 'wait', 'wait']);
    const reservations = admitted.flatMap((a) => (a.kind === 'admitted' ? [a.reservation] : []));
    const woken = admitted[5].kind === 'wait' ? admitted[5].settled : undefined;
    reservations[0].failed();
    await woken; // a settled attempt wakes the waiters
    // One failure counted and four still in flight: the budget of five is still spent.
    expect(state.admit('10.0.0.9', 'scanner-2f', false).kind).toBe('wait');
    expect(state.admit('10.0.0.10', 'scanner-2f', false).kind).toBe('admitted'); // another address has its own budget
    for (const reservation of reservations.slice(1)) reservation.failed();
    const after = state.admit('10.0.0.9', 'scanner-2f', false);
    expect(after.kind === 'locked' && after.lock.scope).toBe('pair');
    expect(() => reservations[0].failed()).toThrow(/settled twice/);
  });

  it('admits the waiting attempt once one in flight succeeds or is cancelled, and never waits with nothing in flight', () => {
    const c = clock();
    const state = lockoutOn(c);
    for (let i = 0; i < 4; i++) state.recordFailure('10.0.0.9', 'scanner-2f');
    const first = state.admit('10.0.0.9', 'scanner-2f', false);
    expect(state.admit('10.0.0.9', 'scanner-2f', false).kind).toBe('wait');
    if (first.kind !== 'admitted') throw new Error('first attempt not admitted');
    first.reservation.succeeded(); // forgives the four failures
    const second = state.admit('10.0.0.9', 'scanner-2f', false);
    if (second.kind !== 'admitted') throw new Error('second attempt not admitted');
    second.reservation.cancel();
    expect(state.sizes().inFlight).toBe(0);
    // A device at home is held to the pair limit only, in flight as well.
    const home = Array.from({ length: 6 }, () => state.admit('10.0.0.20', 'printer-home', true));
    expect(home.map((a) => a.kind)).toEqual(['admitted', 'admitted', 'admitted', 'admitted', 'admitted', 'wait']);
  });

  it('limits guesses per hour: figures for one address and for 150 addresses (printed)', () => {
    // The attacker holds 10 connections per address and each failure costs the 1 s failure delay, so it can
    // try 10 guesses per address per second whenever no lock stops it. Simulated over 3 hours.
    const simulate = (addresses: number, usernames: string[]) => {
      const c = clock();
      const state = lockoutOn(c);
      const hours = 3;
      let guesses = 0;
      // Steps of 10 s with 100 tries per address each: the same rate, a tenth of the loop.
      for (let step = 0; step < hours * 360; step++) {
        for (let a = 0; a < addresses; a++) {
          const address = `10.77.${a >> 8}.${a & 255}`;
          for (let k = 0; k < 100; k++) {
            const username = usernames[(step * 100 + k + a) % usernames.length];
            if (state.blockFor(address, username, false)) {
              if (usernames.length === 1) break; // nothing else to try from here this second
              continue;
            }
            state.recordFailure(address, username);
            guesses++;
          }
        }
        c.tick(10_000);
      }
      return guesses / hours;
    };
    const oneAddressOneLogin = simulate(1, ['scanner-2f']);
    const manyAddressesOneLogin = simulate(150, ['scanner-2f']);
    const oneAddressTenLogins = simulate(
      1,
      Array.from({ length: 10 }, (_, i) => `device-${i}`),
    );
    console.log(
      `guesses per hour against one login: ${oneAddressOneLogin} from 1 address, ${manyAddressesOneLogin} from 150 addresses; ` +
        `against 10 logins from 1 address: ${oneAddressTenLogins} in total`,
    );
    expect(oneAddressOneLogin).toBeLessThanOrEqual(25);
    expect(manyAddressesOneLogin).toBeLessThanOrEqual(40);
    expect(oneAddressTenLogins).toBeLessThanOrEqual(100);
  });
});
