/**
 * Lock-out state of the login guard (SMTP AUTH and POP3 share it through the login recorder).
 *
 * Three counters, each over a sliding window:
 *   pair     (address, username)  maxFailures            -> that username is refused from that address
 *   address  (all usernames)      maxFailuresPerAddress  -> the address is refused (connections too)
 *   username (all addresses)      maxFailuresPerUsername -> the username is refused from everywhere
 * except from its "home": the device's own allowFrom and the addresses it authenticated from in the last
 * day. So guessing spread over many addresses is stopped, and nobody can lock a printer out of its own
 * network by guessing its login. A success forgives only the failures of the identity that succeeded.
 * Addresses are counted per host for IPv4 and per /64 for IPv6 (one SLAAC network = one attacker).
 *
 * Invariants: every map is bounded (MAX_KEYS) whatever usernames or addresses an attacker invents; lock-outs
 * and seen addresses are written through to the AuthStateStore and read back at start.
 *
 * Check and count are one step: admit() counts an attempt as in flight from its lock-out check until its
 * password verdict settles it, and admits a new one only while the failures counted plus the attempts in
 * flight stay below each limit. Without that, N connections guessing at once would all pass the check
 * before the first wrong password was counted, and get N guesses. An attempt over the budget waits for
 * one in flight to settle and asks again; in-flight counts live in memory only (they end with the process).
 */
import ipaddr from 'ipaddr.js';
import { normalizeAddress } from '../shared/cidr.js';
import { InMemoryAuthStateStore, type AuthStateStore } from './auth-state.js';

export interface LockoutPolicy {
  maxFailures: number;
  windowMs: number;
  durationMs: number;
  maxFailuresPerAddress: number;
  maxFailuresPerUsername: number;
  usernameWindowMs: number;
  usernameDurationMs: number;
}

export type LockScope = 'pair' | 'address' | 'username';

export interface Lock {
  key: string;
  scope: LockScope;
  until: number;
  failures: number;
  address?: string;
  username?: string;
}

/** Entries per table; beyond it the stalest entries go first (known logins' counters are kept). */
export const MAX_KEYS = 10_000;
/** "Authenticated from this address in the last day" counts as home. */
export const SEEN_WINDOW_MS = 86_400_000;
const MAX_SEEN_PER_DEVICE = 32;
/** A seen address is written again at most this often (the store is not hit at every login). */
const SEEN_REFRESH_MS = 3_600_000;

/** The counting unit for an address: the IPv4 host, or the IPv6 /64. */
export function addressKey(address: string): string {
  const parsed = normalizeAddress(address);
  if (!parsed) return address.slice(0, 64);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}

/** Usernames are compared case-insensitively and trimmed to what a printer can hold. */
export function usernameKey(username: string): string {
  return username.toLowerCase().slice(0, 64);
}

type Failure = { at: number; address: string; username: string };

/** A login attempt counted in flight from its lock-out check to its password verdict; settle it exactly once. */
export interface LoginReservation {
  /** Counts the failure (a wrong password, or a right one refused all the same); returns the lock it started. */
  failed(): Lock | undefined;
  /** A success: forgives the failures of this (address, username) only. */
  succeeded(): void;
  /** No verdict (the check itself failed): the attempt counts for nothing. */
  cancel(): void;
}

/** What admit() decides: refused by a lock, admitted (verify, then settle), or wait for an attempt in flight. */
export type LoginAdmission = { kind: 'locked'; lock: Lock } | { kind: 'admitted'; reservation: LoginReservation } | { kind: 'wait'; settled: Promise<void> };

export class LockoutState {
  private readonly pairFailures = new Map<string, Failure[]>();
  private readonly addressFailures = new Map<string, Failure[]>();
  private readonly usernameFailures = new Map<string, Failure[]>();
  private readonly locks = new Map<string, Lock>();
  /** device -> address key -> last authenticated at. */
  private readonly seen = new Map<string, Map<string, number>>();
  private readonly seenSavedAt = new Map<string, number>();
  private lastSeenPrune = 0;
  /** Counter key -> attempts admitted and not yet settled (bounded by the open connections). */
  private readonly inFlight = new Map<string, number>();
  private settleWaiters: Array<() => void> = [];

  constructor(
    private policy: LockoutPolicy,
    private readonly store: AuthStateStore = new InMemoryAuthStateStore(),
    /** Counters of these usernames are never evicted by a flood of invented ones. */
    private readonly isKnownUsername: (username: string) => boolean = () => false,
    private readonly now: () => number = Date.now,
  ) {
    const at = this.now();
    for (const entry of store.loadLockouts(at)) {
      const lock = parseLockKey(entry.key);
      if (lock) this.locks.set(entry.key, { ...lock, key: entry.key, until: entry.until, failures: entry.failures });
    }
    for (const entry of store.loadSeen(at - SEEN_WINDOW_MS)) this.rememberSeen(entry.device, entry.address, entry.at);
  }

  setPolicy(policy: LockoutPolicy): void {
    this.policy = policy;
  }

