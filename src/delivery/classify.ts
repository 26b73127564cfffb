/**
 * What to do after an upstream refused or failed: one ordered table from nodemailer's error anatomy
 * (code, responseCode, enhanced status code in the reply text, command, originalCode) to an action.
 * The first matching row wins. Rows are unit-tested one by one (test/unit/delivery/classify.test.ts).
 *
 *   retry           this message waits and is tried again with back-off (network, timeouts, 4xx)
 *   hold-upstream   the upstream's credentials are refused: its messages are held until the config is fixed
 *   pause-upstream  the upstream is paused for a while, its messages wait (daily quota, rate limits, TLS)
 *   fail-message    the upstream refused this message for good (size, content): the message fails
 *   fail-recipient  the upstream refused a recipient for good: that recipient fails, the others go on
 */
import type { UpstreamState } from './upstream-states.js';

export type DeliveryAction = 'retry' | 'hold-upstream' | 'pause-upstream' | 'fail-message' | 'fail-recipient';

export type FailureCategory =
  | 'network'
  | 'timeout'
  | 'temporary'
  | 'protocol'
  | 'auth'
  | 'oauth2-token'
  | 'tls'
  | 'quota'
  | 'rate-limit'
  | 'size'
  | 'recipient'
  | 'message'
  | 'sender'
  | 'unknown';

/** The fields of a nodemailer error this table looks at (plus tokenRejected from our OAuth2 provider). */
export interface UpstreamErrorLike {
  message: string;
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  originalCode?: string;
  /** Set by the OAuth2 token provider when the token endpoint refused the refresh token or client. */
  tokenRejected?: boolean;
}

export interface Classification {
  action: DeliveryAction;
  category: FailureCategory;
  /** What this says about the upstream (undefined: nothing). */
  upstreamState?: UpstreamState;
  /** pause-upstream only: short (minutes, doubling) or long (the daily sending window). */
  pause?: 'short' | 'long';
  /** Human reason: the upstream's reply, or the local error. Never contains secrets. */
  reason: string;
  /** Enhanced status code found in the reply (e.g. 5.4.5). */
  enhancedCode?: string;
}

interface Facts {
  code: string;
  responseCode: number;
  enhanced: string;
  command: string;
  originalCode: string;
  err: UpstreamErrorLike;
}

interface Row {
  /** Short description for tests and docs. */
  name: string;
  match: (f: Facts) => boolean;
  result: Omit<Classification, 'reason' | 'enhancedCode'>;
}

const NETWORK_CODES = new Set(['ECONNECTION', 'ESOCKET', 'EDNS', 'EPROXY', 'EABORT']);
/** Node/OpenSSL codes that mean "this TLS peer is not who it should be" (configuration, not weather). */
const TLS_ORIGINAL_CODES =
  /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_|HOSTNAME_MISMATCH|ERR_TLS_)/;

const is4xx = (f: Facts) => f.responseCode >= 400 && f.responseCode < 500;
const is5xx = (f: Facts) => f.responseCode >= 500 && f.responseCode < 600;
const atAuth = (f: Facts) => f.command.startsWith('AUTH') || f.code === 'EAUTH';

