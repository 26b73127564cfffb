/**
 * Address patterns of a device (allowRecipients, allowSenders): "ops@example.org" (exact),
 * "*@berkeley.edu" (any mailbox of a domain), "*@*.berkeley.edu" (any subdomain). Matching is
 * case-insensitive on the whole address. Patterns that match everything ("*", "*@*") or every domain
 * under a public suffix ("*@*.com", "*@*.co.uk", "*@*.github.io": judged against the Public Suffix
 * List, private section included, through tldts) are refused: that would make the device an open relay.
 * Also here: addressTrick, the envelope address forms refused whatever the patterns say.
 */
import { createRequire } from 'node:module';

// tldts is one CommonJS file of 0.9 MB (the Public Suffix List inside). Imported as an ES module, Node first
// scans its source for export names, about 90 ms of every start; required, it is only evaluated.
const { getDomain, getPublicSuffix } = createRequire(import.meta.url)('tldts') as typeof import('tldts');

export interface AddressRule {
  readonly text: string;
  matches(address: string): boolean;
}

const LOCAL = /^[A-Za-z0-9!#$&'*+/=?^_`{|}~.-]+$/;
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$/;

export function parseAddressRule(text: string): AddressRule {
  const rule = text.trim().toLowerCase();
  const at = rule.lastIndexOf('@');
  if (at <= 0) throw new Error(`"${text}" must look like user@domain, *@domain or *@*.domain`);
  const local = rule.slice(0, at);
  const domain = rule.slice(at + 1);
  if (domain === '*' || domain === '') throw new Error(`"${text}" matches every domain: list the domains instead`);
  const anySubdomain = domain.startsWith('*.');
  const baseDomain = anySubdomain ? domain.slice(2) : domain;
  // Before the domain syntax, so "*@*.com" hears why ("com" alone is also not a valid mail domain).
  const judged = anySubdomain || baseDomain.includes('.');
  if (judged && /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/.test(baseDomain) && isPublicSuffix(baseDomain)) {
    throw new Error(
      anySubdomain
        ? `"${text}" covers every domain under the public suffix "${baseDomain}" (anyone can register one there): name your own domain, e.g. "*@*.example.${baseDomain}"`
        : `"${text}": "${baseDomain}" is a public suffix, not a mail domain`,
    );
  }
  if (!DOMAIN.test(baseDomain)) throw new Error(`"${text}" has an invalid domain`);
  if (local !== '*' && !LOCAL.test(local)) throw new Error(`"${text}" has an invalid mailbox part`);
  return {
    text: rule,
    matches(address: string): boolean {
      const candidate = address.toLowerCase();
      const split = candidate.lastIndexOf('@');
      if (split <= 0) return false;
      const candidateLocal = candidate.slice(0, split);
      const candidateDomain = candidate.slice(split + 1);
      const domainOk = anySubdomain ? candidateDomain.endsWith(`.${baseDomain}`) : candidateDomain === baseDomain;
      return domainOk && (local === '*' || candidateLocal === local);
    },
  };
}

/** True when anyone may register names under `domain` ("com", "co.uk", "github.io"): it has no registrable part. */
function isPublicSuffix(domain: string): boolean {
  const options = { allowPrivateDomains: true };
  return getDomain(domain, options) === null || getPublicSuffix(domain, options) === domain;
}

/**
 * Addresses we refuse whatever the rules say: source routes ("@a:b@c"), percent hacks ("a%b@c"),
 * bang paths ("a!b@c"), quoted locals, more than one "@", and IP-literal domains.
 */
export function addressTrick(address: string): string | undefined {
  if (address.length > 254) return 'address too long';
  if (address.startsWith('@') || address.includes(':')) return 'source routes are not accepted';
  if (address.includes('%')) return 'percent-hack addresses are not accepted';
  if (address.includes('!')) return 'bang-path addresses are not accepted';
  if (address.includes('"') || address.includes('\\')) return 'quoted mailbox names are not accepted';
  if ((address.match(/@/g) ?? []).length !== 1) return 'the address must contain exactly one @';
  const domain = address.slice(address.lastIndexOf('@') + 1);
  if (domain.startsWith('[')) return 'address literals are not accepted';
  if (!DOMAIN.test(domain)) return 'invalid domain';
  const local = address.slice(0, address.lastIndexOf('@'));
  if (local.length === 0 || local.length > 64) return 'invalid mailbox name';
  // RFC 5321 dot-atom only: commas, parentheses, spaces and the like are parsed differently downstream
  // (nodemailer reads envelope strings as address lists), so they could reach another mailbox.
  if (!DOT_ATOM.test(local)) return 'the mailbox name must be a plain dot-atom';
  return undefined;
}

const ATEXT = "[A-Za-z0-9!#$&'*+\\-/=?^_`{|}~\\u0080-\\uffff]";
const DOT_ATOM = new RegExp(`^${ATEXT}+(?:\\.${ATEXT}+)*$`);
