/**
 * Small state tables of the store database that other parts keep across restarts: device status and
 * counters, upstream state worth keeping (what `auto` chose, a quota pause and its end), and the auth
 * lock-outs / seen addresses (AuthStateStore). Each class has the method shape its user declares
 * (structural typing: the users do not import this module; app.ts wires them).
 * Writes are non-durable group commits: losing the last second of counters in a power cut is acceptable.
 */
import type { StoreDatabase } from './database.js';
import type { AuthStateStore } from '../inbound/auth-state.js';

export class DeviceStatusTable<Status extends object> {
  constructor(private readonly db: StoreDatabase) {}

  load(): Array<{ name: string; status: Status }> {
    return this.db.all<{ name: string; doc: string }>('SELECT name, doc FROM device_status').flatMap((r) => {
      try {
        return [{ name: r.name, status: JSON.parse(r.doc) as Status }];
      } catch {
        return [];
      }
    });
  }

  save(entries: Array<{ name: string; status: Status }>): void {
    void this.db
      .commit(() => {
        const upsert = this.db.prepare('INSERT INTO device_status (name, doc) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc');
        for (const { name, status } of entries) upsert.run(name, JSON.stringify(status));
      })
      .catch(() => undefined);
  }

  remove(name: string): void {
    void this.db.commit(() => this.db.prepare('DELETE FROM device_status WHERE name = ?').run(name)).catch(() => undefined);
  }
}

/** What an upstream keeps across a restart. */
export interface SavedUpstreamState {
  /** The endpoint `security: auto` chose. */
  securityChosen?: 'tls' | 'starttls';
  portChosen?: number;
  /** A quota or rate pause and its end (epoch ms). */
  pausedUntil?: number;
  pauseLevel?: number;
  /** A fingerprint of the settings the choice was made with: a changed config starts over. */
  configKey?: string;
}

export class UpstreamStateTable {
  constructor(private readonly db: StoreDatabase) {}

  load(name: string): SavedUpstreamState | undefined {
    const row = this.db.get<{ doc: string }>('SELECT doc FROM upstream_state WHERE name = ?', name);
    if (!row) return undefined;
    try {
      return JSON.parse(row.doc) as SavedUpstreamState;
    } catch {
      return undefined;
    }
  }

  save(name: string, state: SavedUpstreamState): void {
    void this.db
      .commit(() =>
        this.db
          .prepare('INSERT INTO upstream_state (name, doc) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc')
          .run(name, JSON.stringify(state)),
      )
      .catch(() => undefined);
  }
}

/** Row caps: whatever usernames an attacker invents, the tables stay this small. */
const MAX_LOCKOUTS = 10_000;
const MAX_SEEN = 10_000;

/** Contract D: AuthStateStore on the store database (same method signatures as inbound/auth-state.ts). */
export class SqliteAuthStateStore implements AuthStateStore {
  constructor(private readonly db: StoreDatabase) {}

  loadLockouts(now: number): Array<{ key: string; until: number; failures: number }> {
    return this.db.all('SELECT key, until, failures FROM auth_lockouts WHERE until > ? ORDER BY until DESC LIMIT ?', now, MAX_LOCKOUTS);
  }

  saveLockout(entry: { key: string; until: number; failures: number }): void {
    void this.db
      .commit(() => {
        this.db
          .prepare(
            'INSERT INTO auth_lockouts (key, until, failures) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET until = excluded.until, failures = excluded.failures',
          )
          .run(entry.key, entry.until, entry.failures);
        // Bounded: the lock-outs that end first go first.
        this.db.prepare('DELETE FROM auth_lockouts WHERE key IN (SELECT key FROM auth_lockouts ORDER BY until DESC LIMIT -1 OFFSET ?)').run(MAX_LOCKOUTS);
      })
      .catch(() => undefined);
  }

  deleteLockout(key: string): void {
    void this.db.commit(() => this.db.prepare('DELETE FROM auth_lockouts WHERE key = ?').run(key)).catch(() => undefined);
  }

  loadSeen(since: number): Array<{ device: string; address: string; at: number }> {
    return this.db.all('SELECT device, address, at FROM auth_seen WHERE at >= ? ORDER BY at DESC LIMIT ?', since, MAX_SEEN);
  }

  saveSeen(entry: { device: string; address: string; at: number }): void {
    void this.db
      .commit(() => {
        this.db
          .prepare('INSERT INTO auth_seen (device, address, at) VALUES (?, ?, ?) ON CONFLICT (device, address) DO UPDATE SET at = excluded.at')
          .run(entry.device, entry.address, entry.at);
        this.db
          .prepare('DELETE FROM auth_seen WHERE (device, address) IN (SELECT device, address FROM auth_seen ORDER BY at DESC LIMIT -1 OFFSET ?)')
          .run(MAX_SEEN);
      })
      .catch(() => undefined);
  }

  pruneSeen(before: number): void {
    void this.db.commit(() => this.db.prepare('DELETE FROM auth_seen WHERE at < ?').run(before)).catch(() => undefined);
  }
}
