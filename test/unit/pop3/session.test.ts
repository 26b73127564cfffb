import { describe, expect, it } from 'vitest';
import { Pop3Session, pop3Replies, type Pop3Login, type Pop3LoginOutcome } from '../../../src/pop3/index.js';

/** A session whose login accepts USER wc6505 / PASS "pass word" and records every attempt. */
function session(outcome?: (login: Pop3Login) => Pop3LoginOutcome) {
  const attempts: Pop3Login[] = [];
  const s = new Pop3Session({
    async login(login) {
      attempts.push(login);
      if (outcome) return outcome(login);
      return login.method === 'USER' && login.username === 'wc6505' && login.password === 'pass word'
        ? { ok: true, device: 'printer' }
        : { ok: false, reply: pop3Replies.authFailed };
    },
  });
  return { s, attempts };
}

describe('POP3 session state machine', () => {
  it('passes the PASS argument verbatim, spaces included (RFC 1939)', async () => {
    const { s, attempts } = session();
    expect((await s.handle('USER wc6505')).lines).toEqual(['+OK send PASS']);
    expect((await s.handle('PASS pass word')).lines).toEqual([pop3Replies.loggedIn]);
    expect(attempts).toEqual([{ method: 'USER', username: 'wc6505', password: 'pass word' }]);
    expect(s.state).toBe('transaction');
    expect(s.device).toBe('printer');
  });

  it('needs USER before PASS and forgets the USER after a failed PASS', async () => {
    const { s, attempts } = session();
    expect((await s.handle('PASS x')).lines).toEqual([pop3Replies.userFirst]);
    await s.handle('USER wc6505');
    expect((await s.handle('PASS wrong')).lines).toEqual([pop3Replies.authFailed]);
    expect((await s.handle('PASS pass word')).lines).toEqual([pop3Replies.userFirst]);
    expect(attempts).toHaveLength(1);
  });

  it('parses APOP name digest and rejects other shapes without a login attempt', async () => {
    const { s, attempts } = session(() => ({ ok: true, device: 'printer' }));
    expect((await s.handle('APOP wc6505')).lines[0]).toMatch(/^-ERR syntax/);
    expect((await s.handle('APOP')).lines[0]).toMatch(/^-ERR syntax/);
    expect(attempts).toHaveLength(0);
    expect((await s.handle('apop wc6505 c4c9334bac560ecc979e58001b3e22fb')).lines).toEqual([pop3Replies.loggedIn]);
    expect(attempts).toEqual([{ method: 'APOP', username: 'wc6505', digest: 'c4c9334bac560ecc979e58001b3e22fb' }]);
  });

  it('closes after three failed logins with a single reply line', async () => {
    const { s } = session();
    for (let i = 0; i < 2; i++) {
      await s.handle('USER wc6505');
      expect(await s.handle('PASS nope')).toEqual({ lines: [pop3Replies.authFailed], close: false });
    }
    await s.handle('USER wc6505');
    expect(await s.handle('PASS nope')).toEqual({ lines: [pop3Replies.tooManyFailures], close: true });
    expect(s.state).toBe('closed');
    expect(await s.handle('NOOP')).toEqual({ lines: [], close: true });
  });

  it('closes at once when the login hook says so (lock-out)', async () => {
    const { s } = session(() => ({ ok: false, reply: pop3Replies.locked, close: true }));
    await s.handle('USER wc6505');
    expect(await s.handle('PASS x')).toEqual({ lines: [pop3Replies.locked], close: true });
  });

  it('answers transaction commands only after login, for an empty maildrop', async () => {
    const { s } = session();
    for (const command of ['STAT', 'LIST', 'UIDL', 'RETR 1', 'DELE 1', 'TOP 1 1', 'NOOP', 'RSET']) {
      expect((await s.handle(command)).lines).toEqual([pop3Replies.notLoggedIn]);
    }
    await s.handle('USER wc6505');
    await s.handle('PASS pass word');
    expect((await s.handle('stat')).lines).toEqual(['+OK 0 0']);
    expect((await s.handle('LIST')).lines).toEqual(['+OK 0 messages (0 octets)', '.']);
    expect((await s.handle('LIST 1')).lines).toEqual([pop3Replies.noSuchMessage]);
    expect((await s.handle('UIDL')).lines).toEqual(['+OK unique-id listing follows', '.']);
    expect((await s.handle('RETR 1')).lines).toEqual([pop3Replies.noSuchMessage]);
    expect((await s.handle('USER other')).lines).toEqual([pop3Replies.alreadyLoggedIn]);
    expect((await s.handle('APOP a b')).lines).toEqual([pop3Replies.alreadyLoggedIn]);
    expect(await s.handle('QUIT')).toEqual({ lines: [pop3Replies.bye], close: true });
  });

  it('answers CAPA in both states and refuses STLS and AUTH', async () => {
    const { s } = session();
    expect((await s.handle('CAPA')).lines).toEqual(['+OK capability list follows', 'USER', 'UIDL', 'TOP', '.']);
    expect((await s.handle('STLS')).lines).toEqual([pop3Replies.noStls]);
    expect((await s.handle('AUTH')).lines).toEqual([pop3Replies.noAuth]);
    await s.handle('USER wc6505');
    await s.handle('PASS pass word');
    expect((await s.handle('CAPA')).lines.at(-1)).toBe('.');
  });
});
