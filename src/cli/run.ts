/**
 * The scanrelay CLI without the process around it (tests call runCli directly). The commands follow the
 * Postfix ones admins know (postqueue, postsuper, postfix reload); docs/cli.md has each with its
 * equivalent. Every command except check-config talks to the admin API over HTTP, local or remote;
 * check-config works offline. Tables for people, --json for scripts.
 *
 * Exit codes: 0 ok, 1 refused by the API (or a verify/test that failed), 64 usage, 66 not found,
 * 69 gateway unreachable, 77 token missing or refused, 78 invalid config.
 */
import { defaultConfigPath, loadConfig, type GatewayConfig } from '../config/index.js';
import { ConfigError, errorMessage } from '../shared/errors.js';
import { ApiError, TokenFileError, UnreachableError } from './client.js';
import { effectiveConfig, renderEffectiveConfig } from './check-config.js';
import { CommandContext, EXIT, UsageError, parseCommandLine, type CliIo, type Values } from './context.js';
import { deviceCommand } from './devices.js';
import { fields } from './format.js';
import { logCommand, queueCommand } from './messages.js';
import { lockoutCommand, reloadCommand, statsCommand } from './system.js';
import { upstreamCommand } from './upstreams.js';
import { watchCommand } from './watch.js';

export { EXIT, type CliIo } from './context.js';

