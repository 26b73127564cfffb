/**
 * Upstream faults the delivery tests do not already cover (see delivery*.test.ts), each against a real
 * TLS upstream and each ending with the message delivered later or failed with the reason, never lost,
 * and the admin API (GET /api/messages/:id, /api/upstreams) showing why while it lasts:
 *   - an outage: connections refused, then 421 to everything for a while, then recovery
 *   - 421 forever: the message fails at maxLifetime with the 421 reason
 *   - the upstream hangs after the end of DATA (socketTimeout must fire) and one that never speaks
 *     (connectionTimeout must fire)
 *   - the connection is closed right after MAIL FROM
 *   - TLS handshake failure (implicit TLS configured against a STARTTLS port)
 *   - a certificate not trusted by default (no tls.ca), then a name mismatch; nothing (not even the
 *     password) is sent until the configuration is right
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { buildTestConfig, makeTempDir, startTestGateway, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { testCerts, writeCaFile } from '../kit/certs.js';
import { TEST_DEVICE, TestUpstream, UPSTREAM_PASSWORD, UPSTREAM_USER, sendToGateway, upstreamEntry } from '../kit/upstream.js';
import { apiClient, type ApiClient } from '../unit/admin/api-client.js';

const TOKEN = 'test-admin-token-0123456789';

/**
 * A minimal TLS SMTP upstream scripted line by line, for faults smtp-server cannot be made to show:
 * the first `cutAfterMail` connections are closed the moment MAIL FROM arrives; later ones accept.
 */
class ScriptedUpstream {
  readonly received: Array<{ rcptTo: string[]; raw: string }> = [];
  connections = 0;
  mailCommands = 0;
  port = 0;
  private readonly sockets = new Set<TLSSocket>();

  private constructor(
    private readonly server: TlsServer,
    private readonly cutAfterMail: number,
  ) {}

  static async start(cutAfterMail: number): Promise<ScriptedUpstream> {
    const certs = await testCerts();
    let self: ScriptedUpstream | undefined;
    const server = createTlsServer({ key: certs.key, cert: certs.cert }, (socket) => self!.handle(socket));
    self = new ScriptedUpstream(server, cutAfterMail);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self.port = (server.address() as AddressInfo).port;
    return self;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(socket: TLSSocket): void {
    const connection = ++this.connections;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('latin1');
    const reply = (text: string) => socket.write(`${text}\r\n`);
    let buffer = '';
    let inData = false;
    let awaitingAuth = false;
    let lines: string[] = [];
    let rcptTo: string[] = [];
    reply('220 scripted.test ESMTP ready');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            this.received.push({ rcptTo, raw: lines.join('\r\n') });
            reply(`250 2.0.0 OK ${this.received.length} scripted-accepted`);
          } else {
            lines.push(line.startsWith('..') ? line.slice(1) : line);
          }
          continue;
        }
        if (awaitingAuth) {
          awaitingAuth = false;
          reply('235 2.7.0 Accepted');
          continue;
        }
        switch (line.slice(0, 4).toUpperCase()) {
          case 'EHLO':
            reply('250-scripted.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME');
            break;
          case 'AUTH':
            if (line.trim().split(/\s+/).length > 2) reply('235 2.7.0 Accepted');
            else {
              awaitingAuth = true;
              reply('334 ');
            }
            break;
          case 'MAIL':
            this.mailCommands++;
            if (connection <= this.cutAfterMail) {
              socket.destroy(); // no reply at all: the connection is just gone
              return;
            }
            rcptTo = [];
            lines = [];
            reply('250 2.1.0 OK');
            break;
          case 'RCPT':
            rcptTo.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
            reply('250 2.1.5 OK');
            break;
          case 'DATA':
            inData = true;
            reply('354 Go ahead');
            break;
          case 'RSET':
          case 'NOOP':
            reply('250 2.0.0 OK');
            break;
          case 'QUIT':
            reply('221 2.0.0 Bye');
            socket.end();
            return;
          default:
            reply('502 5.5.2 Command not implemented');
        }
      }
    });
  }
}