  /** The lock that refuses this attempt, if any. `home`: the address is the username's device's home. */
  blockFor(address: string, username: string, home: boolean): Lock | undefined {
    const a = addressKey(address);
    const u = usernameKey(username);
    return this.live(pairKey(a, u)) ?? (home ? undefined : (this.live(`addr:${a}`) ?? this.live(`user:${u}`)));
  }

  /**
   * The lock-out check and the reservation in one synchronous step (see the header). `home` as for
   * blockFor: the address and username limits do not apply, but the attempt is counted against them.
   */
  admit(address: string, username: string, home: boolean): LoginAdmission {
    const lock = this.blockFor(address, username, home);
    if (lock) return { kind: 'locked', lock };
    const a = addressKey(address);
    const u = usernameKey(username);
    const p = this.policy;
    const at = this.now();
    const counters: Array<[Map<string, Failure[]>, string, number, number]> = [[this.pairFailures, pairKey(a, u), p.maxFailures, p.windowMs]];
    if (!home) {
      counters.push([this.addressFailures, `addr:${a}`, p.maxFailuresPerAddress, p.windowMs]);
      counters.push([this.usernameFailures, `user:${u}`, p.maxFailuresPerUsername, p.usernameWindowMs]);
    }
    for (const [table, key, max, windowMs] of counters) {
      const pending = this.inFlight.get(key) ?? 0;
      // Only attempts in flight make one wait (their settling wakes it); with none, the count alone decides.
      if (pending > 0 && (table.get(key) ?? []).filter((f) => at - f.at < windowMs).length + pending >= max) {
        return { kind: 'wait', settled: new Promise<void>((resolve) => this.settleWaiters.push(resolve)) };
      }
    }
    const keys = [pairKey(a, u), `addr:${a}`, `user:${u}`];
    for (const key of keys) this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    let settled = false;
    const settle = () => {
      if (settled) throw new Error('login reservation settled twice');
      settled = true;
      for (const key of keys) {
        const left = (this.inFlight.get(key) ?? 1) - 1;
        if (left > 0) this.inFlight.set(key, left);
        else this.inFlight.delete(key);
      }
    };
    const wake = () => {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      for (const resolve of waiters) resolve();
    };
    return {
      kind: 'admitted',
      reservation: {
        failed: () => {
          settle();
          const started = this.recordFailure(address, username);
          wake();
          return started;
        },
        succeeded: () => {
          settle();
          this.forgive(address, username);
          wake();
        },
        cancel: () => {
          settle();
          wake();
        },
      },
    };
  }

  /** Counts one failed login; returns the lock it started, if any. */
  recordFailure(address: string, username: string): Lock | undefined {
    const at = this.now();
    const failure: Failure = { at, address: addressKey(address), username: usernameKey(username) };
    const p = this.policy;
    const started: Lock[] = [];
    const count = (
      table: Map<string, Failure[]>,
      key: string,
      max: number,
      windowMs: number,
      durationMs: number,
      lock: Omit<Lock, 'until' | 'failures' | 'key'>,
    ) => {
      const recent = (table.get(key) ?? []).filter((f) => at - f.at < windowMs);
      recent.push(failure);
      if (recent.length > max) recent.splice(0, recent.length - max); // never more entries than the limit
      table.delete(key); // re-inserted last: Map order is the eviction order
      if (recent.length >= max && !this.live(key)) {
        const entry: Lock = { ...lock, key, until: at + durationMs, failures: recent.length };
        this.setLock(entry);
        started.push(entry);
        return;
      }
      table.set(key, recent);
      this.bound(table);
    };
    const { address: a, username: u } = failure;
    count(this.pairFailures, pairKey(a, u), p.maxFailures, p.windowMs, p.durationMs, { scope: 'pair', address: a, username: u });
    count(this.addressFailures, `addr:${a}`, p.maxFailuresPerAddress, p.windowMs, p.durationMs, { scope: 'address', address: a });
    count(this.usernameFailures, `user:${u}`, p.maxFailuresPerUsername, p.usernameWindowMs, p.usernameDurationMs, { scope: 'username', username: u });
    return started[0];
  }

  /** A success: forgets the failures of this (address, username) only. */
  forgive(address: string, username: string): void {
    const a = addressKey(address);
    const u = usernameKey(username);
    this.pairFailures.delete(pairKey(a, u));
    const keep = (table: Map<string, Failure[]>, key: string) => {
      const list = table.get(key);
      if (!list) return;
      const rest = list.filter((f) => !(f.address === a && f.username === u));
      if (rest.length === 0) table.delete(key);
      else table.set(key, rest);
    };
    keep(this.addressFailures, `addr:${a}`);
    keep(this.usernameFailures, `user:${u}`);
  }

