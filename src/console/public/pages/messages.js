// Messages: the message log with the store's filters (times typed as words, sent as ISO), a message's
// detail (envelope, attempts with each upstream reply, hold reason and fix), single and bulk actions,
// and "flush deferred" (postqueue -f).
import { del, get, post, query } from '../api.js';
import { act, badge, field, h, notify, replace, size, table, when } from '../ui.js';
import { parseWhen } from '../time.js';

const STATES = ['queued', 'deferred', 'held', 'delivering', 'delivered', 'partly-failed', 'failed', 'quarantined'];
const PAGE_SIZE = 50;

export async function renderMessages(container, args, state) {
  if (args[0]) return renderDetail(container, args[0], state);
  const [devices, upstreams] = await Promise.all([get('/api/devices').catch(() => ({ items: [] })), get('/api/upstreams').catch(() => ({ items: [] }))]);
  const p = state.params;
  const select = (name, items, label) =>
    h(
      'select',
      { name },
      h('option', { value: '' }, label),
      items.map((n) => h('option', { value: n, selected: p.get(name) === n }, n)),
    );
  const inputs = {
    device: select(
      'device',
      devices.items.map((d) => d.name),
      'any device',
    ),
    upstream: select(
      'upstream',
      upstreams.items.map((u) => u.name),
      'any upstream',
    ),
    recipient: h('input', { name: 'recipient', type: 'email', value: p.get('recipient') ?? '', autocomplete: 'off' }),
    subject: h('input', { name: 'subject', type: 'search', minlength: 3, value: p.get('subject') ?? '', autocomplete: 'off' }),
    since: h('input', { name: 'since', value: p.get('since') ?? '', placeholder: 'today 10:30, last 2 hours', autocomplete: 'off' }),
    until: h('input', { name: 'until', value: p.get('until') ?? '', placeholder: 'now', autocomplete: 'off' }),
  };
  const wanted = new Set(p.getAll('state'));
  const stateBoxes = STATES.map((s) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'state', value: s, checked: wanted.has(s) }), s));
  const results = h('div', { 'aria-live': 'polite' });
  const selection = new Set();
  let lastFilter = {};
  let offset = 0;

  /** The filter for the API: times as absolute ISO strings, or an error to show. */
  const readFilter = () => {
    const filter = {};
    for (const key of ['device', 'upstream', 'recipient', 'subject']) if (inputs[key].value.trim()) filter[key] = inputs[key].value.trim();
    const states = stateBoxes
      .map((l) => l.querySelector('input'))
      .filter((i) => i.checked)
      .map((i) => i.value);
    if (states.length) filter.state = states;
    for (const key of ['since', 'until']) {
      const parsed = parseWhen(inputs[key].value);
      if (parsed.error) throw new Error(`${key === 'since' ? 'From' : 'To'}: ${parsed.error}`);
      if (parsed.date) filter[key] = parsed.date.toISOString();
    }
    if (filter.subject && filter.subject.length < 3) throw new Error('Subject: type at least 3 characters');
    return filter;
  };

  const load = async (more = false) => {
    if (!more) {
      lastFilter = readFilter();
      offset = 0;
      selection.clear();
    }
    const list = await get(`/api/messages${query({ ...lastFilter, limit: PAGE_SIZE, offset })}`);
    const rows = list.items.map((m) => messageRow(m, selection));
    const tbody = results.querySelector('tbody');
    if (more && tbody) tbody.append(...rows);
    else
      replace(
        results,
        h('p', { class: 'muted', id: 'message-total' }, `${list.total} message${list.total === 1 ? '' : 's'} match`),
        table('!Messages', ['', 'Received', 'Device', 'Subject', 'To', 'Size', 'State', 'Outcome'], rows, 'No message matches.'),
      );
    offset += list.items.length;
    results.querySelector('.more')?.remove();
    if (offset < list.total)
      results.append(h('button', { type: 'button', class: 'quiet more', onclick: (e) => act(e.currentTarget, () => load(true)) }, 'Show more'));
  };

  const search = (event) => {
    event?.preventDefault();
    load().catch((err) => notify(err.message, 'error'));
  };
  const bulk = h(
    'select',
    { name: 'bulk-action' },
    ['release', 'retry', 'hold', 'delete'].map((a) => h('option', { value: a }, a)),
  );
  const runBulk = async (button, target) => {
    const action = bulk.value;
    const body = target === 'selection' ? { action, ids: [...selection] } : { action, filter: lastFilter };
    if (target === 'selection' && selection.size === 0) return notify('Select messages first (the boxes on the left).', 'error');
    const scope = target === 'selection' ? `${selection.size} selected messages` : 'every message matching the filter';
    if (!confirm(`${action} ${scope}?`)) return;
    const result = await act(button, () => post('/api/messages/bulk', body));
    if (!result) return;
    const skipped = result.skipped?.length ? `; skipped ${result.skipped.length} (${result.skipped[0].reason}${result.skipped.length > 1 ? ', ...' : ''})` : '';
    notify(`${action}: ${result.changed} of ${result.matched} changed${skipped}`, 'ok');
    await load();
  };

  replace(
    container,
    h('h1', {}, 'Messages'),
    h(
      'form',
      { class: 'card form-grid filters', onsubmit: search, role: 'search' },
      field('Device', inputs.device),
      field('Upstream', inputs.upstream),
      field('Recipient', inputs.recipient, 'exact address'),
      field('Subject contains', inputs.subject, 'at least 3 characters'),
      field('From', inputs.since, '"today 10:30", "last 2 hours", "yesterday", "2026-12-01 09:00"'),
      field('To', inputs.until),
      h('fieldset', { class: 'states' }, h('legend', {}, 'State'), stateBoxes),
      h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Search')),
    ),
    h(
      'div',
      { class: 'toolbar' },
      h('label', { for: 'bulk-action' }, 'Action'),
      Object.assign(bulk, { id: 'bulk-action' }),
      h('button', { type: 'button', onclick: (e) => runBulk(e.currentTarget, 'selection') }, 'on selected'),
      h('button', { type: 'button', onclick: (e) => runBulk(e.currentTarget, 'filter') }, 'on all matching the filter'),
      h(
        'button',
        {
          type: 'button',
          class: 'quiet',
          title: 'like postqueue -f: every deferred message is tried now',
          onclick: (e) =>
            act(
              e.currentTarget,
              async () => {
                const result = await post('/api/queue/flush');
                await load();
                return result;
              },
              (r) => `Flushed: ${r.flushed} deferred message${r.flushed === 1 ? '' : 's'} tried now`,
            ),
        },
        'Flush deferred',
      ),
    ),
    results,
  );
  search();
  return undefined;
}

