/**
 * Never an open relay, and size limits: recipient rules (550/553), recipient cap (452), declared and
 * actual size (552), each over a real loopback socket, and nothing left in the spool after a refusal.
 */
import { describe, expect, it } from 'vitest';
import { waitFor, type RawConfig } from '../kit/gateway.js';
import { RawSmtpClient } from '../kit/raw-smtp.js';
import { dataPayload, deviceTransport, queueIdOf, scannerDevice, spoolEntries, SCANNER_PASSWORD, useGatewayScope } from '../kit/inbound-scope.js';

describe('recipient and size policy of an authenticated device', () => {
  const scope = useGatewayScope({ devices: [scannerDevice()] });
  const start = (raw: RawConfig = {}) => scope.start(raw);
  const session = () => scope.session();

  it('answers 550 for a recipient outside allowRecipients and still accepts the allowed ones', async () => {
    await start();
    const client = await session();
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
    const outside = await client.command('RCPT TO:<victim@gmail.com>');
    expect(outside.code).toBe(550);
    expect(outside.text).toContain('victim@gmail.com');
    expect(outside.text).toMatch(/not allowed/);
    // a look-alike domain and a sub-domain are not the domain
    expect((await client.command('RCPT TO:<x@berkeley.edu.evil.com>')).code).toBe(550);
    expect((await client.command('RCPT TO:<x@cs.berkeley.edu>')).code).toBe(550);
    expect((await client.command('RCPT TO:<other@example.org>')).code).toBe(550);
    expect((await client.command('RCPT TO:<Prof.X@Berkeley.EDU>')).code).toBe(250);
    expect((await client.command('RCPT TO:<OPS@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dataPayload(Buffer.from('Subject: t\r\n\r\nbody\r\n')));
    const done = await client.read();
    expect(done.code).toBe(250);
    const message = scope.gw.gateway.queue.require(queueIdOf(done.text));
    expect(message.envelope.rcptTo).toEqual(['Prof.X@Berkeley.EDU', 'OPS@example.org']);
  });

  it('reports a partial rejection to nodemailer in info.rejected', async () => {
    await start();
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
    const info = await transport.sendMail({ from: 'a@berkeley.edu', to: ['ok@berkeley.edu', 'no@elsewhere.net'], text: 'x' });
    transport.close();
    expect(info.rejected).toEqual(['no@elsewhere.net']);
    expect(scope.gw.gateway.queue.require(queueIdOf(info.response)).envelope.rcptTo).toEqual(['ok@berkeley.edu']);
  });

  it.each([
    ['percent hack', 'victim%gmail.com@berkeley.edu'],
    ['bang path', 'gmail.com!victim@berkeley.edu'],
  ])('answers 553 for a %s address even when its domain is allowed', async (_kind, address) => {
    await start();
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    const reply = await client.command(`RCPT TO:<${address}>`);
    expect(reply.code).toBe(553);
    expect(reply.text).toMatch(/not accepted/);
  });

  it('judges a source-routed address by its final mailbox (smtp-server drops the route, RFC 5321 C)', async () => {
    await start();
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    const routedOut = await client.command('RCPT TO:<@berkeley.edu:victim@gmail.com>');
    expect(routedOut.code).toBe(550);
    expect(routedOut.text).toContain('<victim@gmail.com>');
    expect((await client.command('RCPT TO:<@relay.example.com:ops@example.org>')).code).toBe(250);
    await client.command('DATA');
    client.write(dataPayload(Buffer.from('Subject: t\r\n\r\nx\r\n')));
    const done = await client.read();
    expect(scope.gw.gateway.queue.require(queueIdOf(done.text)).envelope.rcptTo).toEqual(['ops@example.org']);
  });

  it('answers 452 for the recipient after smtp.maxRecipients', async () => {
    await start({ smtp: { maxRecipients: 3 } });
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    for (let i = 1; i <= 3; i++) expect((await client.command(`RCPT TO:<r${i}@berkeley.edu>`)).code).toBe(250);
    expect((await client.command('RCPT TO:<r4@berkeley.edu>')).code).toBe(452);
  });

  it('answers 552 at MAIL FROM when the declared SIZE is over the device limit', async () => {
    await start({ devices: [scannerDevice({ maxMessageSize: '10KB' })] });
    const client = await session();
    const refused = await client.command('MAIL FROM:<scanner@berkeley.edu> SIZE=10001');
    expect(refused.code).toBe(552);
    expect(refused.text).toContain('10000');
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu> SIZE=10000')).code).toBe(250);
  });

  it('answers 552 at MAIL FROM when the declared SIZE is over smtp.maxMessageSize', async () => {
    await start({ smtp: { maxMessageSize: '1MB' } });
    const client = await session();
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu> SIZE=1000001')).code).toBe(552);
  });

  it('answers 552 at the end of DATA for an oversized body, keeps nothing, and the session goes on', async () => {
    await start({ devices: [scannerDevice({ maxMessageSize: '64KB' })] });
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    expect((await client.command('DATA')).code).toBe(354);
    const line = `${'A'.repeat(998)}\r\n`;
    client.write(dataPayload(Buffer.from(`Subject: big\r\n\r\n${line.repeat(200)}`)));
    const reply = await client.read();
    expect(reply.code).toBe(552);
    expect(reply.text).toMatch(/exceeds/);
    expect(await spoolEntries(scope.gw.dataDir)).toEqual({ queue: [], part: [] });
    expect(scope.gw.gateway.queue.list().total).toBe(0);

    // The same session can still send a message within the limit.
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    await client.command('DATA');
    client.write(dataPayload(Buffer.from('Subject: small\r\n\r\nsmall\r\n')));
    const ok = await client.read();
    expect(ok.code).toBe(250);
    const id = queueIdOf(ok.text);
    expect(await spoolEntries(scope.gw.dataDir)).toEqual({ queue: [`${id}.eml`], part: [] });
    expect(scope.gw.gateway.queue.list().items.map((m) => m.id)).toEqual([id]);
  });

  it('answers 552 for a body over the limit when nodemailer sends it without SIZE', async () => {
    await start({ devices: [scannerDevice({ maxMessageSize: '32KB' })] });
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
    await expect(transport.sendMail({ from: 'a@berkeley.edu', to: 'b@berkeley.edu', text: 'x'.repeat(40_000) })).rejects.toMatchObject({ responseCode: 552 });
    transport.close();
    await waitFor(() => scope.gw.logs.some((l) => l.includes('smtp.data.refused')), { what: 'refusal logged' });
    expect(await spoolEntries(scope.gw.dataDir)).toEqual({ queue: [], part: [] });
  });

  it('refuses connections over smtp.maxConnectionsPerIp with 421 and frees the slot when one closes', async () => {
    await start({ smtp: { maxConnectionsPerIp: 2 } });
    const first = await session();
    const second = await session();
    for (let round = 0; round < 3; round++) {
      const { client: extra, greeting } = await RawSmtpClient.open(scope.gw.smtpPort);
      scope.track(extra);
      expect(greeting.code).toBe(421);
      expect(greeting.text).toMatch(/Too many connections/);
      await extra.waitClosed();
    }
    expect((await first.command('QUIT')).code).toBe(221);
    await first.waitClosed();
    // Refused connections must not have used up the count: one slot is free again.
    const third = await waitFor(
      async () => {
        const { client, greeting } = await RawSmtpClient.open(scope.gw.smtpPort);
        scope.track(client);
        return greeting.code === 220 ? client : undefined;
      },
      { what: 'a free connection slot' },
    );
    expect((await third.command('EHLO printer')).code).toBe(250);
    expect((await second.command('NOOP')).code).toBe(250);
  });
});