export const CLASSIFICATION_TABLE: readonly Row[] = [
  // OAuth2: the token endpoint answered "no" (revoked or expired refresh token, wrong client): needs the admin.
  {
    name: 'oauth2 token refused',
    match: (f) => f.originalCode === 'EOAUTH2' && f.err.tokenRejected === true,
    result: { action: 'hold-upstream', category: 'oauth2-token', upstreamState: 'auth-failed' },
  },
  // The token endpoint could not be reached or failed: weather, try again.
  {
    name: 'oauth2 token endpoint unavailable',
    match: (f) => f.code === 'EAUTH' && f.command === 'AUTH XOAUTH2' && !f.responseCode,
    result: { action: 'retry', category: 'oauth2-token', upstreamState: 'unreachable' },
  },
  // Gmail daily sending limit: 550/552 5.4.5 ("Daily user sending limit exceeded"), at MAIL, RCPT or DATA.
  {
    name: 'daily quota (5.4.5)',
    match: (f) => f.enhanced === '5.4.5',
    result: { action: 'pause-upstream', category: 'quota', upstreamState: 'quota-paused', pause: 'long' },
  },
  // Gmail "unusual rate" / "too many login attempts": 421 4.7.0, 454 4.7.0. Pause the account briefly.
  {
    name: 'rate limited (421/454 4.7.0)',
    match: (f) => (f.responseCode === 421 || f.responseCode === 454) && f.enhanced === '4.7.0',
    result: { action: 'pause-upstream', category: 'rate-limit', upstreamState: 'quota-paused', pause: 'short' },
  },
  // Encryption required/refused (538) or STARTTLS unavailable or failed: never fall back, pause and re-probe.
  {
    name: 'STARTTLS failed or missing (ETLS)',
    match: (f) => f.code === 'ETLS' || f.code === 'EREQUIRETLS' || f.responseCode === 538,
    result: { action: 'pause-upstream', category: 'tls', upstreamState: 'tls-failed', pause: 'short' },
  },
  {
    name: 'certificate or TLS handshake rejected',
    match: (f) => TLS_ORIGINAL_CODES.test(f.originalCode),
    result: { action: 'pause-upstream', category: 'tls', upstreamState: 'tls-failed', pause: 'short' },
  },
  // Temporary authentication failure (454 4.7.0 handled above): retry.
  { name: 'temporary auth failure (4xx at AUTH)', match: (f) => atAuth(f) && is4xx(f), result: { action: 'retry', category: 'auth', upstreamState: 'up' } },
  // Credentials refused: 535 5.7.8 (bad app password), 534 5.7.9 (app password required), 530 (auth required),
  // a missing AUTH extension (forceAuth), missing credentials.
  {
    name: 'credentials refused (EAUTH / 530 / 534 / 535)',
    match: (f) => f.code === 'EAUTH' || f.code === 'ENOAUTH' || f.responseCode === 530 || f.responseCode === 534 || f.responseCode === 535,
    result: { action: 'hold-upstream', category: 'auth', upstreamState: 'auth-failed' },
  },
  // smtp-relay.gmail.com refusing the account or its address ("550 5.7.0 Mail relay denied", "550 5.7.1
  // Invalid credentials for relay"): a configuration problem of the upstream, not of each scan. Hold them.
  {
    name: 'relay denied for the account (5.7.0/5.7.1 at MAIL/RCPT)',
    match: (f) =>
      is5xx(f) &&
      (f.command === 'MAIL FROM' || f.command === 'RCPT TO') &&
      (f.enhanced === '5.7.0' || f.enhanced === '5.7.1') &&
      /relay denied|credentials for relay|IP not registered/i.test(f.err.response ?? ''),
    result: { action: 'hold-upstream', category: 'auth', upstreamState: 'auth-failed' },
  },
  // Network trouble: refused, reset, DNS, timeouts.
  { name: 'timeout', match: (f) => f.code === 'ETIMEDOUT', result: { action: 'retry', category: 'timeout', upstreamState: 'unreachable' } },
  {
    name: 'network error',
    match: (f) => NETWORK_CODES.has(f.code) && !f.responseCode,
    result: { action: 'retry', category: 'network', upstreamState: 'unreachable' },
  },
  // Greeting/EHLO refusals (421 busy, 554 no service): the server, not the message.
  {
    name: 'refused at connect or EHLO',
    match: (f) => (f.command === 'CONN' || f.command === 'EHLO' || f.command === 'HELO') && f.responseCode > 0,
    result: { action: 'retry', category: 'protocol', upstreamState: 'unreachable' },
  },
  // Too big: nodemailer's own SIZE pre-check (EMESSAGE without a reply), 552 5.3.4, 552 at MAIL FROM (SIZE=).
  {
    name: 'too large (local SIZE check)',
    match: (f) => f.code === 'EMESSAGE' && !f.responseCode,
    result: { action: 'fail-message', category: 'size', upstreamState: 'up' },
  },
  {
    name: 'too large (5.3.4 / 552 at MAIL)',
    match: (f) => f.enhanced === '5.3.4' || (f.responseCode === 552 && f.command === 'MAIL FROM'),
    result: { action: 'fail-message', category: 'size', upstreamState: 'up' },
  },
  // Recipient refused for good (550 5.1.1 no such user, 553 bad address, 552 mailbox full, ...).
  {
    name: 'recipient refused (5xx at RCPT)',
    match: (f) => f.command === 'RCPT TO' && is5xx(f) && f.responseCode !== 503,
    result: { action: 'fail-recipient', category: 'recipient', upstreamState: 'up' },
  },
  // Bad sequence (503) is a session problem, not a verdict: retry on a fresh connection.
  { name: 'bad sequence (503)', match: (f) => f.responseCode === 503, result: { action: 'retry', category: 'protocol', upstreamState: 'up' } },
  // The sender (the account itself) refused: permanent for this message.
  {
    name: 'sender refused (5xx at MAIL FROM)',
    match: (f) => f.command === 'MAIL FROM' && is5xx(f),
    result: { action: 'fail-message', category: 'sender', upstreamState: 'up' },
  },
  // Content refused at DATA or any other 5xx: the message fails with the reply recorded.
  { name: 'message refused (5xx)', match: (f) => is5xx(f), result: { action: 'fail-message', category: 'message', upstreamState: 'up' } },
  // Any 4xx (421 closing, 450, 451, 452): try again later.
  { name: 'temporary refusal (4xx)', match: (f) => is4xx(f), result: { action: 'retry', category: 'temporary', upstreamState: 'up' } },
];

