/**
 * The web console in a real browser: Debian's chromium through playwright-core, headless, against a gateway
 * started here on 127.0.0.1 with the real TLS+AUTH upstream stand-in. Each test is a task an office admin
 * does: log in, watch a printer turn Operating, add a printer and use the credentials it shows, find a
 * scan by subject, release a held scan, watch a device in the printer doctor.
 * SCANRELAY_SCREENSHOTS=1 also writes a screenshot of each page into docs/ (not on every run).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_DEVICE,
  TestUpstream,
  browserUnavailable,
  launchBrowser,
  makeTempDir,
  sendToGateway,
  sessionSteps,
  startTestGateway,
  upstreamEntry,
  waitFor,
  writeCaFile,
  type TestGateway,
} from '../kit/index.js';
import { deviceTransport } from '../kit/inbound-scope.js';

const TOKEN = 'test-admin-token-0123456789';
const SCREENSHOTS = process.env.SCANRELAY_SCREENSHOTS === '1';
const skipReason = browserUnavailable();

describe.skipIf(skipReason !== undefined)('web console in chromium', () => {
  let g: TestGateway;
  let up: TestUpstream;
  let caDir: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  /** Requests to anywhere but this gateway (the console must work on a LAN without internet). */
  const external: string[] = [];

  beforeAll(async () => {
    up = await TestUpstream.start({ mode: 'tls' });
    caDir = await makeTempDir('scanrelay-ca-');
    g = await startTestGateway({
      devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
      upstreams: [upstreamEntry(up, await writeCaFile(caDir))],
      delivery: { retryBase: '200ms', retryMax: '2s' },
    });
    base = `http://127.0.0.1:${g.addresses.admin?.port}`;
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.on('request', (request) => {
      if (!request.url().startsWith(`${base}/`) && !request.url().startsWith('data:')) external.push(request.url());
    });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await g?.stop();
    await up?.close();
    if (caDir) await rm(caDir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json().catch(() => undefined)) as any };
  };

  const screenshot = async (name: string) => {
    if (!SCREENSHOTS) return;
    await mkdir('docs/screenshots', { recursive: true });
    await page.screenshot({ path: join('docs/screenshots', `console-${name}.png`), fullPage: true });
  };

  /** Every form control has a name a screen reader can say. */
  // Page-side code is given as text: the test program is compiled without the DOM library.
  const unlabelledControls = () =>
    page.evaluate<string[]>(`[...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden')
      .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML)`);

  it('logs in with the admin token typed into the form; the cookie is httpOnly and the URL never holds the token', async () => {
    await page.goto(`${base}/`);
    const timing = await page.evaluate<{ responseEnd: number; domContentLoaded: number; load: number }>(`(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return { responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd };
    })()`);
    await page.getByLabel('Admin token').fill(TOKEN);
    const started = Date.now();
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).or(page.getByText('Could not load this page')).first().waitFor();
    const firstPageMs = Date.now() - started;
    const resources = await page.evaluate<number>(
      `performance.getEntriesByType('resource').filter((r) => /\\.(js|css)$/.test(r.name)).reduce((sum, r) => sum + r.encodedBodySize, 0)`,
    );
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const warm = await page.evaluate<{ domContentLoaded: number; load: number }>(`(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return { domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd };
    })()`);
    console.info(
      `console load on this machine: HTML ${timing.responseEnd.toFixed(0)} ms, DOMContentLoaded ${timing.domContentLoaded.toFixed(0)} ms, load ${timing.load.toFixed(0)} ms; login to first page ${firstPageMs} ms; reload: DOMContentLoaded ${warm.domContentLoaded.toFixed(0)} ms; ${resources} bytes of JS/CSS`,
    );
    expect(page.url()).not.toContain(TOKEN);
    expect(page.url()).not.toContain('token=');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'scanrelay_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(session?.value).not.toContain(TOKEN);
    expect(await page.evaluate<string>('document.cookie')).toBe('');
    expect(await page.locator('#nav').isVisible()).toBe(true);
  });

  it("shows a device's status move to Operating after a real SMTP send", async () => {
    await page.goto(`${base}/#/devices`);
    const row = page.locator(`tr[data-device="${TEST_DEVICE.name}"]`);
    await row.locator('td.status').getByText('Not connected').waitFor();
    await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'First floor scan' });
    await waitFor(() => up.received.length === 1, { what: 'the upstream to receive the scan' });
    await row.locator('td.status').getByText('Operating').waitFor({ timeout: 15_000 });
    expect(await unlabelledControls()).toEqual([]);
  });

  it('adds a printer and shows credentials that log in over SMTP', async () => {
    await page.goto(`${base}/#/devices`);
    await page.getByLabel('Name', { exact: true }).fill('lobby-copier');
    await page.getByLabel('Allowed recipients').fill('*@example.org');
    await page.getByLabel('Upstream account').selectOption('gmail-test');
    await page.getByRole('button', { name: 'Add printer' }).click();
    const sheet = page.locator('.sheet');
    await sheet.waitFor();
    const value = async (label: string) => ((await sheet.locator(`td[data-field="${label}"]`).textContent()) ?? '').trim();
    const login = await value('Login Name');
    const password = await value('Password');
    expect(await value('SMTP Server Port Number')).toBe(String(g.smtpPort));
    expect(await value('Email Send Authentication')).toBe('SMTP AUTH (Auto)');
    expect(login.length).toBeLessThanOrEqual(63);
    expect(password.length).toBeLessThanOrEqual(31);
    await screenshot('devices');

    // The printout holds the sheet and nothing else of the page.
    await page.evaluate<void>(`document.body.classList.add('printing-sheet')`);
    await page.emulateMedia({ media: 'print' });
    expect(await sheet.isVisible()).toBe(true);
    expect(await page.getByRole('button', { name: 'Add printer' }).isVisible()).toBe(false);
    expect(await page.locator('#nav').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Print setup sheet' }).isVisible()).toBe(false);
    await page.emulateMedia({ media: 'screen' });
    await page.evaluate<void>(`document.body.classList.remove('printing-sheet')`);

    // The printer's side: log in with exactly what the sheet says.
    const transport = deviceTransport(g.smtpPort, { user: login, pass: password, method: 'LOGIN' });
    try {
      const info = await transport.sendMail({ from: 'lobby@example.org', to: 'someone@example.org', subject: 'From the lobby', text: 'scan' });
      expect(info.response).toMatch(/^250 /);
    } finally {
      transport.close();
    }
    await waitFor(() => up.received.some((m) => m.raw.toString().includes('From the lobby')), { what: 'the lobby scan upstream' });
    await page.locator('tr[data-device="lobby-copier"] td.status').getByText('Operating').waitFor();
  });

  it('finds a message by subject', async () => {
    await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'Quarterly budget scan' });
    await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'Lunch menu' });
    await page.goto(`${base}/#/messages`);
    await page.getByLabel('Subject contains').fill('quarterly');
    await page.getByLabel('From', { exact: true }).fill('last 2 hours');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('#message-total').getByText('1 message match').waitFor();
    const rows = page.locator('tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('Quarterly budget scan');
    expect(await unlabelledControls()).toEqual([]);
    await screenshot('messages');
  });

  it('releases a held scan and shows it delivered', async () => {
    // The upstream is down, so the scan waits (deferred); an admin holds it (API, as the CLI would).
    await up.down();
    let id: string;
    try {
      id = await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'Annex scan' });
      await waitFor(async () => (await api('POST', `/api/messages/${id}/hold`, { note: 'checking the recipient first' })).status === 200, {
        what: 'an admin hold (409 while an attempt is running)',
      });
    } finally {
      // Later tests need the upstream, whatever happened here.
      await up.resume();
    }

    await page.goto(`${base}/#/messages/${id}`);
    await page.getByRole('heading', { name: 'Why it is held' }).waitFor();
    await screenshot('message-held');
    await page.getByRole('button', { name: 'Release' }).click();
    await page.locator('.badge', { hasText: 'delivered' }).first().waitFor({ timeout: 15_000 });
    expect(up.received.some((m) => m.raw.toString().includes('Annex scan'))).toBe(true);
  });

  it("watches a device and shows its session steps, a failed AUTH with its explanation, and the upstream's reply", async () => {
    await page.goto(`${base}/#/doctor/${TEST_DEVICE.name}`);
    await page.getByText(`Watching ${TEST_DEVICE.name}`).waitFor();
    await waitFor(() => g.gateway.events.listenerCount('session.step') > 0, { what: 'the watcher' });
    // The login recorder's events, as the inbound server emits them.
    const step = sessionSteps('browser-s1');
    const events = g.gateway.events;
    events.emit('session.step', step('connect', { detail: 'connection from 127.0.0.1' }));
    events.emit('session.step', step('helo', { detail: 'EHLO workcentre-6505' }));
    events.emit('session.step', step('auth', { ok: false, device: TEST_DEVICE.name, reason: 'unknown-user', detail: 'AUTH LOGIN as scanner-2F' }));
    events.emit('session.step', step('closed', { detail: 'closed by the printer' }));
    const failed = page.locator('li.step.failed[data-step="auth"]');
    await failed.waitFor();
    expect(await failed.locator('.explanation').textContent()).toMatch(/the login name is unknown[\s\S]*exactly "scanner-2f"/);
    expect(await page.locator('li.session[data-session="browser-s1"] li.step').count()).toBe(4);

    await sendToGateway(g.smtpPort, { to: 'someone@example.org', subject: 'Doctor scan' });
    await page.locator('li.step[data-step="delivery-delivered"]').first().waitFor();
    await screenshot('doctor');
  });

  it('verifies an upstream and shows its own reply', async () => {
    await page.goto(`${base}/#/upstreams`);
    await page.getByRole('button', { name: 'Verify login' }).click();
    await page.locator('.reply-box').getByText('Verify:').waitFor();
    expect(await page.locator('.reply-box .badge').textContent()).toBe('up');
    await screenshot('upstreams');
  });

  it.runIf(SCREENSHOTS)('takes screenshots of the overview, and of a phone-sized devices page', async () => {
    await page.goto(`${base}/#/overview`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await screenshot('overview');
    await page.goto(`${base}/#/messages`);
    await page.locator('#message-total').waitFor();
    await screenshot('messages');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/#/devices`);
    await page.locator('tr[data-device]').first().waitFor();
    await screenshot('devices-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('serves Swagger UI at /docs from this gateway, and nothing ever came from elsewhere', async () => {
    await page.goto(`${base}/docs`);
    await page.getByText('scanrelay admin API').first().waitFor();
    await page.getByText('/api/watch').first().waitFor();
    expect(external).toEqual([]);
  });

  it('logs out: the session ends and the console asks for the token again', async () => {
    await page.goto(`${base}/#/devices`);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Admin token').waitFor();
    const status = await page.evaluate<number>(`fetch('/api/devices').then((r) => r.status)`);
    expect(status).toBe(401);
    // And back in with the keyboard alone: the token field has the focus, Enter submits.
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Enter');
    await page.locator('#nav').waitFor();
    // Polled through page.evaluate (the devtools protocol): waitForFunction compiles its predicate inside the
    // page, which the console's CSP (no eval) may refuse.
    await expect.poll(() => page.evaluate<string | undefined>('document.activeElement?.id'), { timeout: 10_000 }).toBe('main');
    // The focus moved to the page's content, so the next Tab is the page's first control, not the menu.
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Refresh');
  });
});
