import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CENSORED, censorSecrets, createLogger } from '../../../src/observability/logger.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger('debug', sink) };
}

describe('log redaction', () => {
  it('censors secret keys at the top, one level down and in headers.authorization, and leaves the caller’s object alone', () => {
    const object = {
      password: 'pw-top',
      device: 'warren',
      auth: { user: 'printer', pass: 'pw-nested' },
      upstream: { clientSecret: 'cs', refreshToken: 'rt', host: 'smtp.gmail.com' },
      req: { url: '/api', headers: { authorization: 'Bearer abc', host: 'x' } },
      list: [{ password: 'in-array-not-a-key-path' }],
    };
    const censored = censorSecrets(object);
    expect(censored).toEqual({
      password: CENSORED,
      device: 'warren',
      auth: { user: 'printer', pass: CENSORED },
      upstream: { clientSecret: CENSORED, refreshToken: CENSORED, host: 'smtp.gmail.com' },
      req: { url: '/api', headers: { authorization: CENSORED, host: 'x' } },
      list: [{ password: 'in-array-not-a-key-path' }],
    });
    expect(object.password).toBe('pw-top');
    expect(object.auth.pass).toBe('pw-nested');
  });

  it('returns an object with nothing to censor as it is (no copy per line)', () => {
    const object = { queueId: 'abc', size: 10, client: { address: '10.0.0.1' } };
    expect(censorSecrets(object)).toBe(object);
  });

  it('applies to log lines and to child-logger bindings', () => {
    const { lines, logger } = capture();
    logger.child({ part: 'smtp', token: 'child-token' }).info({ auth: { password: 'line-pw' }, accessToken: 'ya29.x' }, 'event');
    expect(lines).toHaveLength(1);
    const text = JSON.stringify(lines[0]);
    for (const secret of ['child-token', 'line-pw', 'ya29.x']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ part: 'smtp', token: CENSORED, auth: { password: CENSORED }, accessToken: CENSORED, msg: 'event' });
  });
});
