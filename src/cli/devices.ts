/** `scanrelay device ...`: the printers, their status in the printer's own words, and their setup sheet. */
import { type CommandContext, EXIT, UsageError, need, segment, withoutUndefined } from './context.js';
import { ago, fields, table, truncate } from './format.js';

export interface DeviceView {
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

export async function deviceCommand(ctx: CommandContext, action: string | undefined, name: string | undefined): Promise<number> {
  const { api, values } = ctx;
  const path = (suffix = '') => `/api/devices/${segment(need(name, 'device NAME'))}${suffix}`;
  const print = ctx.print.bind(ctx);

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
    case 'set': {
      // Only what is given changes; lists replace the old list (PATCH semantics).
      if (values.upstream && values['no-upstream']) throw new UsageError('--upstream NAME or --no-upstream, not both');
      const allowFrom = values['allow-from'];
      const body = withoutUndefined({
        allowRecipients: values.recipient,
        allowFrom: allowFrom?.length === 1 && allowFrom[0] === 'any' ? [] : allowFrom,
        upstream: values['no-upstream'] ? null : values.upstream,
        maxMessageSize: values['max-size'] === undefined ? undefined : /^\d+$/.test(values['max-size']) ? Number(values['max-size']) : values['max-size'],
      });
      if (Object.keys(body).length === 0)
        throw new UsageError('device set needs something to change: -r RCPT, --allow-from CIDR|any, --upstream NAME, --no-upstream, --max-size SIZE');
      const device = await api.request<DeviceView>('PATCH', path(), body);
      print(device, () => `device ${device.name} updated\n${describeDevice(device)}`);
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
      throw new UsageError(action ? `unknown device action "${action}"` : 'device needs an action (list, show, add, set, rotate, disable, enable, remove)');
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
