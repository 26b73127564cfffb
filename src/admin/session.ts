/**
 * Web console sessions: the admin types a token into the login form once; the server answers with a random
 * session id in an httpOnly, SameSite=Strict cookie (never the token itself). A session ends at logout,
 * after `admin.sessionIdleTimeout` without a request, and when the token that opened it is no longer
 * accepted (a rotated token logs its sessions out). Sessions live in memory: a restart logs everyone out.
 */
import { createHash, randomBytes } from 'node:crypto';

export const SESSION_COOKIE = 'scanrelay_session';
/** Header the console sends on every request; a cross-site form or image cannot set it (CSRF). */
export const CONSOLE_HEADER = 'x-scanrelay-console';

/** Enough for every admin's browsers; the least recently used goes first beyond it. */
const MAX_SESSIONS = 200;

interface Session {
  /** sha256 of the token that opened it (the token itself is not kept). */
  tokenDigest: string;
  createdAt: number;
  lastUsedAt: number;
}

export class ConsoleSessions {
  private readonly sessions = new Map<string, Session>();
  /** Long-lived requests (event streams) to end when their session ends. */
  private readonly enders = new Map<string, Set<() => void>>();

  constructor(
    private readonly idleTimeoutMs: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for a token the caller has already checked. */
  open(token: string): string {
    this.prune();
    while (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.end(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const at = this.now();
    this.sessions.set(digest(id), { tokenDigest: digest(token), createdAt: at, lastUsedAt: at });
    return id;
  }

  /**
   * True when `id` names a live session whose token is still accepted; touching it restarts the idle clock.
   * Sessions are keyed by the id's digest, so a timing difference in the Map lookup says nothing about ids.
   */
  touch(id: string, tokens: readonly string[]): boolean {
    const key = digest(id);
    const session = this.sessions.get(key);
    if (!session) return false;
    const at = this.now();
    if (at - session.lastUsedAt > this.idleTimeoutMs() || !stillAccepted(session, tokens)) {
      this.end(key);
      return false;
    }
    session.lastUsedAt = at;
    // Re-insert so Map order stays least-recently-used first.
    this.sessions.delete(key);
    this.sessions.set(key, session);
    return true;
  }

  close(id: string): boolean {
    const key = digest(id);
    const existed = this.sessions.has(key);
    this.end(key);
    return existed;
  }

  /** Calls `onEnd` when the session ends (logout, idle, token gone); the returned function cancels that. */
  onEnd(id: string, onEnd: () => void): () => void {
    const key = digest(id);
    let set = this.enders.get(key);
    if (!set) {
      set = new Set();
      this.enders.set(key, set);
    }
    set.add(onEnd);
    return () => {
      set.delete(onEnd);
      if (set.size === 0 && this.enders.get(key) === set) this.enders.delete(key);
    };
  }

  private end(key: string): void {
    this.sessions.delete(key);
    const enders = this.enders.get(key);
    this.enders.delete(key);
    for (const onEnd of enders ?? []) onEnd();
  }

  get size(): number {
    this.prune();
    return this.sessions.size;
  }

  private prune(): void {
    const at = this.now();
    for (const [key, session] of this.sessions) if (at - session.lastUsedAt > this.idleTimeoutMs()) this.end(key);
  }
}

function stillAccepted(session: Session, tokens: readonly string[]): boolean {
  let accepted = false;
  for (const token of tokens) accepted = digest(token) === session.tokenDigest || accepted;
  return accepted;
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
