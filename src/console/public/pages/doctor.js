// Printer doctor: pick a device, watch, scan on the printer, and see its next sessions step by step as
// they happen (server-sent events from /api/watch), each failing step with what to change.
import { get } from '../api.js';
import { badge, field, h, replace, when } from '../ui.js';

/** Sessions kept on screen; older ones scroll away so a long watch stays light. */
const MAX_SESSIONS_SHOWN = 20;

export async function renderDoctor(container, args, state) {
  const devices = await get('/api/devices');
  const picker = h(
    'select',
    { name: 'device' },
    devices.items.map((d) => h('option', { value: d.name, selected: d.name === args[0] }, d.name)),
  );
  const button = h('button', { type: 'submit' }, 'Watch');
  const status = h('p', { class: 'muted', role: 'status' }, 'Pick a printer and press Watch, then scan a page on it.');
  const log = h('ol', { class: 'sessions', reversed: true });
  const sessions = new Map();
  let source;

  const stop = () => {
    source?.close();
    source = undefined;
    button.textContent = 'Watch';
    picker.disabled = false;
  };
  const sessionBox = (id, first) => {
    let box = sessions.get(id);
    if (box) return box;
    const steps = h('ol', { class: 'steps' });
    const item = h(
      'li',
      { class: 'session card', 'data-session': id },
      h('h3', {}, `${first.protocol?.toUpperCase() ?? 'SMTP'} session from ${first.remoteAddress ?? '?'} `, when(first.at)),
      steps,
    );
    box = { item, steps };
    sessions.set(id, box);
    log.prepend(item);
    while (sessions.size > MAX_SESSIONS_SHOWN) {
      const [oldest, value] = sessions.entries().next().value;
      value.item.remove();
      sessions.delete(oldest);
    }
    return box;
  };
  const start = () => {
    stop();
    const device = picker.value;
    if (!device) return;
    sessions.clear();
    log.replaceChildren();
    source = new EventSource(`/api/watch?device=${encodeURIComponent(device)}`);
    button.textContent = 'Stop';
    picker.disabled = true;
    status.textContent = `Connecting to ${device}...`;
    source.addEventListener('open', () => {
      status.textContent = `Watching ${device}: scan a page on the printer now. Steps appear here as they happen.`;
    });
    source.addEventListener('error', () => {
      status.textContent =
        source?.readyState === EventSource.CLOSED ? 'The watch ended (logged out, or the device is gone).' : 'Connection lost; reconnecting...';
    });
    source.addEventListener('step', (event) => {
      const step = JSON.parse(event.data);
      sessionBox(step.sessionId, step).steps.append(stepItem(step));
    });
    source.addEventListener('delivery', (event) => {
      const d = JSON.parse(event.data);
      const item = deliveryItem(d);
      if (d.sessionId && sessions.has(d.sessionId)) sessions.get(d.sessionId).steps.append(item);
      else sessionBox(`message-${d.id}`, { messageId: d.id, at: d.at }).steps.append(item);
    });
  };

  replace(
    container,
    h('h1', {}, 'Printer doctor'),
    h(
      'form',
      {
        class: 'card inline',
        onsubmit: (event) => {
          event.preventDefault();
          if (source) stop();
          else start();
        },
      },
      field('Printer', picker),
      button,
    ),
    status,
    devices.items.length === 0 ? h('p', {}, 'No printers yet: add one on the Devices page.') : null,
    log,
  );
  if (args[0] && devices.items.some((d) => d.name === args[0])) start();
  return () => {
    state.active = false;
    stop();
  };
}

const STEP_NAMES = {
  connect: 'Connect',
  helo: 'Greeting',
  starttls: 'STARTTLS',
  auth: 'Login',
  mail: 'Sender',
  rcpt: 'Recipient',
  data: 'Data',
  queued: 'Accepted',
  refused: 'Refused',
  quit: 'Quit',
  timeout: 'Timeout',
  closed: 'Closed',
};

function stepItem(step) {
  return h(
    'li',
    { class: `step ${step.ok ? 'ok' : 'failed'}`, 'data-step': step.step },
    h('span', { class: 'step-mark', 'aria-hidden': 'true' }, step.ok ? '✓' : '✗'),
    h('span', { class: 'visually-hidden' }, step.ok ? 'ok: ' : 'failed: '),
    h('strong', {}, STEP_NAMES[step.step] ?? step.step),
    ' ',
    h('span', { class: 'detail' }, step.detail),
    ' ',
    h('small', { class: 'muted' }, when(step.at)),
    step.explanation
      ? h(
          'div',
          { class: 'explanation', role: 'note' },
          h('p', {}, h('strong', {}, 'Problem: '), step.explanation.problem),
          h('p', {}, h('strong', {}, 'Fix: '), step.explanation.fix),
        )
      : null,
  );
}

function deliveryItem(d) {
  const ok = d.outcome === 'delivered' || d.outcome === 'queued';
  return h(
    'li',
    { class: `step ${ok ? 'ok' : 'failed'}`, 'data-step': `delivery-${d.outcome}` },
    h('span', { class: 'step-mark', 'aria-hidden': 'true' }, ok ? '✓' : '✗'),
    h('strong', {}, d.outcome === 'queued' ? 'Queued' : `Upstream: ${d.outcome}`),
    ' ',
    badge(d.outcome),
    ' ',
    h('a', { href: `#/messages/${d.id}` }, d.id),
    d.upstream ? ` via ${d.upstream}` : '',
    d.reply ? h('div', { class: 'reply' }, d.reply) : null,
    ' ',
    h('small', { class: 'muted' }, when(d.at)),
  );
}
