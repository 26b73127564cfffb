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

export class PopGrants {
  private readonly grants = new Map<string, PopGrant>();

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
    return { replaced: previous && previous.device !== device ? previous.device : undefined, expiresAt };
  }

  /** Device name authorised for this address now, if any. */
  lookup(address: string): string | undefined {
    return this.lookupGrant(canonicalAddress(address))?.device;
  }

  list(): PopGrant[] {
    return [...this.grants.keys()].map((k) => this.lookupGrant(k)).filter((g): g is PopGrant => g !== undefined);
  }

  revokeDevice(device: string): void {
    for (const [key, grant] of this.grants) if (grant.device === device) this.grants.delete(key);
  }

  private lookupGrant(key: string): PopGrant | undefined {
    const grant = this.grants.get(key);
    if (!grant) return undefined;
    if (grant.expiresAt <= this.now()) {
      this.grants.delete(key);
      return undefined;
    }
    return grant;
  }
}
