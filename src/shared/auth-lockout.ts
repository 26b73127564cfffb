/**
 * Throttles password guessing per source address, shared by SMTP AUTH and POP3 logins: after
 * `maxFailures` failures within `windowMs`, the address is locked out for `durationMs` (answered 4xx).
 */
import { canonicalAddress } from './cidr.js';

export interface LockoutPolicy {
  maxFailures: number;
  windowMs: number;
  durationMs: number;
}

export class AuthLockout {
  private readonly failures = new Map<string, number[]>();
  private readonly lockedUntil = new Map<string, number>();

  constructor(
    private policy: LockoutPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  setPolicy(policy: LockoutPolicy): void {
    this.policy = policy;
  }

  /** Epoch ms until which the address is locked, or undefined. */
  lockedUntilFor(address: string): number | undefined {
    const key = canonicalAddress(address);
    const until = this.lockedUntil.get(key);
    if (until === undefined) return undefined;
    if (until <= this.now()) {
      this.lockedUntil.delete(key);
      return undefined;
    }
    return until;
  }

  /** Records a failure; returns the lock end when this failure locked the address. */
  recordFailure(address: string): number | undefined {
    const key = canonicalAddress(address);
    const at = this.now();
    const recent = (this.failures.get(key) ?? []).filter((t) => at - t < this.policy.windowMs);
    recent.push(at);
    if (recent.length >= this.policy.maxFailures) {
      this.failures.delete(key);
      const until = at + this.policy.durationMs;
      this.lockedUntil.set(key, until);
      return until;
    }
    this.failures.set(key, recent);
    this.prune(at);
    return undefined;
  }

  recordSuccess(address: string): void {
    this.failures.delete(canonicalAddress(address));
  }

  /** Addresses currently locked (admin API). */
  locked(): Array<{ address: string; until: number }> {
    const at = this.now();
    return [...this.lockedUntil.entries()].filter(([, until]) => until > at).map(([address, until]) => ({ address, until }));
  }

  unlock(address: string): boolean {
    const key = canonicalAddress(address);
    this.failures.delete(key);
    return this.lockedUntil.delete(key);
  }

  /** Keeps memory bounded under a flood of distinct addresses. */
  private prune(at: number): void {
    if (this.failures.size < 10_000) return;
    for (const [key, times] of this.failures) if (times.every((t) => at - t >= this.policy.windowMs)) this.failures.delete(key);
  }
}
