import { describe, expect, it } from 'vitest';
import {
  CLASSIFICATION_TABLE,
  classificationRule,
  classifyUpstreamError,
  describeUpstreamError,
  enhancedStatusCode,
  type UpstreamErrorLike,
} from '../../../src/delivery/classify.js';

/** [what, error as nodemailer shapes it, expected action, category, upstream state, pause]. */
const CASES: Array<[string, UpstreamErrorLike, string, string, string | undefined, ('short' | 'long')?]> = [
  [
    'Gmail bad app password 535 5.7.8',
    {
      message: 'Invalid login',
      code: 'EAUTH',
      responseCode: 535,
      command: 'AUTH PLAIN',
      response:
        '535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp',
    },
    'hold-upstream',
    'auth',
    'auth-failed',
  ],
  [
    'Gmail app password required 534 5.7.9',
    { message: 'Invalid login', code: 'EAUTH', responseCode: 534, command: 'AUTH PLAIN', response: '534-5.7.9 Application-specific password required.' },
    'hold-upstream',
    'auth',
    'auth-failed',
  ],
  [
    '530 authentication required at MAIL FROM',
    { message: 'Mail command failed', code: 'EENVELOPE', responseCode: 530, command: 'MAIL FROM', response: '530 5.7.0 Authentication Required' },
    'hold-upstream',
    'auth',
    'auth-failed',
  ],
  ['missing credentials (no reply)', { message: 'Missing credentials for "PLAIN"', code: 'EAUTH', command: 'API' }, 'hold-upstream', 'auth', 'auth-failed'],
  [
    'OAuth2 refresh token revoked (invalid_grant)',
    {
      message: 'OAuth2 token endpoint refused the refresh token or client: HTTP 400 invalid_grant',
      code: 'EAUTH',
      command: 'AUTH XOAUTH2',
      originalCode: 'EOAUTH2',
      tokenRejected: true,
    },
    'hold-upstream',
    'oauth2-token',
    'auth-failed',
  ],
  [
    'OAuth2 token endpoint unreachable',
    { message: 'OAuth2 token endpoint unreachable: fetch failed', code: 'EAUTH', command: 'AUTH XOAUTH2', originalCode: 'EOAUTH2', tokenRejected: false },
    'retry',
    'oauth2-token',
    'unreachable',
  ],
  [
    'Gmail daily limit 550 5.4.5 at MAIL FROM',
    {
      message: 'Mail command failed',
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'MAIL FROM',
      response: '550-5.4.5 Daily user sending limit exceeded. For more information on Gmail',
    },
    'pause-upstream',
    'quota',
    'quota-paused',
    'long',
  ],
  [
    'Gmail daily limit 552 5.4.5 at DATA',
    { message: 'Message failed', code: 'EMESSAGE', responseCode: 552, command: 'DATA', response: '552 5.4.5 Daily sending quota exceeded' },
    'pause-upstream',
    'quota',
    'quota-paused',
    'long',
  ],
  [
    'Gmail unusual rate 421 4.7.0 at greeting',
    { message: 'Invalid greeting', code: 'EPROTOCOL', responseCode: 421, command: 'CONN', response: '421 4.7.0 Try again later, closing connection. (EHLO)' },
    'pause-upstream',
    'rate-limit',
    'quota-paused',
    'short',
  ],
  [
    'Gmail too many logins 454 4.7.0',
    {
      message: 'Invalid login',
      code: 'EAUTH',
      responseCode: 454,
      command: 'AUTH PLAIN',
      response: '454 4.7.0 Too many login attempts, please try again later.',
    },
    'pause-upstream',
    'rate-limit',
    'quota-paused',
    'short',
  ],
  [
    'STARTTLS not offered (ETLS)',
    {
      message: 'Error upgrading connection with STARTTLS',
      code: 'ETLS',
      responseCode: 500,
      command: 'STARTTLS',
      response: '500 5.5.2 Error: command not recognized',
    },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    '538 encryption required',
    { message: 'Invalid login', code: 'EAUTH', responseCode: 538, command: 'AUTH PLAIN', response: '538 5.7.11 Encryption required' },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    'untrusted certificate',
    { message: 'unable to verify the first certificate', code: 'ESOCKET', command: 'CONN', originalCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    'expired certificate',
    { message: 'certificate has expired', code: 'ESOCKET', command: 'CONN', originalCode: 'CERT_HAS_EXPIRED' },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    'certificate for another name',
    { message: "Hostname/IP does not match certificate's altnames", code: 'ESOCKET', command: 'CONN', originalCode: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    'implicit TLS to a plaintext port',
    { message: 'wrong version number', code: 'ESOCKET', command: 'CONN', originalCode: 'ERR_SSL_WRONG_VERSION_NUMBER' },
    'pause-upstream',
    'tls',
    'tls-failed',
    'short',
  ],
  [
    'temporary auth failure 454 4.3.0',
    { message: 'Invalid login', code: 'EAUTH', responseCode: 454, command: 'AUTH PLAIN', response: '454 4.3.0 Temporary authentication failure' },
    'retry',
    'auth',
    'up',
  ],
  ['connection timeout', { message: 'Connection timeout', code: 'ETIMEDOUT', command: 'CONN' }, 'retry', 'timeout', 'unreachable'],
  [
    'connection refused',
    { message: 'connect ECONNREFUSED 127.0.0.1:465', code: 'ESOCKET', command: 'CONN', originalCode: 'ECONNREFUSED' },
    'retry',
    'network',
    'unreachable',
  ],
  ['connection reset', { message: 'read ECONNRESET', code: 'ESOCKET', command: 'DATA', originalCode: 'ECONNRESET' }, 'retry', 'network', 'unreachable'],
  ['connection closed', { message: 'Connection closed unexpectedly', code: 'ECONNECTION', command: 'CONN' }, 'retry', 'network', 'unreachable'],
  [
    'DNS failure',
    { message: 'getaddrinfo ENOTFOUND smtp.gmail.com', code: 'EDNS', command: 'CONN', originalCode: 'ENOTFOUND' },
    'retry',
    'network',
    'unreachable',
  ],
  [
    '421 busy at greeting',
    { message: 'Invalid greeting', code: 'EPROTOCOL', responseCode: 421, command: 'CONN', response: '421 Service not available, closing channel' },
    'retry',
    'protocol',
    'unreachable',
  ],
  [
    '421 at EHLO',
    {
      message: 'Server terminates connection',
      code: 'ECONNECTION',
      responseCode: 421,
      command: 'EHLO',
      response: '421 4.3.2 System not accepting network messages',
    },
    'retry',
    'protocol',
    'unreachable',
  ],
  [
    '554 no service at greeting',
    { message: 'Invalid greeting', code: 'EPROTOCOL', responseCode: 554, command: 'CONN', response: '554 5.7.0 No SMTP service here' },
    'retry',
    'protocol',
    'unreachable',
  ],
  [
    'too large: local SIZE pre-check',
    { message: 'Message size larger than allowed 35882577', code: 'EMESSAGE', command: 'MAIL FROM' },
    'fail-message',
    'size',
    'up',
  ],
  [
    'too large: Gmail 552 5.3.4 at DATA',
    {
      message: 'Message failed',
      code: 'EMESSAGE',
      responseCode: 552,
      command: 'DATA',
      response: "552-5.3.4 Your message exceeded Google's message size limits.",
    },
    'fail-message',
    'size',
    'up',
  ],
  [
    'too large: 552 at MAIL FROM SIZE=',
    {
      message: 'Mail command failed',
      code: 'EENVELOPE',
      responseCode: 552,
      command: 'MAIL FROM',
      response: '552 Message size exceeds fixed maximum message size',
    },
    'fail-message',
    'size',
    'up',
  ],
  [
    'smtp-relay denies the account 550 5.7.0 at MAIL FROM',
    {
      message: 'Mail command failed',
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'MAIL FROM',
      response: '550 5.7.0 Mail relay denied [192.0.2.1]. Invalid credentials for relay for one of the domains in: example.org',
    },
    'hold-upstream',
    'auth',
    'auth-failed',
  ],
  [
    'smtp-relay invalid credentials 550 5.7.1 at RCPT',
    {
      message: 'Recipient command failed',
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'RCPT TO',
      response: '550 5.7.1 Invalid credentials for relay [192.0.2.1].',
    },
    'hold-upstream',
    'auth',
    'auth-failed',
  ],
  [
    'no such user 550 5.1.1',
    {
      message: 'Recipient command failed',
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'RCPT TO',
      response: '550-5.1.1 The email account that you tried to reach does not exist.',
    },
    'fail-recipient',
    'recipient',
    'up',
  ],
  [
    'bad address 553 5.1.3',
    {
      message: 'Recipient command failed',
      code: 'EENVELOPE',
      responseCode: 553,
      command: 'RCPT TO',
      response: '553 5.1.3 The recipient address is not a valid RFC-5321 address.',
    },
    'fail-recipient',
    'recipient',
    'up',
  ],
  [
    'recipient busy 450 4.2.1',
    {
      message: 'Recipient command failed',
      code: 'EENVELOPE',
      responseCode: 450,
      command: 'RCPT TO',
      response: '450 4.2.1 The user you are trying to contact is receiving mail too quickly.',
    },
    'retry',
    'temporary',
    'up',
  ],
  [
    'too many recipients 452 4.5.3',
    {
      message: 'Recipient command failed',
      code: 'EENVELOPE',
      responseCode: 452,
      command: 'RCPT TO',
      response: '452 4.5.3 Your message has too many recipients.',
    },
    'retry',
    'temporary',
    'up',
  ],
  [
    '451 at DATA',
    { message: 'Message failed', code: 'EMESSAGE', responseCode: 451, command: 'DATA', response: '451 4.3.0 Mail server temporarily rejected message.' },
    'retry',
    'temporary',
    'up',
  ],
  [
    '421 4.3.0 at DATA (not a rate limit)',
    { message: 'Message failed', code: 'EMESSAGE', responseCode: 421, command: 'DATA', response: '421 4.3.0 Temporary System Problem. Try again later.' },
    'retry',
    'temporary',
    'up',
  ],
  [
    'content refused 550 5.7.1',
    {
      message: 'Message failed',
      code: 'EMESSAGE',
      responseCode: 550,
      command: 'DATA',
      response: '550-5.7.1 Our system has detected that this message is likely unsolicited mail.',
    },
    'fail-message',
    'message',
    'up',
  ],
  [
    'malformed 554 5.6.0',
    { message: 'Message failed', code: 'EMESSAGE', responseCode: 554, command: 'DATA', response: '554 5.6.0 Mail message is malformed. Not accepted.' },
    'fail-message',
    'message',
    'up',
  ],
  [
    'sender refused 553 5.7.1',
    {
      message: 'Mail command failed',
      code: 'EENVELOPE',
      responseCode: 553,
      command: 'MAIL FROM',
      response: '553 5.7.1 Sender address rejected: not owned by user',
    },
    'fail-message',
    'sender',
    'up',
  ],
  [
    'bad sequence 503',
    { message: 'Recipient command failed', code: 'EENVELOPE', responseCode: 503, command: 'RCPT TO', response: '503 5.5.1 Error: need MAIL command' },
    'retry',
    'protocol',
    'up',
  ],
  ['anything unknown', { message: 'Connection pool was closed' }, 'retry', 'unknown', undefined],
];

describe('classifyUpstreamError', () => {
  for (const [what, err, action, category, state, pause] of CASES) {
    it(`${what} -> ${action} (${category})`, () => {
      const result = classifyUpstreamError(err);
      expect(result.action).toBe(action);
      expect(result.category).toBe(category);
      expect(result.upstreamState).toBe(state);
      expect(result.pause).toBe(pause);
    });
  }

  it('every row of the table is exercised by a case above', () => {
    const used = new Set(CASES.map(([, err]) => classificationRule(err)));
    expect(CLASSIFICATION_TABLE.map((row) => row.name).filter((name) => !used.has(name))).toEqual([]);
  });
});

describe('enhancedStatusCode and describeUpstreamError', () => {
  it('reads the enhanced code after the reply code, on single and multi-line replies', () => {
    expect(enhancedStatusCode('550-5.4.5 Daily user sending limit exceeded.\n550 5.4.5 more')).toBe('5.4.5');
    expect(enhancedStatusCode('421 4.7.0 Try again later')).toBe('4.7.0');
    expect(enhancedStatusCode('250 OK id=1')).toBeUndefined();
    expect(enhancedStatusCode(undefined)).toBeUndefined();
  });

  it('joins multi-line replies, prefers the reply over the local text, and says what a TLS failure means', () => {
    expect(describeUpstreamError({ message: 'Invalid login', response: '535-5.7.8 Username and Password not accepted.\n535 5.7.8 https://x - gsmtp' })).toBe(
      '535-5.7.8 Username and Password not accepted. 535 5.7.8 https://x - gsmtp',
    );
    expect(describeUpstreamError({ message: 'connect ECONNREFUSED 127.0.0.1:465', code: 'ESOCKET' })).toBe('connect ECONNREFUSED 127.0.0.1:465');
    expect(describeUpstreamError({ message: 'x', code: 'ETLS', response: '500 5.5.2 Error: command not recognized' })).toBe(
      'STARTTLS failed, nothing is sent without TLS: 500 5.5.2 Error: command not recognized',
    );
    expect(describeUpstreamError({ message: 'certificate has expired', code: 'ESOCKET', originalCode: 'CERT_HAS_EXPIRED' })).toBe(
      'TLS handshake failed: certificate has expired',
    );
    expect(describeUpstreamError({ message: 'x'.repeat(800) })).toHaveLength(500);
  });
});
