// Small DOM helpers. Text always goes in as text (never as HTML), so nothing from the API can inject markup.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'class') element.className = value;
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** "10:32" today, "Mon 10:32" this week, else the date; the full time in the title. */
export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  const date = new Date(iso);
  const now = new Date();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  let text = time;
  if (date.toDateString() !== now.toDateString()) {
    text = now - date < 6 * 86_400_000 ? `${date.toLocaleDateString([], { weekday: 'short' })} ${time}` : `${date.toLocaleDateString()} ${time}`;
  }
  return h('time', { datetime: iso, title: date.toLocaleString() }, text);
}

export function size(bytes) {
  if (bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

// Printer words, message states (queue/states.ts) and upstream states (delivery/upstream-states.ts);
// test/deploy/docs.test.ts checks every upstream state has its badge.
const STATE_CLASS = {
  Operating: 'good',
  'Connection in progress': 'busy',
  'Not connected': 'idle',
  'Unable to connect': 'bad',
  Stop: 'bad',
  delivered: 'good',
  queued: 'busy',
  delivering: 'busy',
  deferred: 'warn',
  held: 'warn',
  'partly-failed': 'bad',
  failed: 'bad',
  quarantined: 'bad',
  up: 'good',
  unknown: 'idle',
  'auth-failed': 'bad',
  unreachable: 'bad',
  'quota-paused': 'warn',
  'tls-failed': 'bad',
};

export function badge(word) {
  return h('span', { class: `badge ${STATE_CLASS[word] ?? 'idle'}` }, word);
}

let noticeTimer;
/** A message in the live region (read out by screen readers). */
export function notify(text, kind = 'info') {
  const region = document.getElementById('notice');
  replace(region, h('p', { class: `notice ${kind}` }, text));
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => region.replaceChildren(), kind === 'error' ? 15000 : 6000);
}

/** Runs an action from a button: disables it meanwhile, reports the outcome. */
export async function act(button, action, done) {
  button.disabled = true;
  try {
    const result = await action();
    if (done) notify(typeof done === 'function' ? done(result) : done, 'ok');
    return result;
  } catch (err) {
    notify(err.message, 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function table(caption, headers, rows, empty = 'Nothing here yet.') {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  // On a phone each row becomes a card, each cell labelled with its column's title (style.css).
  for (const row of rows) {
    for (const [i, cell] of [...row.children].entries()) if (headers[i] && !cell.dataset.label) cell.dataset.label = headers[i];
  }
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: caption.startsWith('!') ? 'visually-hidden' : '' }, caption.replace(/^!/, '')),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((title) => h('th', { scope: 'col' }, title)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', { id: hintId }, hint) : null);
}

/** "Reload configuration" (same as SIGHUP): after fixing a password file or the config. */
export function reloadButton(post, after) {
  return h(
    'button',
    {
      type: 'button',
      class: 'quiet',
      title: 'read the config file again (like SIGHUP); a bad file is refused and the running config kept',
      onclick: (e) =>
        act(
          e.currentTarget,
          async () => {
            const result = await post('/api/reload');
            await after?.();
            return result;
          },
          (r) => `Configuration reloaded: ${r.devices} devices, ${r.upstreams} upstreams`,
        ),
    },
    'Reload configuration',
  );
}
