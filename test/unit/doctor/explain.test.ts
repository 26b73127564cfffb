import { describe, expect, it } from 'vitest';
import { explainStep, maskSecrets, type DeviceFacts } from '../../../src/doctor/index.js';
import type { LoginReason, SessionStep } from '../../../src/shared/events.js';

const device: DeviceFacts = {
  name: 'warren-2f',
  username: 'warren-2f',
  auth: 'password',
  allowFrom: ['10.0.0.5/32'],
  allowRecipients: ['*@berkeley.edu'],
  maxMessageSize: 20 << 20,
  enabled: true,
};
const failed = (name: SessionStep['step'], reason?: string): SessionStep => ({
  sessionId: 's',
  protocol: 'smtp',
  remoteAddress: '10.0.0.9',
  step: name,
  ok: false,
  detail: '',
  reason,
  at: 0,
});

describe('explanation catalogue', () => {
  it('says nothing about a step that went fine', () => {
    expect(explainStep({ ...failed('auth', 'ok'), ok: true }, device)).toBeUndefined();
  });

  it.each<[LoginReason, RegExp]>([
    ['unknown-user', /Login Name .* exactly "warren-2f"/],
    ['bad-password', /not the Google app password/],
    ['wrong-address', /add 10\.0\.0\.9 to the device's allowFrom \(now 10\.0\.0\.5\/32\)/],
    ['disabled', /enable warren-2f/],
    ['locked-out', /clear the lock-out/],
    ['method-unavailable', /SMTP AUTH \(Auto\)/],
    ['pop-grant-expired', /POP3 Server Check Interval/],
    ['malformed', /SMTP AUTH \(Auto\)/],
  ])('explains a failed login for reason %s', (reason, fix) => {
    expect(explainStep(failed('auth', reason), device)?.fix).toMatch(fix);
  });

  it('explains STARTTLS, refusals by code and timeouts with the fix', () => {
    expect(explainStep(failed('starttls'), device)?.fix).toMatch(/set SSL\/TLS to Off/);
    expect(explainStep(failed('rcpt', '550'), device)?.fix).toMatch(/\*@berkeley\.edu/);
    expect(explainStep(failed('refused', '552 5.3.4 too big'), device)?.problem).toMatch(/20 MB/);
    expect(explainStep(failed('mail', '530'), device)?.fix).toMatch(/SMTP AUTH \(Auto\)/);
    expect(explainStep(failed('timeout'), device)?.problem).toMatch(/stopped talking/);
    expect(explainStep(failed('refused', '451'), device)?.fix).toMatch(/disk space/);
    expect(explainStep(failed('quit', '999'), device)?.problem).toMatch(/QUIT step failed/);
    expect(explainStep(failed('timeout', 'pre-auth-timeout'), device)?.fix).toMatch(/SMTP AUTH \(Auto\)/);
    expect(explainStep(failed('refused', 'per-address'), device)?.problem).toMatch(/too many connections at once from 10\.0\.0\.9/);
    expect(explainStep(failed('starttls', 'not-offered'), device)?.fix).toMatch(/SSL\/TLS to Off/);
  });

  it('masks AUTH initial responses and password fields', () => {
    expect(maskSecrets('AUTH PLAIN AGFkbWluAHNlY3JldA==')).toBe('AUTH PLAIN ••••');
    expect(maskSecrets('login as x password=hunter2')).toBe('login as x password=••••');
    expect(maskSecrets('PASS hunter2')).toBe('PASS ••••');
    expect(maskSecrets('EHLO printer.local')).toBe('EHLO printer.local');
    expect(maskSecrets('AUTH LOGIN as scanner-2f')).toBe('AUTH LOGIN as scanner-2f');
    expect(maskSecrets('APOP as warren-2f refused')).toBe('APOP as warren-2f refused');
    expect(maskSecrets('APOP warren-2f c4c9334bac560ecc979e58001b3e22fb')).toBe('APOP warren-2f ••••');
  });
});
