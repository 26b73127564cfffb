// Overview: scans today and this week per device, failures, held scans, a 14-day chart (GET /api/stats).
import { get, post } from '../api.js';
import { h, reloadButton, replace, table } from '../ui.js';

export async function renderOverview(container, _args, state) {
  const draw = async () => {
    const stats = await get('/api/stats').catch((err) => (err.status === 404 ? fallbackStats() : Promise.reject(err)));
    const sum = (key, period) => stats.devices.reduce((total, d) => total + (d[period]?.[key] ?? 0), 0);
    replace(
      container,
      h('h1', {}, 'Overview'),
      h('div', { class: 'toolbar no-print' }, reloadButton(post, draw)),
      h(
        'div',
        { class: 'cards' },
        card('Scans today', sum('received', 'today'), `${sum('delivered', 'today')} delivered`),
        card('This week', sum('received', 'week'), `${sum('delivered', 'week')} delivered`),
        card('Failed today', sum('failed', 'today'), `${sum('failed', 'week')} this week`, sum('failed', 'today') > 0 ? 'bad' : ''),
        card('Held', stats.queue.held ?? 0, 'waiting for you', (stats.queue.held ?? 0) > 0 ? 'warn' : '', '#/messages?state=held'),
        card('Waiting', (stats.queue.queued ?? 0) + (stats.queue.deferred ?? 0) + (stats.queue.delivering ?? 0), `${stats.queue.deferred ?? 0} deferred`),
      ),
      h('h2', {}, 'Last 14 days'),
      chart(stats.daily ?? []),
      h('h2', {}, 'Per device'),
      table(
        '!Scans per device',
        ['Device', 'Today', 'Failed today', 'This week', 'Failed this week'],
        stats.devices.map((d) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, h('a', { href: `#/devices/${encodeURIComponent(d.device)}` }, d.device)),
            h('td', {}, d.today.received),
            h('td', {}, d.today.failed),
            h('td', {}, d.week.received),
            h('td', {}, d.week.failed),
          ),
        ),
        'No devices yet: add one on the Devices page.',
      ),
      h('p', { class: 'muted' }, `Days in ${stats.timeZone}; figures from ${new Date(stats.generatedAt).toLocaleTimeString()}.`),
    );
  };
  await draw();
  const timer = setInterval(() => document.visibilityState === 'visible' && state.active && draw().catch(() => {}), 10_000);
  return () => clearInterval(timer);
}

/** A gateway without GET /api/stats: the same shape from the device counters and the queue. */
async function fallbackStats() {
  const [devices, queue] = await Promise.all([get('/api/devices'), get('/api/queue/stats')]);
  const since = (d) => ({ received: d.status.counts.received, delivered: d.status.counts.delivered, failed: d.status.counts.failed });
  return {
    generatedAt: new Date().toISOString(),
    timeZone: 'counted since the gateway started',
    devices: devices.items.map((d) => ({ device: d.name, today: since(d), week: since(d) })),
    queue: queue.counts,
    daily: [],
  };
}

function card(title, value, note, kind = '', href) {
  const body = [h('span', { class: 'card-title' }, title), h('strong', { class: 'card-value' }, value), h('span', { class: 'muted' }, note)];
  return href ? h('a', { class: `card stat ${kind}`, href }, body) : h('div', { class: `card stat ${kind}` }, body);
}

/** Bars of delivered (and failed, stacked) per day as inline SVG, with a text table for screen readers. */
function chart(days) {
  const width = 28 * Math.max(days.length, 1);
  const height = 120;
  const max = Math.max(1, ...days.map((d) => d.delivered + d.failed));
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height + 18}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Delivered and failed scans per day, ${days.length} days`);
  days.forEach((day, i) => {
    const x = i * 28 + 4;
    const delivered = (day.delivered / max) * height;
    const failed = (day.failed / max) * height;
    for (const [cls, y, hgt] of [
      ['bar-ok', height - delivered, delivered],
      ['bar-bad', height - delivered - failed, failed],
    ]) {
      if (hgt <= 0) continue;
      const rect = document.createElementNS(svgNs, 'rect');
      rect.setAttribute('x', x);
      rect.setAttribute('y', y);
      rect.setAttribute('width', 20);
      rect.setAttribute('height', hgt);
      rect.setAttribute('class', cls);
      const title = document.createElementNS(svgNs, 'title');
      title.textContent = `${day.day}: ${day.delivered} delivered, ${day.failed} failed`;
      rect.append(title);
      svg.append(rect);
    }
    const label = document.createElementNS(svgNs, 'text');
    label.setAttribute('x', x + 10);
    label.setAttribute('y', height + 14);
    label.setAttribute('class', 'chart-label');
    label.textContent = day.day.slice(8);
    svg.append(label);
  });
  return h(
    'figure',
    { class: 'chart-box' },
    svg,
    h('figcaption', { class: 'muted' }, h('span', { class: 'key ok' }, 'delivered'), ' ', h('span', { class: 'key bad' }, 'failed')),
  );
}
