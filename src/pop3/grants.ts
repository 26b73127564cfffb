/**
 * POP-before-SMTP grants: a successful POP3 login authorises "address X sends as device Y until T".
 * Keyed by address; a second device logging in from the same address (NAT) replaces the grant and is
 * reported so the admin can see the ambiguity.
 */
import { canonicalAddress } from '../shared/cidr.js';

export interface PopGrant {
  address: string;
  device: string;
  expiresAt: number;
}

const EXPIRED_MEMORY_MS = 86_400_000;
const MAX_EXPIRED = 10_000;

export class PopGrants {
  private readonly grants = new Map<string, PopGrant>();
  /** Grants that ran out in the last day, so the SMTP refusal can say "log in over POP3 again". Bounded. */
  private readonly expired = new Map<string, PopGrant>();

  constructor(
    private windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  setWindow(windowMs: number): void {
    this.windowMs = windowMs;
  }

  /** Returns the device whose grant was replaced, if a different one held the address. */
  grant(address: string, device: string): { replaced?: string; expiresAt: number } {
    const key = canonicalAddress(address);
    const previous = this.lookupGrant(key);
    const expiresAt = this.now() + this.windowMs;
    this.grants.set(key, { address: key, device, expiresAt });
    this.expired.delete(key);
    return { replaced: previous && previous.device !== device ? previous.device : undefined, expiresAt };
  }

  /** Device name authorised for this address now, if any. */
  lookup(address: string): string | undefined {
    return this.lookupGrant(canonicalAddress(address))?.device;
  }

  /** The device whose grant for this address expired in the last day (and was not renewed). */
  expiredFor(address: string): string | undefined {
    const key = canonicalAddress(address);
    if (this.lookupGrant(key)) return undefined;
    const grant = this.expired.get(key);
    if (!grant) return undefined;
    if (this.now() - grant.expiresAt > EXPIRED_MEMORY_MS) {
      this.expired.delete(key);
      return undefined;
    }
    return grant.device;
  }

  list(): PopGrant[] {
    return [...this.grants.keys()].map((k) => this.lookupGrant(k)).filter((g): g is PopGrant => g !== undefined);
  }

  revokeDevice(device: string): void {
    for (const [key, grant] of this.grants) if (grant.device === device) this.grants.delete(key);
    for (const [key, grant] of this.expired) if (grant.device === device) this.expired.delete(key);
  }

  private lookupGrant(key: string): PopGrant | undefined {
    const grant = this.grants.get(key);
    if (!grant) return undefined;
    if (grant.expiresAt <= this.now()) {
      this.grants.delete(key);
      this.expired.delete(key);
      this.expired.set(key, grant);
      if (this.expired.size > MAX_EXPIRED) this.expired.delete(this.expired.keys().next().value as string);
      return undefined;
    }
    return grant;
  }
}
