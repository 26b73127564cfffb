/**
 * Tolerance for printer SMTP quirks that smtp-server refuses with 501 (see docs/quirks.md):
 *   - `MAIL FROM:addr` / `RCPT TO:addr` without angle brackets -> `<addr>` (an empty `MAIL FROM:` -> `<>`)
 *   - `HELO`/`EHLO` with no name -> the client's address literal; with several words -> the first word
 * The rewrite happens per command, after smtp-server's parser has split the line, so it can never touch
 * message data, AUTH continuation lines or anything after STARTTLS that is not a command. Everything
 * else (replies, checks, hooks) is smtp-server's own code.
 *
 * The same subclass also greets without smtp-server's 100 ms early-talker wait (see init()).
 *
 * How: smtp-server looks command handlers up as `connection['handler_' + NAME]`, so a subclass of its
 * SMTPConnection overrides four of them, and a subclass of SMTPServer creates that connection in
 * connect(). connect() mirrors smtp-server 3.21.6 (5 lines); test/integration/quirks.test.ts fails if a
 * smtp-server update changes this contract.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { isIPv6 } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';

export type SmtpQuirk = 'path-without-brackets' | 'empty-mail-from' | 'helo-without-name' | 'helo-with-spaces';

/** What the gateway may do to one connection from outside smtp-server's callbacks. */
export interface ConnectionControl {
  /** Sends a final reply and closes (pre-auth deadline, eviction). */
  end(code: number, text: string): void;
}

export interface QuirkHooks {
  /** Called each time a command was rewritten, so the log shows which devices need it. */
  onQuirk?(quirk: SmtpQuirk, session: SMTPServerSession, command: string): void;
  /** Hard limit on a whole session (smtp-server's socketTimeout is idle time only). */
  maxSessionMs?: number;
  /** A connection was accepted (before onConnect): the place to attach per-session state. */
  onConnection?(session: SMTPServerSession, control: ConnectionControl, remoteAddress: string): void;
  /** Every command line the client sends (before smtp-server handles it; AUTH payloads are not commands). */
  onCommand?(session: SMTPServerSession, name: string, line: string): void;
  /** QUIT was answered: the client may reconnect at once. */
  onQuit?(session: SMTPServerSession): void;
  /** The socket is gone. */
  onSocketClosed?(session: SMTPServerSession): void;
}

type Rewrite = { line: string; quirk: SmtpQuirk } | undefined;

const PATH_COMMAND = /^(\s*(MAIL FROM|RCPT TO)\s*:)(.*)$/i;

/** `MAIL FROM:a@b SIZE=1` -> `MAIL FROM:<a@b> SIZE=1`; undefined when the line needs no help. */
export function bracketPath(line: string): Rewrite {
  const match = PATH_COMMAND.exec(line);
  if (!match) return undefined;
  const [, head, verb, rest] = match;
  const [address = '', ...params] = rest.trim().split(/\s+/).filter(Boolean);
  if (address.startsWith('<')) return undefined;
  if (!address) {
    // A printer without a "Return Email Address" may send an empty reverse-path: that is the null sender.
    return verb.toUpperCase() === 'MAIL FROM' ? { line: `${head}<>`, quirk: 'empty-mail-from' } : undefined;
  }
  return { line: [`${head}<${address}>`, ...params].join(' '), quirk: 'path-without-brackets' };
}

/** `HELO` -> `HELO <fallback>`; `HELO a b` -> `HELO a`; undefined when the line is already well formed. */
export function helloWithOneName(line: string, fallbackName: string): Rewrite {
  const parts = line.trim().split(/\s+/);
  if (parts.length === 2) return undefined;
  if (parts.length === 1) return { line: `${parts[0]} ${fallbackName}`, quirk: 'helo-without-name' };
  return { line: `${parts[0]} ${parts[1]}`, quirk: 'helo-with-spaces' };
}

/** RFC 5321 address literal for the client, used as its name when it gives none. */
export function addressLiteral(address: string): string {
  return isIPv6(address) ? `[IPv6:${address}]` : `[${address}]`;
}