const FALLBACK: Row['result'] = { action: 'retry', category: 'unknown' };

export function classifyUpstreamError(err: UpstreamErrorLike): Classification {
  const facts = factsOf(err);
  const row = CLASSIFICATION_TABLE.find((r) => r.match(facts));
  return { ...(row?.result ?? FALLBACK), reason: describeUpstreamError(err), enhancedCode: facts.enhanced || undefined };
}

/** Name of the table row that matched (for logs and tests). */
export function classificationRule(err: UpstreamErrorLike): string {
  const facts = factsOf(err);
  return CLASSIFICATION_TABLE.find((r) => r.match(facts))?.name ?? 'fallback';
}

function factsOf(err: UpstreamErrorLike): Facts {
  return {
    code: err.code ?? '',
    responseCode: typeof err.responseCode === 'number' ? err.responseCode : 0,
    enhanced: enhancedStatusCode(err.response) ?? '',
    command: (err.command ?? '').toUpperCase(),
    originalCode: err.originalCode ?? '',
    err,
  };
}

/** "5.4.5" from "550-5.4.5 Daily user sending limit exceeded..." */
export function enhancedStatusCode(response: string | undefined): string | undefined {
  if (!response) return undefined;
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response.trim())?.[1];
}

/** The upstream's reply when there is one, else the local error message; TLS failures say what they mean. */
export function describeUpstreamError(err: UpstreamErrorLike): string {
  let text = err.response
    ? err.response
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter(Boolean)
        .join(' ')
    : err.message;
  if (err.code === 'ETLS') text = `STARTTLS failed, nothing is sent without TLS: ${text}`;
  else if (TLS_ORIGINAL_CODES.test(err.originalCode ?? '') && !/^TLS handshake failed/.test(text)) text = `TLS handshake failed: ${text}`;
  // Say where it stopped and what usually causes it: "Timeout" or "wrong version number" alone help nobody.
  if (err.code === 'ETIMEDOUT') {
    const stage = err.command && err.command !== 'CONN' ? `after ${err.command}` : 'while connecting';
    text = `${text}: no answer from the upstream ${stage} (upstreams[].connectionTimeout / socketTimeout)`;
  }
  // The hint comes first: an admin reads the start of the line, and OpenSSL's own words mean little to them.
  if (/wrong version number|WRONG_VERSION_NUMBER/i.test(`${text} ${err.originalCode ?? ''}`)) {
    const raw = text.replace(/^TLS handshake failed: /, '');
    text = `TLS handshake failed: this port expects the other security mode (465 = security: tls, 587 = security: starttls). Details: ${raw}`;
  }
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}
