import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildTestConfig, makeTempDir, startTestGateway, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { TEST_DEVICE, TestUpstream, sendToGateway, upstreamEntry } from '../kit/upstream.js';

const CLIENT_ID = 'scanrelay-client.apps.example';
const CLIENT_SECRET = 'client-secret-value-123';
const REFRESH_TOKEN = 'refresh-token-value-abc';

/** A local OAuth2 token endpoint (RFC 6749 refresh_token grant) that issues numbered access tokens. */
class TokenEndpoint {
  readonly issued: string[] = [];
  requests = 0;
  refreshToken = REFRESH_TOKEN;
  revoked = false;
  failWith500 = false;
  lastForm?: URLSearchParams;
  private server?: Server;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        this.requests++;
        const form = new URLSearchParams(body);
        this.lastForm = form;
        const reply = (status: number, data: object) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(data));
        };
        if (this.failWith500) return reply(503, { error: 'temporarily_unavailable' });
        if (req.method !== 'POST' || form.get('grant_type') !== 'refresh_token') return reply(400, { error: 'unsupported_grant_type' });
        if (form.get('client_id') !== CLIENT_ID || form.get('client_secret') !== CLIENT_SECRET) return reply(401, { error: 'invalid_client' });
        if (this.revoked || form.get('refresh_token') !== this.refreshToken)
          return reply(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        const token = `access-token-${this.issued.length + 1}`;
        this.issued.push(token);
        reply(200, { access_token: token, expires_in: 3599, token_type: 'Bearer', scope: 'https://mail.google.com/' });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe('OAuth2 (XOAUTH2) upstreams', () => {
  let gw: TestGateway | undefined;
  let upstream: TestUpstream | undefined;
  let tokens: TokenEndpoint | undefined;
  let caDir: string | undefined;

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await upstream?.close();
    upstream = undefined;
    await tokens?.close();
    tokens = undefined;
    if (caDir) await rm(caDir, { recursive: true, force: true });
    caDir = undefined;
  });

  /** The upstream accepts only access tokens the endpoint issued and that are still in `valid`. */
  async function scenario() {
    tokens = await new TokenEndpoint().start();
    const revokedAccessTokens = new Set<string>();
    const endpoint = tokens;
    upstream = await TestUpstream.start({
      mode: 'starttls',
      checkAccessToken: (user, token) => user === upstream!.user && endpoint.issued.includes(token) && !revokedAccessTokens.has(token),
    });
    caDir = await makeTempDir('scanrelay-ca-');
    const raw: RawConfig = {
      devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
      upstreams: [
        upstreamEntry(upstream, await writeCaFile(caDir), {
          auth: 'oauth2',
          password: undefined,
          oauth2: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, tokenUrl: tokens.url },
        }),
      ],
      delivery: { retryBase: '200ms', retryMax: '2s' },
    };
    gw = await startTestGateway(raw);
    return { g: gw, up: upstream, tokens, raw, revokeAccessToken: (token: string) => revokedAccessTokens.add(token) };
  }

  const stateOf = (g: TestGateway, id: string) => g.gateway.queue.get(id)?.state;

  it('authenticates with XOAUTH2 using a token from the refresh token, and reuses it while valid', async () => {
    const { g, up, tokens } = await scenario();
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'delivered', { what: 'first delivered' });
    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    await waitFor(() => stateOf(g, second) === 'delivered', { what: 'second delivered' });
    expect(up.auths.every((a) => a.method === 'XOAUTH2' && a.ok && a.secure && a.username === up.user)).toBe(true);
    expect(up.received.map((m) => m.mailFrom)).toEqual([up.user, up.user]);
    expect(tokens.requests).toBe(1);
    expect(Object.fromEntries(tokens.lastForm!)).toEqual({
      grant_type: 'refresh_token',
      refresh_token: REFRESH_TOKEN,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
    });
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ auth: 'oauth2', state: 'up' });
    const logs = g.logs.join('\n');
    for (const secret of [CLIENT_SECRET, REFRESH_TOKEN, 'access-token-1']) expect(logs).not.toContain(secret);
  });

  it('gets a new access token when the upstream refuses the cached one', async () => {
    const { g, up, tokens, revokeAccessToken } = await scenario();
    const first = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, first) === 'delivered', { what: 'first delivered' });
    revokeAccessToken('access-token-1');
    await g.gateway.delivery.verify('gmail-test'); // a fresh connection with the cached token
    const second = await sendToGateway(g.smtpPort, { to: 'bob@example.org' });
    await waitFor(() => stateOf(g, second) === 'delivered', { what: 'second delivered' });
    expect(tokens.issued).toEqual(['access-token-1', 'access-token-2']);
    expect(up.auths.some((a) => !a.ok)).toBe(true);
    expect(g.gateway.queue.require(second).attempts).toBe(1);
  });

  it('a revoked refresh token: upstream auth-failed with a clear reason, messages held, delivered after a new token is configured', async () => {
    const { g, up, tokens, raw } = await scenario();
    tokens.revoked = true;
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'held', { what: 'held' });
    const status = g.gateway.delivery.upstreamStatus()[0];
    expect(status.state).toBe('auth-failed');
    expect(status.lastError?.message).toMatch(/refused the refresh token or client: HTTP 400 invalid_grant \(Token has been expired or revoked\.\)/);
    expect(g.gateway.queue.require(id).held?.reason).toMatch(/invalid_grant/);
    expect(up.auths).toHaveLength(0);
    expect(g.logs.some((l) => l.includes('"upstream.auth-failed"') && l.includes('OAuth2 refresh token'))).toBe(true);

    tokens.revoked = false;
    tokens.refreshToken = 'the-new-refresh-token';
    const fixed = structuredClone(raw);
    const entry = (fixed.upstreams as Array<Record<string, unknown>>)[0];
    entry.oauth2 = { ...(entry.oauth2 as object), refreshToken: 'the-new-refresh-token' };
    await g.gateway.reload(buildTestConfig(g.dataDir, fixed));
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered after the fix' });
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('up');
  });

  it('an unavailable token endpoint is temporary: the message is deferred, not held', async () => {
    const { g, tokens } = await scenario();
    tokens.failWith500 = true;
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    await waitFor(() => stateOf(g, id) === 'deferred', { what: 'deferred' });
    expect(g.gateway.queue.require(id).lastError?.message).toMatch(/OAuth2 token endpoint failed: HTTP 503 temporarily_unavailable/);
    tokens.failWith500 = false;
    await waitFor(() => stateOf(g, id) === 'delivered', { what: 'delivered', timeoutMs: 15_000 });
  });
});