  markSeen(device: string, address: string): void {
    const at = this.now();
    const a = addressKey(address);
    this.rememberSeen(device, a, at);
    const saveKey = `${device}\n${a}`;
    if (at - (this.seenSavedAt.get(saveKey) ?? 0) >= SEEN_REFRESH_MS) {
      this.seenSavedAt.set(saveKey, at);
      if (this.seenSavedAt.size > MAX_KEYS) this.seenSavedAt.clear();
      this.store.saveSeen({ device, address: a, at });
    }
    if (at - this.lastSeenPrune >= SEEN_REFRESH_MS) {
      this.lastSeenPrune = at;
      this.store.pruneSeen(at - SEEN_WINDOW_MS);
    }
  }

  /** The device authenticated from this address (IPv6: this /64) in the last day. */
  seenFrom(device: string, address: string): boolean {
    const at = this.seen.get(device)?.get(addressKey(address));
    return at !== undefined && this.now() - at < SEEN_WINDOW_MS;
  }

  /** Some device authenticated from this address in the last day. */
  seenAny(address: string): boolean {
    const a = addressKey(address);
    const at = this.now();
    for (const addresses of this.seen.values()) {
      const last = addresses.get(a);
      if (last !== undefined && at - last < SEEN_WINDOW_MS) return true;
    }
    return false;
  }

  /** The address-wide lock end, for the connection-level refusal and the admin API. */
  lockedUntilFor(address: string): number | undefined {
    return this.live(`addr:${addressKey(address)}`)?.until;
  }

  /** Every live lock-out (admin API). */
  locked(): Array<Lock & { address: string }> {
    const at = this.now();
    return [...this.locks.values()]
      .filter((l) => l.until > at)
      .map((l) => ({ ...l, address: l.address ?? '*' }))
      .sort((x, y) => x.until - y.until);
  }

  /** Lifts every lock-out of this address (address-wide and per username) and its failure counts. */
  unlock(address: string): boolean {
    const a = addressKey(address);
    let removed = false;
    for (const lock of [...this.locks.values()]) {
      if (lock.address === a) {
        this.deleteLock(lock.key);
        removed = true;
      }
    }
    this.addressFailures.delete(`addr:${a}`);
    for (const key of [...this.pairFailures.keys()]) if (key.startsWith(`pair:${a} `)) this.pairFailures.delete(key);
    return removed;
  }

  /** Table sizes (tests check the bound). */
  sizes(): { pairs: number; addresses: number; usernames: number; locks: number; inFlight: number } {
    return {
      pairs: this.pairFailures.size,
      addresses: this.addressFailures.size,
      usernames: this.usernameFailures.size,
      locks: this.locks.size,
      inFlight: this.inFlight.size,
    };
  }

  private live(key: string): Lock | undefined {
    const lock = this.locks.get(key);
    if (!lock) return undefined;
    if (lock.until <= this.now()) {
      this.deleteLock(key);
      return undefined;
    }
    return lock;
  }

  private setLock(lock: Lock): void {
    this.locks.set(lock.key, lock);
    this.store.saveLockout({ key: lock.key, until: lock.until, failures: lock.failures });
    if (this.locks.size <= MAX_KEYS) return;
    const at = this.now();
    for (const [key, entry] of this.locks) if (entry.until <= at) this.deleteLock(key);
    // Still full: drop the lock that ends soonest (it would have been the next to go anyway).
    while (this.locks.size > MAX_KEYS) {
      let soonest: Lock | undefined;
      for (const entry of this.locks.values()) if (!soonest || entry.until < soonest.until) soonest = entry;
      if (!soonest) break;
      this.deleteLock(soonest.key);
    }
  }

  private deleteLock(key: string): void {
    if (this.locks.delete(key)) this.store.deleteLockout(key);
  }

  /** O(1) per call: the oldest entries go first (Map order), known logins' counters are skipped over. */
  private bound(table: Map<string, Failure[]>): void {
    if (table.size <= MAX_KEYS) return;
    let skipped = 0;
    for (const [key, list] of table) {
      if (table.size <= MAX_KEYS || skipped > MAX_KEYS) break;
      if (list.some((f) => this.isKnownUsername(f.username))) {
        skipped++;
        continue;
      }
      table.delete(key);
    }
  }

  private rememberSeen(device: string, address: string, at: number): void {
    let addresses = this.seen.get(device);
    if (!addresses) {
      addresses = new Map();
      this.seen.set(device, addresses);
    }
    addresses.delete(address);
    addresses.set(address, at);
    while (addresses.size > MAX_SEEN_PER_DEVICE) {
      const oldest = addresses.keys().next().value;
      if (oldest === undefined) break;
      addresses.delete(oldest);
    }
  }
}

function pairKey(address: string, username: string): string {
  return `pair:${address} ${username}`;
}

/** "pair:<address> <username>", "addr:<address>", "user:<username>" back to their parts. */
function parseLockKey(key: string): Omit<Lock, 'key' | 'until' | 'failures'> | undefined {
  if (key.startsWith('addr:')) return { scope: 'address', address: key.slice(5) };
  if (key.startsWith('user:')) return { scope: 'username', username: key.slice(5) };
  if (key.startsWith('pair:')) {
    const [address, username] = key.slice(5).split(' ');
    if (address && username !== undefined) return { scope: 'pair', address, username };
  }
  return undefined;
}
