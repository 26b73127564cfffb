import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/index.js';
import { Upstream } from '../../../src/delivery/upstreams.js';
import { SmtpThread } from '../../../src/delivery/smtp-thread.js';
import { GatewayEventBus } from '../../../src/shared/events.js';

const config = parseConfig(
  `
upstreams:
  - { name: gmail, host: 127.0.0.1, port: 465, security: tls, user: a@example.org, password: app-password-123 }
delivery: { retryBase: 1m, retryMax: 1h }
`,
  'test.yaml',
  {},
);

function upstream(now: () => number) {
  return new Upstream(config.upstreams[0], {
    logger: pino({ level: 'silent' }),
    events: new GatewayEventBus(),
    hostname: 'test',
    now,
    smtp: new SmtpThread(pino({ level: 'silent' })),
  });
}

describe('upstream pauses', () => {
  it('counts one refusal once, however many connections report it at the same time', () => {
    const now = 1_000_000;
    const u = upstream(() => now);
    const first = u.pause('long', config.delivery, now);
    const second = u.pause('long', config.delivery, now);
    const third = u.pause('long', config.delivery, now + 5);
    expect(first).toBe(now + 3_600_000); // retryMax, not retryMax * 2^2
    expect(second).toBe(first);
    expect(third).toBe(first);
  });

  it('a successful login (admin verify) does not lift a quota pause; a delivered message does', () => {
    const now = 1_000_000;
    const u = upstream(() => now);
    const until = u.pause('long', config.delivery, now);
    u.noteSuccess(now + 10, { loginOnly: true });
    expect(u.blockedUntil(now + 10)).toBe(until);
    u.noteSuccess(now + 20);
    expect(u.blockedUntil(now + 20)).toBeLessThanOrEqual(now + 20);
    expect(u.state).toBe('up');
  });
});
