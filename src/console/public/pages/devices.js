// Devices: each printer's status in its own words, last seen / last scan, counts, last error (and when a
// later delivery cleared it), lock-outs; add a printer with its printable setup sheet; rotate, disable, delete.
import { del, get, post } from '../api.js';
import { act, badge, field, h, notify, replace, table, when } from '../ui.js';

export async function renderDevices(container, args, state) {
  const listBox = h('div', {});
  const lockoutBox = h('div', {});
  const sheetBox = h('div', {});
  let shown = '';
  const refresh = async () => {
    const [devices, lockouts] = await Promise.all([get('/api/devices'), get('/api/lockouts')]);
    // Redraw only on a change, so a periodic refresh does not take the keyboard focus away.
    const seen = JSON.stringify([devices, lockouts]);
    if (seen === shown) return;
    shown = seen;
    replace(listBox, deviceTable(devices.items, lockouts.items, refresh, sheetBox, args[0]));
    replace(lockoutBox, lockoutTable(lockouts.items, refresh));
  };
  const upstreams = await get('/api/upstreams').catch(() => ({ items: [] }));
  replace(
    container,
    h('h1', {}, 'Devices'),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'quiet', onclick: (e) => act(e.currentTarget, refresh) }, 'Refresh')),
    listBox,
    sheetBox,
    h('h2', {}, 'Add a printer'),
    addForm(upstreams.items, sheetBox, refresh),
    h('h2', {}, 'Lock-outs'),
    lockoutBox,
  );
  await refresh();
  const timer = setInterval(() => document.visibilityState === 'visible' && state.active && refresh().catch(() => {}), 3000);
  return () => clearInterval(timer);
}

function deviceTable(devices, lockouts, refresh, sheetBox, focus) {
  return table(
    'Printers',
    ['Device', 'Status', 'Last seen', 'Last scan', 'Scans', 'Last error', 'Lock-outs', 'Actions'],
    devices.map((d) => {
      const s = d.status;
      const locked = lockouts.filter((l) => l.address === s.lastSeenAddress || d.allowFrom.includes(l.address) || d.allowFrom.includes(`${l.address}/32`));
      const cleared = s.lastError && s.lastDeliveredAt && s.lastDeliveredAt > s.lastError.at;
      return h(
        'tr',
        { id: `device-${d.name}`, class: focus === d.name ? 'focus' : '', 'data-device': d.name },
        h(
          'th',
          { scope: 'row' },
          d.name,
          h('br'),
          h('small', { class: 'muted' }, d.username ? `login ${d.username}` : 'no login (by address)', d.managedBy === 'config' ? ' · config file' : ''),
        ),
        h('td', { class: 'status' }, badge(s.state), d.enabled ? null : h('small', {}, ' disabled')),
        h('td', {}, when(s.lastSeenAt), s.lastSeenAddress ? h('small', { class: 'muted' }, ` from ${s.lastSeenAddress}`) : null),
        h('td', {}, when(s.lastMessageAt)),
        h(
          'td',
          { class: 'counts' },
          `${s.counts.received} received`,
          h('br'),
          `${s.counts.delivered} delivered`,
          h('br'),
          h('span', { class: s.counts.failed > 0 ? 'error' : '' }, `${s.counts.failed} failed`),
          h('br'),
          `${s.counts.queued} waiting`,
        ),
        h(
          'td',
          {},
          s.lastError
            ? [
                h('span', { class: cleared ? 'muted' : 'error' }, s.lastError.message),
                h('br'),
                h('small', {}, when(s.lastError.at), cleared ? [' · cleared ', when(s.lastDeliveredAt)] : ''),
              ]
            : h('span', { class: 'muted' }, 'none'),
          s.recentAuthFailures > 0 ? h('div', { class: 'warn-text' }, `${s.recentAuthFailures} failed logins in the last hour`) : null,
        ),
        h('td', {}, locked.length ? locked.map((l) => h('div', {}, `${l.address} until `, when(l.until))) : h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'actions' }, deviceActions(d, refresh, sheetBox)),
      );
    }),
    'No printers yet: add one below.',
  );
}

function deviceActions(device, refresh, sheetBox) {
  const name = encodeURIComponent(device.name);
  const fromConfig = device.managedBy === 'config';
  const disabledNote = fromConfig ? 'defined in the config file: change it there' : undefined;
  return [
    h('a', { class: 'button quiet', href: `#/doctor/${name}` }, 'Watch'),
    h('a', { class: 'button quiet', href: `#/messages?device=${name}` }, 'Messages'),
    device.auth === 'password'
      ? h(
          'button',
          {
            type: 'button',
            disabled: fromConfig,
            title: disabledNote,
            onclick: (e) => {
              if (!confirm(`Give ${device.name} a new password? The old one stops working at once; the printer needs the new one.`)) return;
              act(e.currentTarget, async () => {
                const result = await post(`/api/devices/${name}/rotate-password`);
                showSheet(sheetBox, result, 'New password');
                await refresh();
              });
            },
          },
          'Rotate password',
        )
      : null,
    h(
      'button',
      {
        type: 'button',
        disabled: fromConfig,
        title: disabledNote,
        onclick: (e) =>
          act(
            e.currentTarget,
            async () => {
              await post(`/api/devices/${name}/${device.enabled ? 'disable' : 'enable'}`);
              await refresh();
            },
            `${device.name} ${device.enabled ? 'disabled: the printer will show "Stop"' : 'enabled'}`,
          ),
      },
      device.enabled ? 'Disable' : 'Enable',
    ),
    h(
      'button',
      {
        type: 'button',
        class: 'danger',
        disabled: fromConfig,
        title: disabledNote,
        onclick: (e) => {
          if (!confirm(`Delete ${device.name}? Its queued scans stay in the queue.`)) return;
          act(
            e.currentTarget,
            async () => {
              await del(`/api/devices/${name}`);
              await refresh();
            },
            `${device.name} deleted`,
          );
        },
      },
      'Delete',
    ),
  ];
}

