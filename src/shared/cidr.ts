/** Source-address pinning: CIDR lists parsed once with ipaddr.js; IPv4-mapped IPv6 treated as IPv4. */
import ipaddr from 'ipaddr.js';

export type ParsedCidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Accepts "10.20.0.0/16", "10.20.5.17" (a single host) and IPv6 forms. Throws with a readable reason. */
export function parseCidr(text: string): ParsedCidr {
  const value = text.trim();
  // ipaddr.js also takes inet_aton forms ("10.20.517" = 10.20.2.5, "010.0.0.1" = octal 8.0.0.1): a typo
  // or zero padding would silently pin a device to another host. Only dotted-quad decimal IPv4 is allowed.
  const host = value.split('/')[0];
  if (!host.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(host)) {
    throw new Error(`"${value}" is not a valid ${value.includes('/') ? 'CIDR range' : 'IP address'} (write IPv4 as four decimal numbers, e.g. 10.20.5.17)`);
  }
  if (value.includes('/')) {
    try {
      return ipaddr.parseCIDR(value);
    } catch {
      throw new Error(`"${value}" is not a valid CIDR range`);
    }
  }
  if (!ipaddr.isValid(value)) throw new Error(`"${value}" is not a valid IP address`);
  const address = ipaddr.parse(value);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

/** Number of addresses a range covers, as log2 (so /16 v4 = 16). */
export function cidrHostBits(range: ParsedCidr): number {
  return (range[0].kind() === 'ipv4' ? 32 : 128) - range[1];
}

export function normalizeAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) return (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed;
}

export function addressInRanges(address: string, ranges: readonly ParsedCidr[]): boolean {
  const parsed = normalizeAddress(address);
  if (!parsed) return false;
  return ranges.some((range) => parsed.kind() === range[0].kind() && parsed.match(range));
}

/** Plain-text form of an address for logs and keys ("::ffff:10.0.0.1" -> "10.0.0.1"). */
export function canonicalAddress(address: string): string {
  return normalizeAddress(address)?.toString() ?? address;
}
