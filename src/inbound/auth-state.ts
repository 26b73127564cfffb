/**
 * Persistence of the login guard's state (lock-outs, and the addresses each device authenticated from),
 * so that a restart neither forgives an attacker nor forgets where a printer lives. The message store
 * implements this interface on its database; InMemoryAuthStateStore is used when no store is given.
 * Callers bound what they save (LockoutState caps both tables); an implementation may cap rows too.
 */
export interface AuthStateStore {
  /** Live lock-outs (until > now). key: an opaque string such as "addr:10.0.0.0/24" or "user:scanner-2f". */
  loadLockouts(now: number): Array<{ key: string; until: number; failures: number }>;
  saveLockout(entry: { key: string; until: number; failures: number }): void;
  deleteLockout(key: string): void;
  /** Addresses each device authenticated from since `since` (epoch ms). */
  loadSeen(since: number): Array<{ device: string; address: string; at: number }>;
  saveSeen(entry: { device: string; address: string; at: number }): void;
  pruneSeen(before: number): void;
}

/** Keeps everything in memory: the state lives as long as the process. */
export class InMemoryAuthStateStore implements AuthStateStore {
  private readonly lockouts = new Map<string, { key: string; until: number; failures: number }>();
  private readonly seen = new Map<string, { device: string; address: string; at: number }>();

  loadLockouts(now: number) {
    return [...this.lockouts.values()].filter((l) => l.until > now);
  }
  saveLockout(entry: { key: string; until: number; failures: number }): void {
    this.lockouts.set(entry.key, { ...entry });
  }
  deleteLockout(key: string): void {
    this.lockouts.delete(key);
  }
  loadSeen(since: number) {
    return [...this.seen.values()].filter((s) => s.at >= since);
  }
  saveSeen(entry: { device: string; address: string; at: number }): void {
    this.seen.set(`${entry.device}\n${entry.address}`, { ...entry });
  }
  pruneSeen(before: number): void {
    for (const [key, entry] of this.seen) if (entry.at < before) this.seen.delete(key);
  }
}
