/**
 * The slot accountant: the one owner of every connection count of a listener (per address, all
 * clients, sessions not yet logged in). smtp-server's own counts are not used: it lowers them only after
 * the socket's `close` plus a setImmediate, so a client that reconnects as soon as QUIT is answered was
 * refused as if it were still connected. Here a session stops counting when QUIT is answered or its
 * socket ends, whichever comes first (release is idempotent).
 *
 * Admission, in order: the per-address limit (IPv6: per /64); then the total, where addresses without a
 * device may use only maxClients - reservedClients; then the cap on unauthenticated sessions. When a
 * total or the unauthenticated cap is reached, the longest-idle unauthenticated session is evicted to make
 * room (as Postfix does under stress; only sessions idle for half the stress pre-auth deadline), and while usage is above stressThreshold the pre-auth deadline is
 * the shorter stress one.
 */
import type { ConnectionRefusal } from '../shared/events.js';
import { addressKey } from './lockout.js';

export interface SlotLimits {
  maxClients: number;
  maxPerAddress: number;
  /** Sessions not yet identified; maxClients means no separate cap. */
  maxUnauthenticated: number;
  /** Slots only device addresses may take. */
  reserved: number;
  /** 0..1: share of a limit in use from which stress mode applies. */
  stressThreshold: number;
  /** When full, a newcomer takes the slot of the longest-idle unauthenticated session... */
  evictIdle: boolean;
  /** ...idle at least this long (a burst of connections is refused, not churned). */
  minIdleToEvictMs: number;
}

/** A session as the accountant sees it. */
export interface SlotHolder {
  readonly remoteAddress: string;
  /** The address has a device (pinned or seen authenticating): reserved slots are open to it. */
  readonly deviceAddress: boolean;
  /** Epoch ms of the client's last command (eviction picks the oldest). */
  lastActivity(): number;
  /** Closes the session to make room for another (sends its own 421). */
  evict(): void;
  /** Stress mode started: the holder shortens its pre-auth deadline. */
  onStress?(): void;
}

export type Admission = { ok: true; evicted?: SlotHolder } | { ok: false; refusal: SlotRefusal };
export type SlotRefusal = 'per-address' | 'max-clients' | 'unauthenticated';

/** The metric's reason for a refused admission, the same on every listener (unauthenticated slots are a share of the total). */
export function refusalReason(refusal: SlotRefusal): Extract<ConnectionRefusal, 'per-ip-limit' | 'max-clients'> {
  return refusal === 'per-address' ? 'per-ip-limit' : 'max-clients';
}

export class SlotAccountant {
  private readonly holders = new Map<SlotHolder, { key: string; authenticated: boolean }>();
  private readonly perAddress = new Map<string, number>();
  private unauthenticated = 0;
  private stressed = false;

  constructor(private readonly limits: () => SlotLimits) {}

  admit(holder: SlotHolder): Admission {
    const limits = this.limits();
    const key = addressKey(holder.remoteAddress);
    if ((this.perAddress.get(key) ?? 0) >= limits.maxPerAddress) return { ok: false, refusal: 'per-address' };
    // Never more than half the slots reserved, so a small maxClients still admits strangers.
    const reserved = Math.min(limits.reserved, Math.floor(limits.maxClients / 2));
    const totalLimit = holder.deviceAddress ? limits.maxClients : limits.maxClients - reserved;
    let evicted: SlotHolder | undefined;
    const full = this.holders.size >= totalLimit;
    if (full || this.unauthenticated >= limits.maxUnauthenticated) {
      evicted = limits.evictIdle ? this.longestIdleUnauthenticated(holder, limits.minIdleToEvictMs) : undefined;
      if (!evicted) return { ok: false, refusal: full ? 'max-clients' : 'unauthenticated' };
      this.release(evicted);
      evicted.evict();
    }
    this.holders.set(holder, { key, authenticated: false });
    this.perAddress.set(key, (this.perAddress.get(key) ?? 0) + 1);
    this.unauthenticated++;
    this.checkStress(limits);
    return evicted ? { ok: true, evicted } : { ok: true };
  }

  /** The session logged in (or was identified): it no longer counts as unauthenticated. */
  authenticated(holder: SlotHolder): void {
    const entry = this.holders.get(holder);
    if (!entry || entry.authenticated) return;
    entry.authenticated = true;
    this.unauthenticated--;
    this.checkStress(this.limits());
  }

  release(holder: SlotHolder): void {
    const entry = this.holders.get(holder);
    if (!entry) return;
    this.holders.delete(holder);
    if (!entry.authenticated) this.unauthenticated--;
    const left = (this.perAddress.get(entry.key) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(entry.key);
    else this.perAddress.set(entry.key, left);
    this.checkStress(this.limits());
  }

  /** Stress mode: the pre-auth deadline is the short one. */
  inStress(): boolean {
    return this.stressed;
  }

  counts(): { total: number; unauthenticated: number; addresses: number } {
    return { total: this.holders.size, unauthenticated: this.unauthenticated, addresses: this.perAddress.size };
  }

  private checkStress(limits: SlotLimits): void {
    const busy = this.holders.size >= limits.maxClients * limits.stressThreshold || this.unauthenticated >= limits.maxUnauthenticated * limits.stressThreshold;
    if (busy === this.stressed) return;
    this.stressed = busy;
    if (busy) for (const [holder, entry] of this.holders) if (!entry.authenticated) holder.onStress?.();
  }

  /** Prefers sessions from addresses without a device, then the one idle longest. */
  private longestIdleUnauthenticated(newcomer: SlotHolder, minIdleMs: number): SlotHolder | undefined {
    const now = Date.now();
    let best: SlotHolder | undefined;
    for (const [holder, entry] of this.holders) {
      if (entry.authenticated || holder === newcomer) continue;
      if (now - holder.lastActivity() < minIdleMs) continue; // it may be logging in right now
      if (holder.deviceAddress && !newcomer.deviceAddress) continue; // a stranger never pushes out a printer
      if (!best) {
        best = holder;
        continue;
      }
      const rank = (h: SlotHolder) => (h.deviceAddress ? 1 : 0);
      if (rank(holder) < rank(best) || (rank(holder) === rank(best) && holder.lastActivity() < best.lastActivity())) best = holder;
    }
    return best;
  }
}
