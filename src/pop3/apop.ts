/**
 * APOP (RFC 1939 §7): the greeting carries a unique msg-id style timestamp, and the client proves it knows
 * the shared secret with lowercase hex MD5(timestamp + secret). The server needs the plaintext secret,
 * as for CRAM-MD5. MD5 here is what the RFC and the printers speak: acceptable on a LAN only.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

let greetingCounter = 0;

/** `<pid.counter.clock.random@host>`: unique per greeting, also across restarts (random part). */
export function apopTimestamp(hostname: string, now = Date.now()): string {
  greetingCounter = (greetingCounter + 1) % 1_000_000;
  // Only msg-id-safe characters: a space or '>' in the name would cut the timestamp short for the client.
  const host = hostname.replace(/[^A-Za-z0-9.-]/g, '-') || 'scanrelay';
  return `<${process.pid}.${greetingCounter}.${now}.${randomBytes(4).toString('hex')}@${host}>`;
}

export function apopDigest(timestamp: string, secret: string): string {
  return createHash('md5')
    .update(timestamp + secret, 'utf8')
    .digest('hex');
}

/** Constant-time check of a client's digest; upper-case hex is tolerated. */
export function apopDigestMatches(timestamp: string, secret: string, digest: string): boolean {
  if (!/^[0-9a-fA-F]{32}$/.test(digest)) return false;
  return timingSafeEqual(Buffer.from(apopDigest(timestamp, secret), 'latin1'), Buffer.from(digest.toLowerCase(), 'latin1'));
}
