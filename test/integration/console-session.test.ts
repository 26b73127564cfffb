/**
 * The web console's way in: token typed into a form -> session cookie (httpOnly, SameSite=Strict, never the
 * token), CSRF checks on cookie-authenticated changes, logout, idle timeout, token rotation; bearer tokens
 * keep working for the CLI; the console and /docs are served locally.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildTestConfig, startTestGateway, type TestGateway } from '../kit/index.js';

const TOKEN = 'test-admin-token-0123456789';
const CONSOLE = { 'x-scanrelay-console': '1' };
let g: TestGateway | undefined;

afterEach(async () => {
  await g?.stop();
  g = undefined;
});

async function start(raw: Record<string, unknown> = {}) {
  g = await startTestGateway(raw);
  const admin = g.gateway.admin;
  if (!admin) throw new Error('admin disabled');
  return admin;
}

async function login(admin: NonNullable<TestGateway['gateway']['admin']>, token = TOKEN) {
  const answer = await admin.inject({ method: 'POST', url: '/api/session', headers: CONSOLE, payload: { token } });
  const cookie = answer.cookies.find((c) => c.name === 'scanrelay_session');
  return { answer, cookie, id: cookie?.value ?? '' };
}

describe('console login through inject', () => {
  it('answers a valid token with a session cookie that is httpOnly, SameSite=Strict and not the token', async () => {
    const admin = await start();
    const { answer, cookie } = await login(admin);
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toEqual({ authenticated: true, via: 'session', idleTimeoutSeconds: 1800 });
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie?.secure).toBeFalsy();
    expect(cookie?.maxAge).toBeUndefined();
    expect(cookie?.value.length).toBeGreaterThanOrEqual(40);
    const setCookie = String(answer.headers['set-cookie']);
    expect(setCookie).not.toContain(TOKEN);
    expect(answer.body).not.toContain(TOKEN);
    expect(g?.logs.join('\n')).not.toContain(TOKEN);
  });

  it('refuses a wrong token, and a login without the console header', async () => {
    const admin = await start();
    const wrong = await login(admin, 'not-the-token-at-all');
    expect(wrong.answer.statusCode).toBe(401);
    expect(wrong.cookie).toBeUndefined();
    const forged = await admin.inject({ method: 'POST', url: '/api/session', payload: { token: TOKEN } });
    expect(forged.statusCode).toBe(403);
    expect(forged.json().code).toBe('SCANRELAY_ADMIN_CSRF');
    expect(forged.cookies).toEqual([]);
  });

  it('lets the cookie read, and change only with the console header from this origin', async () => {
    const admin = await start();
    const { id } = await login(admin);
    const cookies = { scanrelay_session: id };
    expect((await admin.inject({ method: 'GET', url: '/api/devices', cookies })).statusCode).toBe(200);

    const body = { name: 'csrf-probe', allowRecipients: ['*@example.org'] };
    const noHeader = await admin.inject({ method: 'POST', url: '/api/devices', cookies, payload: body });
    expect(noHeader.statusCode).toBe(403);
    expect(noHeader.json()).toMatchObject({ code: 'SCANRELAY_ADMIN_CSRF', message: expect.stringContaining('x-scanrelay-console') });
    // The console's own change request, sent from the given page origin to the listener at gateway.lan:8025.
    const createFrom = (origin: string) =>
      admin.inject({ method: 'POST', url: '/api/devices', cookies, headers: { ...CONSOLE, origin, host: 'gateway.lan:8025' }, payload: body });
    expect((await createFrom('http://evil.example')).statusCode).toBe(403);
    expect(g?.gateway.devices.get('csrf-probe')).toBeUndefined();
    expect((await createFrom('http://gateway.lan:8025')).statusCode).toBe(201);
  });

  it('keeps bearer tokens working for the CLI without any console header', async () => {
    const admin = await start();
    const answer = await admin.inject({
      method: 'POST',
      url: '/api/devices',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { name: 'cli-made', allowRecipients: ['*@example.org'] },
    });
    expect(answer.statusCode).toBe(201);
    const who = await admin.inject({ method: 'GET', url: '/api/session', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(who.json()).toMatchObject({ via: 'bearer' });
  });

  it('ends the session at logout: the old cookie is refused afterwards', async () => {
    const admin = await start();
    const { id } = await login(admin);
    const cookies = { scanrelay_session: id };
    const out = await admin.inject({ method: 'DELETE', url: '/api/session', cookies, headers: CONSOLE });
    expect(out.statusCode).toBe(204);
    expect(out.cookies.find((c) => c.name === 'scanrelay_session')?.value).toBe('');
    const after = await admin.inject({ method: 'GET', url: '/api/devices', cookies });
    expect(after.statusCode).toBe(401);
    expect(after.json().code).toBe('SCANRELAY_ADMIN_SESSION_EXPIRED');
  });

  it('ends a session left idle longer than admin.sessionIdleTimeout', async () => {
    const admin = await start({ admin: { sessionIdleTimeout: 300 } });
    const { id } = await login(admin);
    const cookies = { scanrelay_session: id };
    expect((await admin.inject({ method: 'GET', url: '/api/session', cookies })).statusCode).toBe(200);
    // Waiting (without requests, which would keep it alive) is the point: the session must end by itself.
    // Not a "nothing happened" sleep: it outlasts a real 300 ms idle timer by a bounded margin, then asserts the end.
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await admin.inject({ method: 'GET', url: '/api/session', cookies })).statusCode).toBe(401);
  });

  it('logs a session out when the token that opened it is no longer accepted', async () => {
    const admin = await start();
    const { id } = await login(admin);
    const cookies = { scanrelay_session: id };
    const gw = g as TestGateway;
    await gw.gateway.reload(buildTestConfig(gw.dataDir, { admin: { tokens: ['a-brand-new-admin-token-987654'] } }));
    expect((await admin.inject({ method: 'GET', url: '/api/devices', cookies })).statusCode).toBe(401);
  });

  it('refuses an admin token in a URL', async () => {
    const admin = await start();
    for (const url of [`/api/devices?token=${TOKEN}`, `/api/session?access_token=${TOKEN}`, `/?token=${TOKEN}`]) {
      const answer = await admin.inject({ method: 'GET', url });
      expect(answer.statusCode, url).toBe(401);
      expect(answer.json().code).toBe('SCANRELAY_TOKEN_IN_URL');
    }
    expect(g?.logs.join('\n')).not.toContain(TOKEN);
  });
});

describe('console and API docs over http', () => {
  it('serves the console and Swagger UI from this listener only, with a strict CSP', async () => {
    await start();
    const base = `http://127.0.0.1:${g?.addresses.admin?.port}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await page.text();
    expect(html).toContain('<form id="login-form" method="post"');
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const asset of ['/app.js', '/api.js', '/style.css', '/pages/doctor.js']) expect((await fetch(`${base}${asset}`)).status, asset).toBe(200);

    const docs = await fetch(`${base}/docs/`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    const docsHtml = await docs.text();
    expect(docsHtml).toMatch(/swagger/i);
    expect(docsHtml).not.toMatch(/(src|href)="https?:/);
    const spec = await fetch(`${base}/docs/json`);
    expect(((await spec.json()) as { paths: Record<string, unknown> }).paths['/api/watch']).toBeDefined();
  });

  it('logs in through a real browser-style cookie exchange', async () => {
    await start();
    const base = `http://127.0.0.1:${g?.addresses.admin?.port}`;
    const answer = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { ...CONSOLE, 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN }),
    });
    expect(answer.status).toBe(200);
    const setCookie = answer.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^scanrelay_session=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict$/);
    const cookie = setCookie.split(';')[0] ?? '';
    const devices = await fetch(`${base}/api/devices`, { headers: { cookie } });
    expect(devices.status).toBe(200);
  });
});
