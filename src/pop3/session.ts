/**
 * One POP3 conversation as a state machine (RFC 1939, the minimal set plus CAPA from RFC 2449): lines in,
 * reply lines out. The maildrop is always empty: scanrelay speaks POP3 only so that a printer's
 * "POP before SMTP" login succeeds. Credentials are checked by the `login` hook (server.ts), which also
 * throttles and records (asynchronously); this file knows only the protocol.
 */

export type Pop3Login = { method: 'USER'; username: string; password: string } | { method: 'APOP'; username: string; digest: string };

export type Pop3LoginOutcome = { ok: true; device: string } | { ok: false; reply: string; close?: boolean };

export type Pop3Reply = Pop3Step | Promise<Pop3Step>;

export interface Pop3Step {
  /** Reply lines without line ends; a multi-line reply ends with ".". */
  lines: string[];
  close: boolean;
}

export type Pop3State = 'authorization' | 'transaction' | 'closed';

export const pop3Replies = {
  greeting: (timestamp: string) => `+OK scanrelay POP3 ready ${timestamp}`,
  userAccepted: '+OK send PASS',
  loggedIn: '+OK maildrop has 0 messages (0 octets)',
  authFailed: '-ERR authentication failed',
  /** Only after the password was verified correct. */
  disabled: '-ERR the password is right, but this device is disabled on the gateway: enable it in the admin console',
  /** Only after the password was verified correct. */
  wrongAddress: "-ERR the password is right, but this device may not log in from this address: add it to the device's allowFrom",
  locked: '-ERR too many failed logins, try again later',
  sessionTimeout: '-ERR session time limit reached, closing',
  tooManyFromAddress: '-ERR too many connections from this address, try again later',
  tooManyFailures: '-ERR authentication failed, too many failures: closing',
  apopUnavailable: '-ERR APOP is not available for this login, use USER and PASS',
  userFirst: '-ERR send USER first',
  alreadyLoggedIn: '-ERR already logged in',
  notLoggedIn: '-ERR log in first (USER and PASS, or APOP)',
  noSuchMessage: '-ERR no such message, maildrop is empty',
  unknownCommand: '-ERR unknown command',
  tooManyUnknown: '-ERR too many unknown commands, closing',
  noStls: '-ERR STLS not supported',
  noAuth: '-ERR AUTH not supported, use USER and PASS, or APOP',
  lineTooLong: '-ERR line too long, closing',
  idleTimeout: '-ERR idle timeout, closing',
  tooManyClients: '-ERR too many connections, try again later',
  shuttingDown: '-ERR scanrelay POP3 shutting down',
  bye: '+OK scanrelay POP3 signing off',
} as const;

const CAPABILITIES = ['USER', 'UIDL', 'TOP'];
const TRANSACTION_COMMANDS = new Set(['STAT', 'LIST', 'UIDL', 'RETR', 'DELE', 'TOP', 'NOOP', 'RSET']);
const MAX_UNKNOWN_COMMANDS = 10;

export interface Pop3SessionOptions {
  login(attempt: Pop3Login): Promise<Pop3LoginOutcome>;
  /** Failed logins in one connection before it is closed. */
  maxFailures?: number;
}

export class Pop3Session {
  state: Pop3State = 'authorization';
  /** Device name once logged in. */
  device?: string;
  private pendingUser?: string;
  private failures = 0;
  private unknown = 0;
  private readonly maxFailures: number;

  constructor(private readonly options: Pop3SessionOptions) {
    this.maxFailures = options.maxFailures ?? 3;
  }

  /** Handles one command line (line end already removed); a login answers asynchronously. */
  handle(line: string): Pop3Reply {
    if (this.state === 'closed') return { lines: [], close: true };
    const space = line.indexOf(' ');
    const keyword = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    // PASS keeps its argument verbatim (RFC 1939: it may contain spaces); the others are trimmed.
    const rawArgument = space === -1 ? '' : line.slice(space + 1);
    const argument = rawArgument.trim();

    switch (keyword) {
      case 'QUIT':
        return this.closeWith(pop3Replies.bye);
      case 'CAPA':
        return this.reply('+OK capability list follows', ...CAPABILITIES, '.');
      case 'STLS':
        return this.reply(pop3Replies.noStls);
      case 'AUTH':
        return this.reply(pop3Replies.noAuth);
      case 'USER':
        if (this.state !== 'authorization') return this.reply(pop3Replies.alreadyLoggedIn);
        if (!argument) return this.reply('-ERR syntax: USER name');
        this.pendingUser = argument;
        return this.reply(pop3Replies.userAccepted);
      case 'PASS': {
        if (this.state !== 'authorization') return this.reply(pop3Replies.alreadyLoggedIn);
        const username = this.pendingUser;
        if (username === undefined) return this.reply(pop3Replies.userFirst);
        this.pendingUser = undefined;
        return this.attempt({ method: 'USER', username, password: rawArgument });
      }
      case 'APOP': {
        if (this.state !== 'authorization') return this.reply(pop3Replies.alreadyLoggedIn);
        const parts = argument.split(/\s+/);
        if (parts.length !== 2 || !parts[0] || !parts[1]) return this.reply('-ERR syntax: APOP name digest');
        this.pendingUser = undefined;
        return this.attempt({ method: 'APOP', username: parts[0], digest: parts[1] });
      }
    }

    if (TRANSACTION_COMMANDS.has(keyword)) {
      if (this.state !== 'transaction') return this.reply(pop3Replies.notLoggedIn);
      return this.transaction(keyword, argument);
    }
    this.unknown++;
    if (this.unknown >= MAX_UNKNOWN_COMMANDS) return this.closeWith(pop3Replies.tooManyUnknown);
    return this.reply(pop3Replies.unknownCommand);
  }

  /** The maildrop is empty: every message number is unknown. */
  private transaction(keyword: string, argument: string): Pop3Step {
    switch (keyword) {
      case 'STAT':
        return this.reply('+OK 0 0');
      case 'LIST':
        return argument ? this.reply(pop3Replies.noSuchMessage) : this.reply('+OK 0 messages (0 octets)', '.');
      case 'UIDL':
        return argument ? this.reply(pop3Replies.noSuchMessage) : this.reply('+OK unique-id listing follows', '.');
      case 'NOOP':
        return this.reply('+OK');
      case 'RSET':
        return this.reply(pop3Replies.loggedIn);
      default: // RETR, DELE, TOP
        return this.reply(pop3Replies.noSuchMessage);
    }
  }

  private async attempt(login: Pop3Login): Promise<Pop3Step> {
    const outcome = await this.options.login(login);
    if (outcome.ok) {
      this.state = 'transaction';
      this.device = outcome.device;
      return this.reply(pop3Replies.loggedIn);
    }
    if (outcome.close) return this.closeWith(outcome.reply);
    this.failures++;
    if (this.failures >= this.maxFailures) return this.closeWith(pop3Replies.tooManyFailures);
    return this.reply(outcome.reply);
  }

  private reply(...lines: string[]): Pop3Step {
    return { lines, close: false };
  }

  private closeWith(...lines: string[]): Pop3Step {
    this.state = 'closed';
    return { lines, close: true };
  }
}
