import { describe, expect, it } from 'vitest';
import { ConsoleSessions } from '../../../src/admin/session.js';

const TOKENS = ['token-one-0123456789', 'token-two-0123456789'];

describe('console sessions', () => {
  it('keeps a used session alive and ends it after the idle timeout', () => {
    let now = 0;
    const sessions = new ConsoleSessions(
      () => 1000,
      () => now,
    );
    const id = sessions.open(TOKENS[0] as string);
    now = 900;
    expect(sessions.touch(id, TOKENS)).toBe(true);
    now = 1800;
    expect(sessions.touch(id, TOKENS)).toBe(true);
    now = 2801;
    expect(sessions.touch(id, TOKENS)).toBe(false);
    expect(sessions.size).toBe(0);
  });

  it('ends at logout, and when its token is no longer accepted', () => {
    const sessions = new ConsoleSessions(() => 60_000);
    const a = sessions.open(TOKENS[0] as string);
    const b = sessions.open(TOKENS[1] as string);
    expect(sessions.close(a)).toBe(true);
    expect(sessions.touch(a, TOKENS)).toBe(false);
    expect(sessions.touch(b, [TOKENS[0] as string])).toBe(false);
    expect(sessions.touch('made-up-id', TOKENS)).toBe(false);
  });

  it('gives unguessable ids and keeps at most 200 sessions, least recently used out first', () => {
    const sessions = new ConsoleSessions(() => 60_000);
    const first = sessions.open(TOKENS[0] as string);
    const ids = new Set([first]);
    for (let i = 0; i < 250; i++) {
      ids.add(sessions.open(TOKENS[0] as string));
      sessions.touch(first, TOKENS);
    }
    expect(ids.size).toBe(251);
    expect(sessions.size).toBe(200);
    expect(sessions.touch(first, TOKENS)).toBe(true);
    expect([...ids].every((id) => /^[\w-]{43}$/.test(id))).toBe(true);
  });
});
