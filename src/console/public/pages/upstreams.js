// Upstreams: state, what security `auto` chose, quota pause and its end, sent today against the daily
// limit; verify and send-a-test show the upstream's own reply.
import { get, post } from '../api.js';
import { act, badge, field, h, reloadButton, replace, when } from '../ui.js';

export async function renderUpstreams(container) {
  const list = await get('/api/upstreams');
  replace(
    container,
    h('h1', {}, 'Upstreams'),
    h(
      'div',
      { class: 'toolbar' },
      reloadButton(post, () => renderUpstreams(container)),
    ),
    list.items.length === 0 ? h('p', { class: 'muted' }, 'No upstream account is configured: add one under upstreams: in the config file, then reload.') : null,
    h('div', { class: 'cards wide' }, list.items.map(upstreamCard)),
  );
  return undefined;
}

function upstreamCard(u) {
  const reply = h('div', { class: 'reply-box', 'aria-live': 'polite' });
  const showResult = (what, result) =>
    replace(
      reply,
      h(
        'p',
        {},
        h('strong', {}, `${what}: `),
        result.ok ? badge('up') : badge('failed'),
        result.port ? ` port ${result.port}` : '',
        result.security ? ` ${result.security}` : '',
        ` (${Math.round(result.durationMs)} ms)`,
      ),
      h(
        'pre',
        { class: 'reply' },
        result.ok ? (result.response ?? 'accepted') : [result.error?.responseCode, result.error?.code, result.error?.message].filter(Boolean).join(' '),
      ),
    );
  const to = h('input', { type: 'email', name: 'to', required: true, placeholder: 'you@example.org', autocomplete: 'email' });
  const name = encodeURIComponent(u.name);
  const chosen = u.securityChosen ?? u.activeSecurity;
  const limit = u.dailyLimit;
  const sent = u.sentToday;
  const paused = u.quotaPausedUntil ?? u.pausedUntil;
  return h(
    'section',
    { class: 'card', 'aria-labelledby': `up-${u.name}` },
    h('h2', { id: `up-${u.name}` }, u.name, ' ', badge(u.state)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Account'),
      h('dd', {}, u.user, ` (${u.auth === 'oauth2' ? 'OAuth2' : 'app password'})`),
      h('dt', {}, 'Server'),
      h('dd', {}, `${u.host}:${u.activePort ?? u.port}`),
      h('dt', {}, 'Security'),
      h('dd', {}, u.security === 'auto' ? `auto: ${chosen ? `chose ${chosen === 'tls' ? 'TLS (465)' : 'STARTTLS (587)'}` : 'not chosen yet'}` : u.security),
      h('dt', {}, 'Sent today'),
      h(
        'dd',
        {},
        sent === undefined
          ? 'not counted'
          : limit
            ? [h('meter', { min: 0, max: limit, value: sent, 'aria-label': 'sent today against the daily limit' }), ` ${sent} of ${limit}`]
            : String(sent),
      ),
      paused ? [h('dt', {}, 'Paused until'), h('dd', { class: 'warn-text' }, when(paused))] : null,
      h('dt', {}, 'Waiting'),
      h('dd', {}, `${u.waiting} message${u.waiting === 1 ? '' : 's'}${u.held ? `, ${u.held} held` : ''}`),
      h('dt', {}, 'Last success'),
      h('dd', {}, when(u.lastSuccessAt)),
      u.lastError ? [h('dt', {}, 'Last error'), h('dd', {}, h('span', { class: 'reply' }, u.lastError.message), ' ', when(u.lastError.at))] : null,
    ),
    h(
      'div',
      { class: 'toolbar' },
      h(
        'button',
        { type: 'button', onclick: (e) => act(e.currentTarget, async () => showResult('Verify', await post(`/api/upstreams/${name}/verify`))) },
        'Verify login',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'quiet',
          onclick: (e) =>
            act(
              e.currentTarget,
              () => post(`/api/upstreams/${name}/retry`),
              (r) => `Retrying now; ${r.released} held released`,
            ),
        },
        'Retry now',
      ),
    ),
    h(
      'form',
      {
        class: 'inline',
        onsubmit: (event) => {
          event.preventDefault();
          act(event.currentTarget.querySelector('button'), async () =>
            showResult('Test message', await post(`/api/upstreams/${name}/test`, { to: to.value.trim() })),
          );
        },
      },
      field('Send a test to', to),
      h('button', { type: 'submit' }, 'Send test'),
    ),
    reply,
  );
}
