// The console shell: login, navigation (#/page/arg), and one page module per screen.
import { api, whenUnauthorized } from './api.js';
import { h, notify, replace } from './ui.js';
import { renderOverview } from './pages/overview.js';
import { renderDevices } from './pages/devices.js';
import { renderMessages } from './pages/messages.js';
import { renderUpstreams } from './pages/upstreams.js';
import { renderDoctor } from './pages/doctor.js';

const PAGES = {
  overview: renderOverview,
  devices: renderDevices,
  messages: renderMessages,
  upstreams: renderUpstreams,
  doctor: renderDoctor,
};

const page = document.getElementById('page');
const login = document.getElementById('login');
const nav = document.getElementById('nav');
const logout = document.getElementById('logout');
/** The page being shown; its cleanup (timers, event streams) runs when another page comes. */
let current = { cleanup: undefined };

function showLogin(message) {
  current.active = false;
  current.cleanup?.();
  current = { cleanup: undefined };
  page.replaceChildren();
  nav.hidden = true;
  logout.hidden = true;
  login.hidden = false;
  document.getElementById('login-error').textContent = message ?? '';
  document.getElementById('token').focus();
}

whenUnauthorized((message) => showLogin(message ?? 'Your session has ended: log in again.'));

document.getElementById('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('token');
  const error = document.getElementById('login-error');
  error.textContent = '';
  try {
    await api('POST', '/api/session', { token: input.value.trim() });
    input.value = '';
    login.hidden = true;
    await route();
  } catch (err) {
    error.textContent = err.status === 401 ? 'That is not an admin token. It is in data/admin-token (or admin.tokens in the config).' : err.message;
    input.select();
  }
});

logout.addEventListener('click', async () => {
  try {
    await api('DELETE', '/api/session');
  } catch {
    // Already ended: the login form is what we want either way.
  }
  showLogin('Logged out.');
});

async function route() {
  const [path, search = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [first, ...rest] = path.split('/');
  const name = PAGES[first] ? first : 'overview';
  const render = PAGES[name];
  current.active = false;
  current.cleanup?.();
  const state = { cleanup: undefined, active: true, params: new URLSearchParams(search) };
  current = state;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  try {
    await api('GET', '/api/session');
  } catch (err) {
    if (err.status === 401) showLogin();
    else notify(err.message, 'error');
    return;
  }
  login.hidden = true;
  nav.hidden = false;
  logout.hidden = false;
  const container = h('div', { class: 'page' });
  replace(page, container);
  try {
    state.cleanup = await render(container, rest.map(decodeURIComponent), state);
    // Navigated away while this page was loading: stop what it started.
    if (!state.active) state.cleanup?.();
  } catch (err) {
    if (err.status === 401) return;
    replace(container, h('p', { class: 'error', role: 'alert' }, `Could not load this page: ${err.message}`));
  }
  document.getElementById('main').focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
route();
