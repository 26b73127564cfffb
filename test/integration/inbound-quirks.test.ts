/**
 * Printer quirks over a raw socket: HELO-only clients, bare-LF commands and bodies, no Date or
 * Message-ID, lower-case commands, IP-literal HELO names, pipelined commands.
 */
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { startTestGateway, type TestGateway } from '../kit/gateway.js';
import { type RawSmtpClient, plainAuth, type SmtpResponse } from '../kit/raw-smtp.js';
import { SCANNER_PASSWORD, queueIdOf, scannerDevice, sha256, useRawSmtpClients } from '../kit/inbound-scope.js';

const AUTH = plainAuth('warren-2f', SCANNER_PASSWORD);

describe('plaintext listener with legacy printer clients', () => {
  let gw: TestGateway;
  const { open } = useRawSmtpClients(() => gw.smtpPort);

  beforeAll(async () => {
    gw = await startTestGateway({ admin: { enabled: false }, devices: [scannerDevice()] });
  });
  afterAll(async () => {
    await gw.stop();
  });

  /** A client past EHLO, AUTH, MAIL, RCPT and DATA, ready for the body. */
  async function openData(): Promise<RawSmtpClient> {
    const client = await open();
    for (const command of ['EHLO printer', `AUTH PLAIN ${AUTH}`, 'MAIL FROM:<scanner@berkeley.edu>', 'RCPT TO:<ops@example.org>', 'DATA'])
      await client.command(command);
    return client;
  }

  /** Sends the body bytes as given (already terminated) and returns the final reply. */
  async function sendBody(client: RawSmtpClient, wire: string): Promise<SmtpResponse> {
    client.write(Buffer.from(wire, 'latin1'));
    return client.read();
  }

  it('accepts a HELO-only client that authenticates and sends', async () => {
    const client = await open();
    const helo = await client.command('HELO NPIF65E56');
    expect(helo.code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${AUTH}`)).code).toBe(235);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
    expect((await client.command('RCPT TO:<ops@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    const done = await sendBody(client, 'Subject: helo\r\n\r\nscan\r\n.\r\n');
    expect(done.code).toBe(250);
    const message = gw.gateway.queue.require(queueIdOf(done.text));
    expect(message.client.heloName?.toUpperCase()).toBe('NPIF65E56'); // smtp-server lower-cases it
    expect((await client.command('QUIT')).code).toBe(221);
  });

  it('accepts AUTH LOGIN in two steps after an IP-literal HELO', async () => {
    const client = await open();
    expect((await client.command('HELO [127.0.0.1]')).code).toBe(250);
    expect((await client.command('AUTH LOGIN')).code).toBe(334);
    expect((await client.command(Buffer.from('warren-2f').toString('base64'))).code).toBe(334);
    expect((await client.command(Buffer.from(SCANNER_PASSWORD).toString('base64'))).code).toBe(235);
    expect((await client.command('MAIL FROM:<>')).code).toBe(250);
  });

  it('accepts bare-LF line endings in commands and body, and spools the body bytes unchanged', async () => {
    const client = await open();
    expect((await client.command('EHLO lf-printer', '\n')).code).toBe(250);
    expect((await client.command(`AUTH PLAIN ${AUTH}`, '\n')).code).toBe(235);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>', '\n')).code).toBe(250);
    expect((await client.command('RCPT TO:<ops@example.org>', '\n')).code).toBe(250);
    expect((await client.command('DATA', '\n')).code).toBe(354);
    // Bare LFs inside the body; the end of data must still be CRLF.CRLF (RFC 5321 4.1.1.4).
    const body = 'From: scanner@berkeley.edu\nSubject: bare lf\n\nline one\nline two\n';
    const done = await sendBody(client, `${body}\r\n.\r\n`);
    expect(done.code).toBe(250);
    const id = queueIdOf(done.text);
    const spooled = await readFile(gw.gateway.queue.bodyPath(id));
    expect(spooled.toString('latin1')).toBe(`${body}\r\n`);
    const message = gw.gateway.queue.require(id);
    expect(message.sha256).toBe(sha256(spooled));
    expect(message.headers.subject).toBe('bare lf');
  });

  it('accepts a message without Date and Message-ID headers', async () => {
    const client = await openData();
    const done = await sendBody(client, 'From: scanner@berkeley.edu\r\nTo: ops@example.org\r\nSubject: Scanned image\r\n\r\nscan\r\n.\r\n');
    expect(done.code).toBe(250);
    const message = gw.gateway.queue.require(queueIdOf(done.text));
    expect(message.headers.hasDate).toBe(false);
    expect(message.headers.messageId).toBeUndefined();
    expect(message.headers.subject).toBe('Scanned image');
  });

  it('accepts a message with no header block at all', async () => {
    const client = await openData();
    const done = await sendBody(client, 'just a body line\r\n.\r\n');
    expect(done.code).toBe(250);
    expect(gw.gateway.queue.require(queueIdOf(done.text)).size).toBe('just a body line\r\n'.length);
  });

  it('accepts lower-case commands', async () => {
    const client = await open();
    expect((await client.command('ehlo printer')).code).toBe(250);
    expect((await client.command(`auth plain ${AUTH}`)).code).toBe(235);
    expect((await client.command('mail from:<scanner@berkeley.edu>')).code).toBe(250);
    expect((await client.command('rcpt to:<ops@example.org>')).code).toBe(250);
    expect((await client.command('data')).code).toBe(354);
    const done = await sendBody(client, 'Subject: lower\r\n\r\nx\r\n.\r\n');
    expect(done.code).toBe(250);
    expect((await client.command('quit')).code).toBe(221);
  });

  it('accepts MAIL FROM with an AUTH=<> parameter and a space before the address', async () => {
    const client = await open();
    await client.command('EHLO printer');
    await client.command(`AUTH PLAIN ${AUTH}`);
    expect((await client.command('MAIL FROM: <scanner@berkeley.edu> AUTH=<>')).code).toBe(250);
    expect((await client.command('RCPT TO: <ops@example.org>')).code).toBe(250);
  });

  it('answers pipelined commands in order', async () => {
    const client = await open();
    await client.command('EHLO printer');
    await client.command(`AUTH PLAIN ${AUTH}`);
    client.write('MAIL FROM:<scanner@berkeley.edu>\r\nRCPT TO:<ops@example.org>\r\nRCPT TO:<no@gmail.com>\r\nDATA\r\n');
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await client.read()).code);
    expect(codes).toEqual([250, 250, 550, 354]);
    const done = await sendBody(client, 'Subject: pipelined\r\n\r\n..leading dot\r\n.\r\n');
    expect(done.code).toBe(250);
    const spooled = await readFile(gw.gateway.queue.bodyPath(queueIdOf(done.text)), 'latin1');
    expect(spooled).toBe('Subject: pipelined\r\n\r\n.leading dot\r\n');
  });
});