class QuirkTolerantConnection extends SMTPConnection {
  /**
   * smtp-server holds every greeting for 100 ms to catch spam "early talkers". Printers on a LAN are not
   * spammers, and the wait is added to every scan (one connection each), so greet at once. Same steps as
   * SMTPConnection.init() in smtp-server 3.21.6, without the timer.
   */
  override init(): void {
    this.limitSessionTime();
    // Without smtp-server's maxClients check: the gateway's slot accountant owns every count (onConnect).
    this._setListeners(() => this.connectionReady());
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    const hooks = (this._server as QuirkTolerantSmtpServer).hooks;
    // Only lines smtp-server reads as commands (not DATA, not AUTH continuations: _nextHandler takes those).
    if (hooks.onCommand && !this._nextHandler) {
      const line = command.toString().slice(0, 300);
      hooks.onCommand(this.session, (line.split(' ')[0] ?? '').toUpperCase(), line);
    }
    super._onCommand(command, callback);
  }

  override handler_QUIT(command: Buffer, callback: () => void): void {
    super.handler_QUIT(command, callback);
    (this._server as QuirkTolerantSmtpServer).hooks.onQuit?.(this.session);
  }

  /**
   * Every byte resets smtp-server's idle timer, so a client dripping a byte every few seconds would hold
   * its connection for ever: close any session older than maxSessionMs with 421 (a DATA transfer cut this
   * way is discarded, the client retries).
   */
  private limitSessionTime(): void {
    const limit = (this._server as QuirkTolerantSmtpServer).hooks.maxSessionMs;
    if (!limit) return;
    let timer: NodeJS.Timeout;
    const expire = () => {
      if (this._closing || this._closed) return;
      // The whole message is in and is being committed (fsync): cutting now would answer 421 for a scan
      // that then gets queued, and the printer would send it twice. Look again in a moment.
      const committing = this._handlerPending || (this._dataStream && this._parser && !this._parser._dataMode);
      if (committing) {
        timer = setTimeout(expire, 1_000);
        timer.unref();
        return;
      }
      this.send(421, `${this.name} Session time limit reached, closing connection`);
      this.close();
    };
    timer = setTimeout(expire, limit);
    timer.unref();
    this._socket.once('close', () => clearTimeout(timer));
  }

  private tolerate(command: Buffer, rewrite: (line: string) => Rewrite): Buffer {
    const line = command.toString(); // the same decoding smtp-server applies to commands
    const result = rewrite(line);
    if (!result) return command;
    (this._server as QuirkTolerantSmtpServer).hooks.onQuirk?.(result.quirk, this.session, line.slice(0, 300));
    return Buffer.from(result.line);
  }

  override handler_HELO(command: Buffer, callback: () => void): void {
    super.handler_HELO(
      this.tolerate(command, (line) => helloWithOneName(line, addressLiteral(this.remoteAddress))),
      callback,
    );
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    super.handler_EHLO(
      this.tolerate(command, (line) => helloWithOneName(line, addressLiteral(this.remoteAddress))),
      callback,
    );
  }

  override handler_MAIL(command: Buffer, callback: () => void): void {
    super.handler_MAIL(this.tolerate(command, bracketPath), callback);
  }

  override handler_RCPT(command: Buffer, callback: () => void): void {
    super.handler_RCPT(this.tolerate(command, bracketPath), callback);
  }
}

/** Drop-in for SMTPServer that accepts the quirks listed above. */
export class QuirkTolerantSmtpServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    readonly hooks: QuirkHooks = {},
  ) {
    super(options);
  }

  override connect(socket: Socket | TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    // As SMTPServer.connect (smtp-server 3.21.6), with the tolerant connection class.
    const connection = new QuirkTolerantConnection(this, socket, socketOptions);
    this.hooks.onConnection?.(
      connection.session,
      {
        end: (code, text) => {
          if (connection._closing || connection._closed) return;
          connection.send(code, text);
          connection.close();
        },
      },
      connection.remoteAddress,
    );
    socket.once('close', () => this.hooks.onSocketClosed?.(connection.session));
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }
}