/** Accepts TCP connections and never sends a byte (no TLS handshake, no greeting). */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('upstream faults: delivered later or failed with the reason, never lost, and the admin API says why', () => {
  let gw: TestGateway | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function caFile(): Promise<string> {
    const dir = await makeTempDir('scanrelay-ca-');
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return writeCaFile(dir);
  }

  async function testUpstream(options: Parameters<typeof TestUpstream.start>[0]): Promise<TestUpstream> {
    const upstream = await TestUpstream.start(options);
    cleanups.push(() => upstream.close());
    return upstream;
  }

  /** A gateway whose device relays through `upstream` (YAML-shaped entry), with short timeouts and retries. */
  async function gateway(
    upstream: Record<string, unknown>,
    delivery: RawConfig = {},
    timeouts: RawConfig = {},
  ): Promise<{ g: TestGateway; api: ApiClient; raw: RawConfig }> {
    const raw: RawConfig = {
      devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
      // Short enough for the tests, long enough for a TLS handshake on a busy 2-core machine.
      upstreams: [{ ...upstream, connectionTimeout: '3s', socketTimeout: '3s', ...timeouts }],
      delivery: { retryBase: '200ms', retryMax: '1s', ...delivery },
    };
    gw = await startTestGateway(raw);
    return { g: gw, api: apiClient(gw, 'inject', TOKEN), raw };
  }

  const message = async (api: ApiClient, id: string) => (await api.call('GET', `/api/messages/${id}`)).json;
  const upstreamView = async (api: ApiClient) => (await api.call('GET', '/api/upstreams/gmail-test')).json;

  /** Waits until the message shows `state` through the API, and returns what the API shows. */
  const apiState = (api: ApiClient, id: string, state: string, what: string, timeoutMs = 15_000) =>
    waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === state ? m : undefined;
      },
      { what, timeoutMs },
    );

  it('outage: connections refused, then 421 to everything for a while; the message waits with the reason shown, then goes out once', async () => {
    const up = await testUpstream({ mode: 'tls' });
    await up.down();
    const { g, api } = await gateway(upstreamEntry(up, await caFile()));
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org', subject: 'during the outage' });

    const refused = await apiState(api, id, 'deferred', 'deferred while refused');
    expect(refused.lastError.message).toMatch(/ECONNREFUSED/);
    expect(await upstreamView(api)).toMatchObject({ state: 'unreachable', waiting: 1, lastError: { message: expect.stringMatching(/ECONNREFUSED/) } });

    // The server is back but answers 421 to every connection.
    up.failAlways('connect', 421, '4.3.2 Service temporarily unavailable, closing channel');
    await up.resume();
    const busy = await waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === 'deferred' && m.lastError.responseCode === 421 && up.connections >= 2 ? m : undefined;
      },
      { what: 'deferred with the 421 reason after several tries', timeoutMs: 15_000 },
    );
    expect(busy.lastError.message).toMatch(/^421 .*Service temporarily unavailable/);
    const listed = (await api.call('GET', '/api/messages?state=deferred')).json.items.find((m: { id: string }) => m.id === id);
    expect(listed.outcome).toMatch(/^deferred: 421 /);
    expect(await upstreamView(api)).toMatchObject({ state: 'unreachable', lastError: { responseCode: 421 } });
    expect(up.received).toHaveLength(0);

    up.clearFailures();
    const delivered = await apiState(api, id, 'delivered', 'delivered after the outage', 20_000);
    expect(delivered.attemptCount).toBeGreaterThanOrEqual(3);
    expect(delivered.attempts.at(-1)).toMatchObject({ outcome: 'delivered' });
    expect(up.received).toHaveLength(1);
    expect((await upstreamView(api)).state).toBe('up');
  });

  it('421 forever: the message fails at maxLifetime with the 421 reason, and stays in the message log', async () => {
    const up = await testUpstream({ mode: 'tls' });
    up.failAlways('connect', 421, '4.3.2 Service temporarily unavailable');
    const { g, api } = await gateway(upstreamEntry(up, await caFile()), { maxLifetime: '2s' });
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const failed = await apiState(api, id, 'failed', 'failed at maxLifetime');
    expect(failed.failReason).toMatch(/^gave up after \d+ attempts? over \d+ seconds: 421 .*Service temporarily unavailable/);
    expect(failed.recipients).toEqual([expect.objectContaining({ address: 'alice@example.org', state: 'failed' })]);
    expect(up.received).toHaveLength(0);
  });

  it('hangs after the end of DATA: the socket timeout fires, the message waits (timeout shown), then goes out exactly once', async () => {
    const up = await testUpstream({ mode: 'tls' });
    up.hangInData();
    const { g, api } = await gateway(upstreamEntry(up, await caFile()), {}, { socketTimeout: '1s' });
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const timedOut = await waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === 'deferred' && m.lastError ? m : undefined;
      },
      { what: 'deferred after the socket timeout' },
    );
    expect(timedOut.lastError).toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/timeout/i) });
    expect(up.hungCount).toBeGreaterThanOrEqual(1);
    expect((await upstreamView(api)).state).toBe('unreachable');

    // The gateway gave up on those transfers: the upstream must not count them as accepted.
    up.hangInData(false);
    up.releaseHung(false);
    await apiState(api, id, 'delivered', 'delivered once the upstream answers');
    expect(up.received).toHaveLength(1);
    expect(up.dataStarted).toBeGreaterThanOrEqual(2);
  });

  it('never speaks (no TLS handshake, no greeting): the connection timeout fires, the message waits, then goes out', async () => {
    const silent = await silentServer();
    const port = silent.port;
    const { g, api } = await gateway(
      {
        name: 'gmail-test',
        host: '127.0.0.1',
        port,
        security: 'tls',
        user: UPSTREAM_USER,
        password: UPSTREAM_PASSWORD,
        tls: { ca: await caFile() },
      },
      {},
      { connectionTimeout: '1s' },
    );
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const waiting = await waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === 'deferred' && m.lastError ? m : undefined;
      },
      { what: 'deferred after the connection timeout' },
    );
    expect(waiting.lastError).toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/timeout/i) });

    // A working upstream takes the silent one's port.
    await silent.close();
    const up = await testUpstream({ mode: 'tls', port });
    await apiState(api, id, 'delivered', 'delivered once the upstream talks', 20_000);
    expect(up.received).toHaveLength(1);
  });

  it('closes the connection right after MAIL FROM: the message waits (connection lost), then goes out exactly once', async () => {
    const scripted = await ScriptedUpstream.start(2);
    cleanups.push(() => scripted.close());
    const { g, api } = await gateway({
      name: 'gmail-test',
      host: '127.0.0.1',
      port: scripted.port,
      security: 'tls',
      user: UPSTREAM_USER,
      password: UPSTREAM_PASSWORD,
      tls: { ca: await caFile() },
    });
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org', subject: 'cut after MAIL' });
    const cut = await waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === 'deferred' && m.lastError ? m : undefined;
      },
      { what: 'deferred after the cut' },
    );
    expect(cut.lastError.code).toMatch(/^(ECONNECTION|ESOCKET)$/);
    expect((await upstreamView(api)).lastError.message).toBeTruthy();

    const delivered = await apiState(api, id, 'delivered', 'delivered on a later connection');
    expect(delivered.attemptCount).toBe(3);
    expect(delivered.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['deferred', 'deferred', 'delivered']);
    expect(scripted.mailCommands).toBe(3);
    expect(scripted.received).toHaveLength(1);
    expect(scripted.received[0].rcptTo).toEqual(['alice@example.org']);
    expect(scripted.received[0].raw).toContain('Subject: cut after MAIL');
  });

  it('TLS handshake failure (implicit TLS against a STARTTLS port): tls-failed with a clear error, nothing sent; delivered after the config is fixed', async () => {
    const up = await testUpstream({ mode: 'starttls' });
    const { g, api, raw } = await gateway(upstreamEntry(up, await caFile(), { security: 'tls' }));
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const waiting = await apiState(api, id, 'deferred', 'deferred after the handshake failure');
    expect(waiting.lastError.message).toMatch(/^TLS handshake failed: /);
    const view = await upstreamView(api);
    expect(view).toMatchObject({ state: 'tls-failed', waiting: 1 });
    expect(view.lastError.message).toMatch(/^TLS handshake failed: /);
    expect(up.auths).toHaveLength(0);
    expect(g.logs.some((l) => l.includes('"upstream.tls-failed"'))).toBe(true);

    const fixed = structuredClone(raw);
    (fixed.upstreams as Array<Record<string, unknown>>)[0].security = 'starttls';
    await g.gateway.reload(buildTestConfig(g.dataDir, fixed));
    await apiState(api, id, 'delivered', 'delivered over STARTTLS', 20_000);
    expect(up.received).toHaveLength(1);
    expect(up.auths.every((a) => a.secure)).toBe(true);
  });

  it('certificate not trusted by default (no tls.ca), then a name mismatch: refused with a clear error, no password sent; delivered once right', async () => {
    const up = await testUpstream({ mode: 'tls' });
    const ca = await caFile();
    const entry = upstreamEntry(up, ca, { tls: {} });
    const { g, api, raw } = await gateway(entry);
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org' });
    const untrusted = await apiState(api, id, 'deferred', 'deferred: untrusted certificate');
    expect(untrusted.lastError.message).toMatch(/^TLS handshake failed: .*(self[- ]signed|issuer|certificate)/i);
    expect(await upstreamView(api)).toMatchObject({ state: 'tls-failed', lastError: { message: expect.stringMatching(/certificate/i) } });

    // Trusting the CA but expecting another name: still refused (hostname check stays on).
    const wrongName = structuredClone(raw);
    (wrongName.upstreams as Array<Record<string, unknown>>)[0].tls = { ca, servername: 'smtp.gmail.com' };
    await g.gateway.reload(buildTestConfig(g.dataDir, wrongName));
    await g.gateway.delivery.retryUpstream('gmail-test');
    const mismatch = await waitFor(
      async () => {
        const m = await message(api, id);
        return m.state === 'deferred' && /altnames|does not match|hostname/i.test(m.lastError?.message ?? '') ? m : undefined;
      },
      { what: 'deferred: name mismatch' },
    );
    expect(mismatch.lastError.message).toMatch(/^TLS handshake failed: /);
    expect(up.auths).toHaveLength(0);
    expect(up.received).toHaveLength(0);

    const right = structuredClone(raw);
    (right.upstreams as Array<Record<string, unknown>>)[0].tls = { ca };
    await g.gateway.reload(buildTestConfig(g.dataDir, right));
    await g.gateway.delivery.retryUpstream('gmail-test');
    await apiState(api, id, 'delivered', 'delivered with the CA trusted', 20_000);
    expect(up.received).toHaveLength(1);
    expect(up.auths).toEqual([expect.objectContaining({ ok: true, secure: true })]);
  });
});
