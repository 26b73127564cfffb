/**
 * The scanrelay CLI without the process around it (tests call runCli directly):
 *
 *   scanrelay device list | show NAME | add NAME -r RCPT... | rotate NAME | disable NAME | enable NAME | remove NAME
 *   scanrelay queue list [--state S] [--device D] | show ID | retry ID
 *   scanrelay check-config [--config FILE]
 *
 * Device and queue commands talk to the admin API over HTTP; check-config works offline.
 * Exit codes: 0 ok, 1 refused by the API, 64 usage, 69 API unreachable, 77 token refused, 78 invalid config.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig, type GatewayConfig } from '../config/index.js';
import { ConfigError, errorMessage } from '../shared/errors.js';
import { AdminClient, ApiError, UnreachableError, resolveConnection } from './client.js';
import { effectiveConfig, renderEffectiveConfig } from './check-config.js';
import { ago, fields, table, truncate } from './format.js';

export const EXIT = { ok: 0, refused: 1, usage: 64, unavailable: 69, unauthorized: 77, config: 78 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `usage: scanrelay <command> [options]

  device list                          devices with their status
  device show NAME                     one device
  device add NAME -r RCPT [-r RCPT...] create a device; prints the printer's Email Server values once
        [--allow-from CIDR]... [--upstream NAME] [--username LOGIN] [--password PW]
        [--max-size 10MB] [--auth password|none] [--disabled]
  device rotate NAME [--password PW]   new password (shown once)
  device disable NAME | enable NAME | remove NAME
  queue list [--state S]... [--device D] [--upstream U] [--since ISO] [--limit N] [--offset N]
  queue show ID | retry ID
  check-config [--config FILE]         validate offline, print the effective config (secrets masked)

options: --url URL (SCANRELAY_ADMIN_URL), --token TOKEN (SCANRELAY_ADMIN_TOKEN, else <dataDir>/admin-token),
         --data-dir DIR, --config FILE (SCANRELAY_CONFIG), --json
`;

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  recipient: { type: 'string', short: 'r', multiple: true },
  'allow-from': { type: 'string', multiple: true },
  upstream: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  'max-size': { type: 'string' },
  auth: { type: 'string' },
  disabled: { type: 'boolean' },
  state: { type: 'string', multiple: true },
  device: { type: 'string' },
  since: { type: 'string' },
  limit: { type: 'string' },
  offset: { type: 'string' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

class UsageError extends Error {}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.stderr(`scanrelay: ${errorMessage(err)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  const [command, action, target] = positionals;
  if (values.help || !command) {
    (values.help ? io.stdout : io.stderr)(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  try {
    if (command === 'check-config') return checkConfig(values, io);
    if (command === 'device') return await deviceCommand(action, target, values, io);
    if (command === 'queue') return await queueCommand(action, target, values, io);
    throw new UsageError(`unknown command "${command}"`);
  } catch (err) {
    return report(err, io);
  }
}

function report(err: unknown, io: CliIo): number {
  if (err instanceof UsageError) {
    io.stderr(`scanrelay: ${err.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (err instanceof UnreachableError) {
    io.stderr(`scanrelay: ${err.message}\n  is the gateway running? set --url or SCANRELAY_ADMIN_URL\n`);
    return EXIT.unavailable;
  }
  if (err instanceof ApiError) {
    const code = err.body?.code ? ` [${err.body.code}]` : '';
    io.stderr(`scanrelay: ${err.message}${code}\n`);
    if (err.status === 401) {
      io.stderr('  pass --token, set SCANRELAY_ADMIN_TOKEN, or run where <dataDir>/admin-token is readable (--data-dir)\n');
      return EXIT.unauthorized;
    }
    return EXIT.refused;
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

// ---- admin API commands ----

function client(values: Values, io: CliIo): AdminClient {
  return new AdminClient(
    resolveConnection({
      url: values.url,
      token: values.token,
      dataDir: values['data-dir'],
      env: io.env,
      config: optionalConfig(values, io.env),
    }),
  );
}

/** The config file helps find the API and token, but the CLI must work without (or with a broken) one. */
function optionalConfig(values: Values, env: NodeJS.ProcessEnv): GatewayConfig | undefined {
  const file = values.config ?? defaultConfigPath(env);
  if (!existsSync(file)) return undefined;
  try {
    return loadConfig(file, env);
  } catch {
    return undefined;
  }
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

interface DeviceView {
  name: string;
  managedBy: string;
  enabled: boolean;
  auth: string;
  username?: string;
  upstream?: string;
  allowFrom: string[];
  allowRecipients: string[];
  maxMessageSize: number;
  status: {
    state: string;
    lastSeenAt?: string;
    lastMessageAt?: string;
    lastError?: { at: string; message: string };
    recentAuthFailures: number;
    counts: { received: number; delivered: number; failed: number; queued: number };
  };
}

interface PrinterSetup {
  page: string;
  smtpServerAddress: string;
  smtpServerPortNumber: number;
  emailSendAuthentication: string;
  loginName?: string;
  password?: string;
  note?: string;
}

async function deviceCommand(action: string | undefined, name: string | undefined, values: Values, io: CliIo): Promise<number> {
  const api = client(values, io);
  const path = (suffix = '') => `/api/devices/${encodeURIComponent(need(name, 'device NAME'))}${suffix}`;
  const print = (data: unknown, human: () => string) => io.stdout(`${values.json ? JSON.stringify(data, null, 2) : human()}\n`);

  switch (action) {
    case 'list': {
      const data = await api.request<{ items: DeviceView[] }>('GET', '/api/devices');
      print(data, () =>
        table(
          ['NAME', 'MANAGED', 'ENABLED', 'STATE', 'RECEIVED', 'DELIVERED', 'FAILED', 'QUEUED', 'LAST SEEN', 'LAST ERROR'],
          data.items.map((d) => [
            d.name,
            d.managedBy,
            d.enabled ? 'yes' : 'no',
            d.status.state,
            String(d.status.counts.received),
            String(d.status.counts.delivered),
            String(d.status.counts.failed),
            String(d.status.counts.queued),
            ago(d.status.lastSeenAt),
            truncate(d.status.lastError?.message, 60),
          ]),
        ),
      );
      return EXIT.ok;
    }
    case 'show': {
      const device = await api.request<DeviceView>('GET', path());
      print(device, () => describeDevice(device));
      return EXIT.ok;
    }
    case 'add': {
      const recipients = values.recipient ?? [];
      if (recipients.length === 0) throw new UsageError('device add needs at least one --recipient (-r), e.g. -r "*@example.org"');
      if (values.auth !== undefined && values.auth !== 'password' && values.auth !== 'none') throw new UsageError('--auth is password or none');
      const body = {
        name: need(name, 'device NAME'),
        allowRecipients: recipients,
        allowFrom: values['allow-from'],
        upstream: values.upstream,
        username: values.username,
        password: values.password,
        auth: values.auth,
        enabled: values.disabled ? false : undefined,
        maxMessageSize: values['max-size'] === undefined ? undefined : /^\d+$/.test(values['max-size']) ? Number(values['max-size']) : values['max-size'],
      };
      const created = await api.request<{ device: DeviceView; printerSetup: PrinterSetup }>('POST', '/api/devices', withoutUndefined(body));
      print(created, () => `device ${created.device.name} created.\n\n${describeSetup(created.printerSetup)}`);
      return EXIT.ok;
    }
    case 'rotate': {
      const rotated = await api.request<{ device: DeviceView; printerSetup: PrinterSetup }>(
        'POST',
        path('/rotate-password'),
        values.password ? { password: values.password } : {},
      );
      print(rotated, () => `new password for ${rotated.device.name}; the old one no longer works.\n\n${describeSetup(rotated.printerSetup)}`);
      return EXIT.ok;
    }
    case 'disable':
    case 'enable': {
      const device = await api.request<DeviceView>('POST', path(`/${action}`));
      print(device, () => `device ${device.name} ${device.enabled ? 'enabled' : 'disabled'} (state: ${device.status.state})`);
      return EXIT.ok;
    }
    case 'remove': {
      const removedName = need(name, 'device NAME');
      await api.request('DELETE', path());
      print({ removed: removedName }, () => `device ${removedName} removed`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(action ? `unknown device action "${action}"` : 'device needs an action (list, show, add, rotate, disable, enable, remove)');
  }
}

function describeDevice(d: DeviceView): string {
  return `${d.name}\n${fields([
    ['managed by', d.managedBy],
    ['enabled', d.enabled ? 'yes' : 'no'],
    ['state', d.status.state],
    ['auth', d.auth],
    ['login name', d.username],
    ['upstream', d.upstream ?? '(none: messages are held)'],
    ['recipients', d.allowRecipients.join(', ')],
    ['allowed from', d.allowFrom.length ? d.allowFrom.join(', ') : 'any address'],
    ['max size', `${d.maxMessageSize} bytes`],
    ['received', d.status.counts.received],
    ['delivered', d.status.counts.delivered],
    ['failed', d.status.counts.failed],
    ['queued', d.status.counts.queued],
    ['last seen', d.status.lastSeenAt],
    ['last message', d.status.lastMessageAt],
    ['last error', d.status.lastError ? `${d.status.lastError.message} (${d.status.lastError.at})` : undefined],
    ['auth failures (1h)', d.status.recentAuthFailures],
  ])}`;
}

function describeSetup(setup: PrinterSetup): string {
  const lines = [
    `Type these values into the printer's Email Server page (${setup.page}):`,
    fields([
      ['SMTP Server Address', setup.smtpServerAddress],
      ['SMTP Server Port Number', setup.smtpServerPortNumber],
      ['Email Send Authentication', setup.emailSendAuthentication],
      ['Login Name', setup.loginName],
      ['Password', setup.password],
    ]),
  ];
  if (setup.note) lines.push(`note: ${setup.note}`);
  if (setup.password) lines.push('', 'The password is shown only this once; use "scanrelay device rotate" to set a new one.');
  return lines.join('\n');
}

interface MessageSummary {
  id: string;
  state: string;
  device: string;
  receivedAt: string;
  subject?: string;
  attempts: number;
  outcome: string;
}

async function queueCommand(action: string | undefined, id: string | undefined, values: Values, io: CliIo): Promise<number> {
  const api = client(values, io);
  const print = (data: unknown, human: () => string) => io.stdout(`${values.json ? JSON.stringify(data, null, 2) : human()}\n`);
  switch (action) {
    case 'list': {
      const query = new URLSearchParams();
      for (const state of values.state ?? []) for (const s of state.split(',')) query.append('state', s.trim());
      if (values.device) query.set('device', values.device);
      if (values.upstream) query.set('upstream', values.upstream);
      if (values.since) query.set('since', values.since);
      if (values.limit) query.set('limit', values.limit);
      if (values.offset) query.set('offset', values.offset);
      const text = query.toString();
      const data = await api.request<{ total: number; offset: number; items: MessageSummary[] }>('GET', `/api/messages${text ? `?${text}` : ''}`);
      print(
        data,
        () =>
          `${table(
            ['ID', 'STATE', 'DEVICE', 'RECEIVED', 'ATTEMPTS', 'SUBJECT', 'OUTCOME'],
            data.items.map((m) => [m.id, m.state, m.device, m.receivedAt, String(m.attempts), truncate(m.subject, 30), truncate(m.outcome, 70)]),
          )}\n${data.items.length} of ${data.total} shown (offset ${data.offset})`,
      );
      return EXIT.ok;
    }
    case 'show': {
      const message = await api.request<Record<string, unknown>>('GET', `/api/messages/${encodeURIComponent(need(id, 'message ID'))}`);
      io.stdout(`${JSON.stringify(message, null, 2)}\n`);
      return EXIT.ok;
    }
    case 'retry': {
      const message = await api.request<{ id: string; state: string }>('POST', `/api/messages/${encodeURIComponent(need(id, 'message ID'))}/retry`);
      print(message, () => `message ${message.id} is ${message.state}; the delivery worker will try it now`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(action ? `unknown queue action "${action}"` : 'queue needs an action (list, show, retry)');
  }
}

function withoutUndefined<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
