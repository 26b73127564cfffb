/**
 * One raw-socket test per row of docs/quirks.md: each quirk a real printer shows, sent byte for byte, and
 * the proof that the message was accepted (250 queued), spooled exactly as sent, and delivered to a real
 * TLS+AUTH upstream as a well-formed message (CRLF only, Date and Message-ID present, content unchanged).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { type RawSmtpClient, plainAuth, type SmtpResponse } from '../kit/raw-smtp.js';
import { TestUpstream, UPSTREAM_PASSWORD, UPSTREAM_USER } from '../kit/upstream.js';
import { writeCaFile } from '../kit/certs.js';
import { useRawSmtpClients } from '../kit/inbound-scope.js';

const USER = 'wc6505';
const PASS = 'Quirk-pass-0123456789';
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('printer SMTP quirks (docs/quirks.md)', () => {
  let gw: TestGateway;
  let upstream: TestUpstream;
  let caDir: string;
  const { open } = useRawSmtpClients(() => gw.smtpPort);

  beforeAll(async () => {
    upstream = await TestUpstream.start({ mode: 'tls' });
    caDir = await makeTempDir('scanrelay-quirks-ca-');
    gw = await startTestGateway({
      // Short idle timeout so the "very slow sender" and "\n.\n" rows run in seconds.
      smtp: { socketTimeout: '2s' },
      devices: [{ name: 'printer', username: USER, password: PASS, allowRecipients: ['*@example.org'], upstream: 'gmail' }],
      upstreams: [
        {
          name: 'gmail',
          host: '127.0.0.1',
          port: upstream.port,
          security: 'tls',
          user: UPSTREAM_USER,
          password: UPSTREAM_PASSWORD,
          tls: { ca: await writeCaFile(caDir) },
        },
      ],
    });
  });
  afterAll(async () => {
    await gw?.stop();
    await upstream?.close();
    if (caDir) await rm(caDir, { recursive: true, force: true });
  });

  /** EHLO + AUTH PLAIN, the well-behaved start most rows share. */
  async function openAuthenticated(eol = '\r\n'): Promise<RawSmtpClient> {
    const client = await open();
    expect((await client.command('EHLO NPIF65E56', eol)).code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${plainAuth(USER, PASS)}`, eol)).code).toBe(235);
    return client;
  }

  async function envelope(client: RawSmtpClient, eol = '\r\n'): Promise<void> {
    expect((await client.command('MAIL FROM:<scanner@example.org>', eol)).code).toBe(250);
    expect((await client.command('RCPT TO:<inbox@example.org>', eol)).code).toBe(250);
    expect((await client.command('DATA', eol)).code).toBe(354);
  }

  /** Sends the DATA bytes (terminator included) and returns the queue id from the 250. */
  async function finishData(client: RawSmtpClient, bytes: Buffer | string): Promise<string> {
    client.write(bytes);
    const reply = await client.read();
    expect(reply.code, reply.text).toBe(250);
    const id = /queued as (\w+)/.exec(reply.text)?.[1];
    expect(id).toBeDefined();
    return id!;
  }

  async function spooled(id: string): Promise<Buffer> {
    return readFile(gw.gateway.queue.bodyPath(id));
  }

  /**
   * Waits for the message at the upstream and checks it is well formed: CRLF line ends only, a Date and a
   * Message-ID in the header block, and the device's message unchanged apart from line ends (the gateway
   * only prepends headers).
   */
  async function expectDeliveredWellFormed(id: string, sent: Buffer | string): Promise<string> {
    const copy = await waitFor(() => upstream.received.find((m) => m.raw.includes(`id ${id};`)), { timeoutMs: 15_000, what: `message ${id} at the upstream` });
    const raw = copy.raw.toString('latin1');
    expect(copy.secure).toBe(true);
    expect(raw).not.toMatch(/(^|[^\r])\n/); // no bare LF
    expect(raw).not.toMatch(/\r(?!\n)/); // no bare CR
    const headerBlock = raw.slice(0, raw.indexOf('\r\n\r\n') + 2);
    expect(headerBlock).toMatch(/^Date: .+\r$/m);
    expect(headerBlock).toMatch(/^Message-ID: <[^<>\s]+@[^<>\s]+>\r$/im);
    const original = (typeof sent === 'string' ? sent : sent.toString('latin1')).replace(/\r?\n/g, '\r\n');
    expect(raw.endsWith(original)).toBe(true);
    await waitFor(() => gw.gateway.queue.get(id)?.state === 'delivered', { what: `message ${id} marked delivered` });
    return raw;
  }

  it('bare LF line ends: LF-only commands and body lines are accepted, the body is spooled byte for byte', async () => {
    const client = await openAuthenticated('\n');
    await envelope(client, '\n');
    const body = 'From: scanner@example.org\nSubject: bare LF\nDate: Mon, 2 Mar 2026 10:00:00 +0100\nMessage-ID: <lf@printer>\n\nline one\nline two\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
  });

  it('HELO only (no EHLO), non-FQDN name: AUTH and the transaction work', async () => {
    const client = await open();
    expect((await client.command('HELO NPIF65E56')).code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${plainAuth(USER, PASS)}`)).code).toBe(235);
    await envelope(client);
    const body = 'From: scanner@example.org\r\nSubject: helo only\r\n\r\nscan\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
    expect(gw.gateway.queue.require(id).client.heloName).toBe('npif65e56');
  });

  it('no Date and no Message-ID: accepted and spooled untouched (the headers are added on the way out)', async () => {
    const client = await openAuthenticated();
    await envelope(client);
    const body = 'From: scanner@example.org\r\nTo: inbox@example.org\r\nSubject: bare headers\r\n\r\nscan\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
    const headers = gw.gateway.queue.require(id).headers;
    expect(headers.hasDate).toBe(false);
    expect(headers.messageId).toBeUndefined();
  });

  it('8-bit headers and body without BODY=8BITMIME: bytes kept, message marked as 8-bit', async () => {
    const client = await openAuthenticated();
    await envelope(client);
    const body = Buffer.concat([
      Buffer.from('From: scanner@example.org\r\nSubject: Scan vom Drucker – Büro 2.OG\r\n\r\n', 'utf8'),
      Buffer.from('Latin-1 text: caf\xe9 \xfc\r\n', 'latin1'),
    ]);
    const id = await finishData(client, Buffer.concat([body, Buffer.from('.\r\n')]));
    expect((await spooled(id)).equals(body)).toBe(true);
    await expectDeliveredWellFormed(id, body);
    const message = gw.gateway.queue.require(id);
    expect(message.envelope.bodyType).toBe('7bit');
    expect(message.has8bit).toBe(true);
  });

  it('MAIL FROM:addr and RCPT TO:addr without angle brackets are accepted (smtp-server alone says 501)', async () => {
    const client = await openAuthenticated();
    expect((await client.command('MAIL FROM:scanner@example.org SIZE=100')).code).toBe(250);
    expect((await client.command('RCPT TO: inbox@example.org')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    const body = 'From: scanner@example.org\r\nSubject: no brackets\r\n\r\nscan\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
    expect(gw.gateway.queue.require(id).envelope).toMatchObject({ mailFrom: 'scanner@example.org', rcptTo: ['inbox@example.org'] });
    expect(gw.logs.some((l) => l.includes('"quirk":"path-without-brackets"'))).toBe(true);
  });

  it('an empty MAIL FROM: is taken as the null sender', async () => {
    const client = await openAuthenticated();
    expect((await client.command('MAIL FROM:')).code).toBe(250);
    expect((await client.command('RCPT TO:<inbox@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    const id = await finishData(client, 'Subject: null sender\r\n\r\nscan\r\n.\r\n');
    expect(gw.gateway.queue.require(id).envelope.mailFrom).toBe('');
    await expectDeliveredWellFormed(id, 'Subject: null sender\r\n\r\nscan\r\n');
  });

  it('AUTH LOGIN with the username as initial response', async () => {
    const client = await open();
    expect((await client.command('EHLO NPIF65E56')).code).toBe(250);
    const challenge = await client.command(`AUTH LOGIN ${b64(USER)}`);
    expect(challenge.code).toBe(334);
    expect(Buffer.from(challenge.text, 'base64').toString()).toBe('Password:');
    expect((await client.command(b64(PASS))).code).toBe(235);
    await envelope(client);
    const body = 'Subject: login initial response\r\n\r\nscan\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
    expect(gw.gateway.queue.require(id).client.authMethod).toBe('LOGIN');
  });

  it('lower-case commands throughout, AUTH mechanism included', async () => {
    const client = await open();
    expect((await client.command('ehlo npif65e56')).code).toBe(250);
    expect((await client.command(`auth plain ${plainAuth(USER, PASS)}`)).code).toBe(235);
    expect((await client.command('mail from:<scanner@example.org>')).code).toBe(250);
    expect((await client.command('rcpt to:<inbox@example.org>')).code).toBe(250);
    expect((await client.command('data')).code).toBe(354);
    const body = 'Subject: lower case\r\n\r\nscan\r\n';
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
    expect((await client.command('quit')).code).toBe(221);
  });

  it('lines far beyond 998 characters in headers and body are spooled unchanged', async () => {
    const client = await openAuthenticated();
    await envelope(client);
    const body = `Subject: ${'S'.repeat(1500)}\r\nX-Long: ${'h'.repeat(3000)}\r\n\r\n${'b'.repeat(20_000)}\r\nshort\r\n`;
    const id = await finishData(client, `${body}.\r\n`);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
  });

  it('NUL bytes in the body are kept as they are', async () => {
    const client = await openAuthenticated();
    await envelope(client);
    const body = Buffer.from('Subject: nul\r\n\r\nbefore\0after\0\0\r\n', 'latin1');
    const id = await finishData(client, Buffer.concat([body, Buffer.from('.\r\n')]));
    expect((await spooled(id)).equals(body)).toBe(true);
    await expectDeliveredWellFormed(id, body);
  });

  it('a very slow sender is fine as long as no single pause exceeds smtp.socketTimeout (2s here)', async () => {
    const client = await openAuthenticated();
    await envelope(client);
    const body = `Subject: slow\r\n\r\n${'slowly scanned line\r\n'.repeat(8)}`;
    const started = Date.now();
    // 8 pieces, each followed by a 400 ms pause: the whole DATA outlasts the idle timeout, no pause comes close.
    // The pauses are the slow sender itself (pacing), not a wait before asserting that nothing happened.
    const piece = Math.ceil(body.length / 8);
    for (let offset = 0; offset < body.length; offset += piece) {
      client.write(body.slice(offset, offset + piece));
      await delay(400);
    }
    const id = await finishData(client, '.\r\n');
    expect(Date.now() - started).toBeGreaterThan(2000);
    expect((await spooled(id)).toString('latin1')).toBe(body);
    await expectDeliveredWellFormed(id, body);
  });

  it('empty HELO: the client address literal stands in for the name', async () => {
    const client = await open();
    expect((await client.command('HELO')).code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${plainAuth(USER, PASS)}`)).code).toBe(235);
    await envelope(client);
    const id = await finishData(client, 'Subject: empty helo\r\n\r\nscan\r\n.\r\n');
    expect(gw.gateway.queue.require(id).client.heloName).toBe('[127.0.0.1]');
    expect(await expectDeliveredWellFormed(id, 'Subject: empty helo\r\n\r\nscan\r\n')).toMatch(/^Received: from \[127\.0\.0\.1\] /);
    expect(gw.logs.some((l) => l.includes('"quirk":"helo-without-name"'))).toBe(true);
  });

  it('"\\n.\\n" as end of data is not recognised: nothing is queued and the session ends with 421 (unsupported)', async () => {
    const before = gw.gateway.queue.stats().counts;
    const client = await openAuthenticated('\n');
    await envelope(client, '\n');
    client.write('Subject: lf terminator\n\nscan\n.\n');
    const reply: SmtpResponse = await client.read(10_000);
    expect(reply.code).toBe(421); // idle timeout, no 250 ever came
    await client.waitClosed();
    expect(gw.gateway.queue.stats().counts).toEqual(before);
  });
});