const USAGE = `usage: scanrelay <command> [options]

devices
  device list                          devices with their status (Stop, Not connected, Operating, ...)
  device show NAME                     one device
  device add NAME -r RCPT [-r RCPT...] create a device; prints the printer's Email Server values once
        [--allow-from CIDR]... [--upstream NAME] [--username LOGIN] [--password PW]
        [--max-size 10MB] [--auth password|none] [--disabled]
  device set NAME [-r RCPT]... [--allow-from CIDR|any]... [--upstream NAME | --no-upstream] [--max-size SIZE]
                                       change an API-created device (lists replace the old ones)
  device rotate NAME [--password PW]   new password (shown once)
  device disable NAME | enable NAME | remove NAME

queue (postqueue, postsuper)
  queue list [FILTERS]                 messages not yet delivered or failed      (postqueue -p)
  queue show ID                        envelope, attempts and replies, why held  (postcat -q)
  queue retry ID... | SELECTION        attempt now                               (postsuper -r)
  queue release ID... | SELECTION      release held messages                     (postsuper -H)
  queue hold ID... | SELECTION [--note TEXT]  hold for an admin                  (postsuper -h)
  queue delete ID... | SELECTION       delete message and body                   (postsuper -d)
  queue flush                          every deferred message due now            (postqueue -f)
  queue stats                          messages by state, oldest waiting
  log [FILTERS]                        the message log, delivered and failed too (maillog)
    FILTERS: --device D --upstream U --state S[,S] --recipient ADDR --subject TEXT
             --since T --until T --limit N --offset N --cursor C
             T: 10:30 (today), 2h / 30m / 3d (ago), today, yesterday, 2026-12-01, ISO date-time
    SELECTION: --all-held [FILTERS]  or  --all [FILTERS]  (one bulk request)

upstreams
  upstream list                        state, security auto chose, waiting, sent today, last error
  upstream show NAME                   one upstream
  upstream verify NAME                 connect, TLS and AUTH now; prints the upstream's reply
  upstream test NAME --to ADDR         send a small test message
  upstream retry NAME                  clear failure/pause, release its held messages, try now

gateway
  lockout list                         addresses locked out after failed logins
  lockout clear ADDRESS                unlock an address now
  reload                               reload the config file                    (postfix reload)
  stats                                scans today / this week per device, queue, last 14 days
  watch DEVICE [--sessions N]          printer doctor: each SMTP step live, failures explained
  check-config [--config FILE]         validate offline, print the effective config (secrets masked)

options: --json (output for scripts), --url URL (SCANRELAY_ADMIN_URL),
         --token TOKEN (SCANRELAY_ADMIN_TOKEN), --token-file FILE (SCANRELAY_ADMIN_TOKEN_FILE),
         else <dataDir>/admin-token (--data-dir DIR, SCANRELAY_DATA_DIR), --config FILE (SCANRELAY_CONFIG)
exit codes: 0 ok, 1 refused by the gateway, 64 usage, 66 not found, 69 gateway unreachable,
            77 token missing or refused, 78 invalid configuration (check-config, reload)
`;

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    io.stderr(`scanrelay: ${errorMessage(err)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  const [command, action, ...rest] = positionals;
  if (values.help || !command) {
    (values.help ? io.stdout : io.stderr)(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const ctx = new CommandContext(values, io);
  try {
    switch (command) {
      case 'check-config':
        return checkConfig(values, io);
      case 'device':
        return await deviceCommand(ctx, action, rest[0]);
      case 'queue':
        return await queueCommand(ctx, action, rest);
      case 'log':
        if (action) throw new UsageError(`log takes filters, not "${action}"`);
        return await logCommand(ctx);
      case 'upstream':
        return await upstreamCommand(ctx, action, rest[0]);
      case 'lockout':
        return await lockoutCommand(ctx, action, rest[0]);
      case 'reload':
        return await reloadCommand(ctx);
      case 'stats':
        return await statsCommand(ctx);
      case 'watch':
        return await watchCommand(ctx, action);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return report(err, ctx);
  }
}

function report(err: unknown, ctx: CommandContext): number {
  const { io } = ctx;
  if (err instanceof UsageError) {
    io.stderr(`scanrelay: ${err.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (err instanceof UnreachableError) {
    io.stderr(`scanrelay: ${err.message}\n  is the gateway running? set --url or SCANRELAY_ADMIN_URL\n`);
    return EXIT.unavailable;
  }
  if (err instanceof TokenFileError) {
    io.stderr(`scanrelay: ${err.message}\n`);
    return EXIT.unauthorized;
  }
  if (err instanceof ApiError) {
    // Scripts with --json get the gateway's error on stdout too, in its own shape.
    if (ctx.json) io.stdout(`${JSON.stringify({ status: err.status, ...err.body }, null, 2)}\n`);
    const code = err.body?.code ? ` [${err.body.code}]` : '';
    io.stderr(`scanrelay: ${err.message}${code}\n`);
    if (err.status === 401) {
      io.stderr(
        '  pass --token or --token-file, set SCANRELAY_ADMIN_TOKEN or SCANRELAY_ADMIN_TOKEN_FILE, or run where <dataDir>/admin-token is readable (--data-dir)\n',
      );
      return EXIT.unauthorized;
    }
    if (err.body?.code === 'SCANRELAY_ROUTE_NOT_FOUND') {
      io.stderr('  this gateway is older than this command: upgrade it\n');
      return EXIT.refused;
    }
    if (err.body?.code === 'SCANRELAY_CONFIG_INVALID') return EXIT.config; // reload refused the file
    return err.status === 404 ? EXIT.notFound : EXIT.refused;
  }
  if (err instanceof ConfigError) return printConfigError(err, io);
  io.stderr(`scanrelay: ${errorMessage(err)}\n`);
  return EXIT.refused;
}

// ---- check-config ----

function checkConfig(values: Values, io: CliIo): number {
  const file = values.config ?? defaultConfigPath(io.env);
  let config: GatewayConfig;
  try {
    config = loadConfig(file, io.env);
  } catch (err) {
    if (err instanceof ConfigError) return printConfigError(err, io);
    throw err;
  }
  if (values.json) io.stdout(`${JSON.stringify(effectiveConfig(config), null, 2)}\n`);
  else io.stdout(renderEffectiveConfig(config));
  io.stderr(`configuration OK: ${config.devices.length} device(s), ${config.upstreams.length} upstream(s)\n`);
  return EXIT.ok;
}

/** Every problem of the file, each as its key and what is wrong. */
function printConfigError(err: ConfigError, io: CliIo): number {
  const count = err.problems.length > 1 ? ` (${err.problems.length} problems)` : '';
  const pairs: Array<[string, string]> = [['file', err.file]];
  for (const { keyPath, problem } of err.problems) pairs.push(['key', keyPath || '(root)'], ['problem', problem]);
  io.stderr(`scanrelay: invalid configuration${count}\n${fields(pairs)}\n`);
  return EXIT.config;
}