function messageRow(m, selection) {
  const box = h('input', {
    type: 'checkbox',
    'aria-label': `select ${m.subject ?? m.id}`,
    onchange: (e) => (e.currentTarget.checked ? selection.add(m.id) : selection.delete(m.id)),
  });
  return h(
    'tr',
    { 'data-id': m.id },
    h('td', {}, box),
    h('td', {}, when(m.receivedAt)),
    h('td', {}, m.device),
    h('td', {}, h('a', { href: `#/messages/${m.id}` }, m.subject || '(no subject)')),
    h('td', {}, m.recipients === 1 ? '1 recipient' : `${m.recipients} recipients`),
    h('td', {}, size(m.size)),
    h('td', {}, badge(m.state)),
    h('td', { class: 'outcome' }, m.outcome),
  );
}

async function renderDetail(container, id, state) {
  let last = '';
  const draw = async () => {
    const m = await get(`/api/messages/${encodeURIComponent(id)}`);
    // Redraw only on a change (keeps the keyboard focus), and follow the message until it settles.
    const seen = JSON.stringify(m);
    if (seen === last) return;
    last = seen;
    const action = (label, run, done, cls) =>
      h(
        'button',
        {
          type: 'button',
          class: cls,
          onclick: (e) =>
            act(
              e.currentTarget,
              async () => {
                await run();
                await draw().catch(() => {
                  location.hash = '#/messages';
                });
              },
              done,
            ),
        },
        label,
      );
    const path = `/api/messages/${encodeURIComponent(m.id)}`;
    const attempts = m.attempts;
    replace(
      container,
      h('p', {}, h('a', { href: '#/messages' }, '← all messages')),
      h('h1', {}, m.headers?.subject || '(no subject)'),
      h('p', {}, badge(m.state), ' ', `from ${m.device}`, m.upstream ? ` via ${m.upstream}` : '', ' · ', size(m.size), ' · received ', when(m.receivedAt)),
      m.hold
        ? h(
            'div',
            { class: 'card warn', role: 'note' },
            h('h2', {}, 'Why it is held'),
            h('p', {}, m.hold.text),
            h('p', {}, h('strong', {}, 'Fix: '), m.hold.fix),
            h('p', { class: 'muted' }, `held by ${m.hold.owner === 'admin' ? 'an admin' : 'the gateway'} since `, when(m.hold.since)),
          )
        : m.held
          ? h('div', { class: 'card warn', role: 'note' }, h('h2', {}, 'Why it is held'), h('p', {}, m.held.reason))
          : null,
      h(
        'div',
        { class: 'toolbar' },
        m.state === 'held' ? action('Release', () => post(`${path}/release`), 'Released for delivery') : null,
        ['deferred', 'failed', 'held', 'partly-failed'].includes(m.state) ? action('Retry now', () => post(`${path}/retry`), 'Trying now') : null,
        ['queued', 'deferred'].includes(m.state) ? action('Hold', () => post(`${path}/hold`, {}), 'Held') : null,
        action(
          'Delete',
          async () => {
            if (!confirm('Delete this message and its body?')) throw new Error('not deleted');
            await del(path);
            location.hash = '#/messages';
          },
          'Deleted',
          'danger',
        ),
      ),
      h('h2', {}, 'Envelope'),
      h(
        'dl',
        { class: 'facts' },
        fact('Envelope sender', m.envelope.mailFrom || '(empty)'),
        fact('Recipients', m.envelope.rcptTo.join(', ')),
        fact('From header', m.headers?.from),
        fact('To header', m.headers?.to),
        fact('Message-ID', m.headers?.messageId),
        fact(
          'Printer',
          `${m.client.address}${m.client.heloName ? ` (${m.client.heloName})` : ''}${m.client.authMethod ? `, logged in with ${m.client.authMethod}` : ''}`,
        ),
        fact('Queue id', m.id),
        fact('SHA-256', m.sha256),
      ),
      h('h2', {}, 'Recipients'),
      table(
        '!Recipients',
        ['Address', 'State', 'Upstream reply', 'At'],
        m.recipients.map((r) =>
          h('tr', {}, h('td', {}, r.address), h('td', {}, r.state), h('td', { class: 'reply' }, r.response ?? ''), h('td', {}, r.at ? when(r.at) : '')),
        ),
      ),
      h('h2', {}, 'Attempts'),
      Array.isArray(attempts)
        ? table(
            '!Delivery attempts',
            ['At', 'Upstream', 'Outcome', "Upstream's reply"],
            attempts.map((a) =>
              h(
                'tr',
                {},
                h('td', {}, when(a.at)),
                h('td', {}, a.upstream),
                h('td', {}, badge(a.outcome)),
                h('td', { class: 'reply' }, a.reply ?? [a.responseCode, a.code].filter(Boolean).join(' ')),
              ),
            ),
            'Not attempted yet.',
          )
        : h(
            'p',
            {},
            `${attempts} attempt${attempts === 1 ? '' : 's'}`,
            m.lastError ? [h('br'), 'Last upstream reply: ', h('span', { class: 'reply' }, m.lastError.message)] : '',
            m.upstreamResponse ? [h('br'), "Upstream's reply: ", h('span', { class: 'reply' }, m.upstreamResponse)] : '',
          ),
      m.nextAttemptAt ? h('p', {}, 'Next attempt ', when(m.nextAttemptAt)) : null,
      m.failReason ? h('p', { class: 'error' }, `Failed: ${m.failReason}`) : null,
    );
  };
  await draw();
  const timer = setInterval(() => document.visibilityState === 'visible' && state.active && draw().catch(() => {}), 2000);
  return () => clearInterval(timer);
}

function fact(label, value) {
  if (value === undefined || value === '') return null;
  return [h('dt', {}, label), h('dd', {}, value)];
}
