import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { OAuth2TokenError, OAuth2TokenProvider } from '../../../src/delivery/oauth2.js';

describe('OAuth2TokenProvider', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /** A token endpoint answering with `respond(form)`; returns its URL and the forms it received. */
  async function endpoint(respond: (form: URLSearchParams, n: number) => [number, object]) {
    const forms: URLSearchParams[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        forms.push(form);
        const [status, data] = respond(form, forms.length);
        setTimeout(() => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(data));
        }, 20);
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/common/oauth2/v2.0/token`, forms };
  }

  const provider = (url: string, extra: { scope?: string; now?: () => number } = {}) =>
    new OAuth2TokenProvider(
      {
        user: 'scanner@contoso.example',
        clientId: 'cid',
        clientSecret: 'secret',
        refreshToken: 'rt-1',
        tokenUrl: url,
        scope: extra.scope,
        requestTimeoutMs: 5_000,
      },
      pino({ level: 'silent' }),
      extra.now,
    );

  it('sends the M365 scope, caches the token, refreshes concurrently once, and keeps a rotated refresh token', async () => {
    const { url, forms } = await endpoint((_form, n) => [200, { access_token: `at-${n}`, expires_in: 3600, refresh_token: `rt-${n + 1}` }]);
    let now = 1_000_000;
    const tokens = provider(url, { scope: 'https://outlook.office.com/SMTP.Send offline_access', now: () => now });
    const [a, b] = await Promise.all([tokens.getAccessToken(false), tokens.getAccessToken(false)]);
    expect(a.accessToken).toBe('at-1');
    expect(b.accessToken).toBe('at-1');
    expect(a.expires).toBe(now + 3_600_000);
    expect(forms).toHaveLength(1);
    expect(forms[0].get('scope')).toBe('https://outlook.office.com/SMTP.Send offline_access');
    expect((await tokens.getAccessToken(false)).accessToken).toBe('at-1');
    expect((await tokens.getAccessToken(true)).accessToken).toBe('at-2');
    expect(forms[1].get('refresh_token')).toBe('rt-2');
    now += 3_600_000 - 30_000; // inside the expiry margin
    expect((await tokens.getAccessToken(false)).accessToken).toBe('at-3');
  });

  it('invalid_grant is permanent (tokenRejected), a 5xx is not', async () => {
    let answer: [number, object] = [400, { error: 'invalid_grant', error_description: 'AADSTS70008: The refresh token has expired.' }];
    const { url } = await endpoint(() => answer);
    const tokens = provider(url);
    const refused = await tokens.getAccessToken(false).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OAuth2TokenError);
    expect(refused).toMatchObject({ code: 'EOAUTH2', tokenRejected: true, message: expect.stringContaining('invalid_grant (AADSTS70008') });
    answer = [503, { error: 'temporarily_unavailable' }];
    await expect(tokens.getAccessToken(false)).rejects.toMatchObject({ tokenRejected: false });
  });

  it('an unreachable endpoint is temporary', async () => {
    const { url } = await endpoint(() => [200, {}]);
    server!.closeAllConnections();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await expect(provider(url).getAccessToken(false)).rejects.toMatchObject({ tokenRejected: false, message: expect.stringContaining('unreachable') });
  });
});