function addForm(upstreams, sheetBox, refresh) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,62}', maxlength: 63, autocomplete: 'off' });
  const recipients = h('input', { name: 'recipients', required: true, placeholder: '*@example.org, scans@example.org', autocomplete: 'off' });
  const upstream = h(
    'select',
    { name: 'upstream' },
    h('option', { value: '' }, '(none yet: scans are held)'),
    upstreams.map((u) => h('option', { value: u.name }, `${u.name} (${u.user})`)),
  );
  const allowFrom = h('input', { name: 'allowFrom', placeholder: '10.20.30.40/32', autocomplete: 'off' });
  const auth = h(
    'select',
    { name: 'auth' },
    h('option', { value: 'password' }, 'SMTP AUTH (login and password)'),
    h('option', { value: 'none' }, 'No Authentication (by address)'),
  );
  const list = (text) =>
    text
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter(Boolean);
  const form = h(
    'form',
    {
      class: 'card form-grid',
      onsubmit: async (event) => {
        event.preventDefault();
        const button = form.querySelector('button[type=submit]');
        const body = { name: name.value.trim(), allowRecipients: list(recipients.value), auth: auth.value };
        if (upstream.value) body.upstream = upstream.value;
        if (allowFrom.value.trim()) body.allowFrom = list(allowFrom.value);
        const result = await act(button, () => post('/api/devices', body), `${body.name} added`);
        if (!result) return;
        form.reset();
        showSheet(sheetBox, result, 'New printer');
        await refresh();
      },
    },
    field('Name', name, 'how the console and logs call it, e.g. warren-2f'),
    field('Allowed recipients', recipients, 'addresses, *@domain or *@*.domain, separated by commas'),
    field('Upstream account', upstream),
    field('Printer address (optional)', allowFrom, 'IP or CIDR the printer sends from; required for No Authentication'),
    field('Email Send Authentication', auth),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Add printer')),
  );
  return form;
}

/** The one-time setup sheet: the printer's Email Server page, field by field (printable on its own). */
function showSheet(box, result, title) {
  const setup = result.printerSetup;
  const rows = [
    ['SMTP Server Address', setup.smtpServerAddress],
    ['Get SMTP Server Address', 'do not use'],
    ['SMTP Server Port Number', setup.smtpServerPortNumber],
    ['Email Send Authentication', setup.emailSendAuthentication],
    setup.loginName ? ['Login Name', setup.loginName] : null,
    setup.password ? ['Password', setup.password] : null,
    ['Return Email Address', result.device.upstream ? `the Google account of ${result.device.upstream}` : "the printer's Google account"],
  ].filter(Boolean);
  replace(
    box,
    h(
      'section',
      { class: 'card sheet', 'aria-labelledby': 'sheet-title' },
      h('h2', { id: 'sheet-title' }, `${title}: setup sheet for ${result.device.name}`),
      h('p', {}, `On the printer: ${setup.page}. Type these values exactly:`),
      h(
        'table',
        { class: 'sheet-table' },
        h('caption', { class: 'visually-hidden' }, 'Email Server page values'),
        h(
          'tbody',
          {},
          rows.map(([label, value]) => h('tr', {}, h('th', { scope: 'row' }, label), h('td', { 'data-field': label }, h('code', {}, String(value))))),
        ),
      ),
      setup.password
        ? h('p', { class: 'warn-text' }, 'The password is shown only now: print this sheet or type it into the printer before leaving the page.')
        : null,
      setup.note ? h('p', { class: 'muted' }, setup.note) : null,
      h('p', { class: 'muted' }, 'Then click Save Changes and scan a page; the device should read Operating here and on the printer.'),
      h(
        'div',
        { class: 'toolbar no-print' },
        h('button', { type: 'button', onclick: () => printSheet() }, 'Print setup sheet'),
        h('button', { type: 'button', class: 'quiet', onclick: () => box.replaceChildren() }, 'Done'),
      ),
    ),
  );
  box.querySelector('h2').setAttribute('tabindex', '-1');
  box.querySelector('h2').focus();
  notify(`Setup sheet for ${result.device.name} ready`, 'ok');
}

function printSheet() {
  document.body.classList.add('printing-sheet');
  window.addEventListener('afterprint', () => document.body.classList.remove('printing-sheet'), { once: true });
  window.print();
}

function lockoutTable(lockouts, refresh) {
  return table(
    '!Locked-out addresses',
    ['Address', 'Locked until', ''],
    lockouts.map((l) =>
      h(
        'tr',
        {},
        h('td', {}, l.address),
        h('td', {}, when(l.until)),
        h(
          'td',
          {},
          h(
            'button',
            {
              type: 'button',
              onclick: (e) =>
                act(
                  e.currentTarget,
                  async () => {
                    await del(`/api/lockouts/${encodeURIComponent(l.address)}`);
                    await refresh();
                  },
                  `${l.address} unlocked`,
                ),
            },
            `Unlock ${l.address}`,
          ),
        ),
      ),
    ),
    'No address is locked out.',
  );
}
