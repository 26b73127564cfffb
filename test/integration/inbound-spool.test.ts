/**
 * What lands in the spool: byte-identical bodies (sha256) for a multi-megabyte PDF-like attachment,
 * a complete envelope record on disk, and nothing at all after an aborted or timed-out transfer.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor, type RawConfig } from '../kit/gateway.js';
import { SCANNER_PASSWORD, dataPayload, deviceTransport, queueIdOf, scannerDevice, sha256, spoolEntries, useGatewayScope } from '../kit/inbound-scope.js';

/** A scan as a printer builds it: CRLF MIME, a text part with leading dots, a base64 PDF-like attachment. */
function buildScanMessage(attachmentBytes: number): Buffer {
  const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'), randomBytes(attachmentBytes)]);
  const base64 = pdf.toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
  const boundary = '----=_scan_boundary_0042';
  return Buffer.from(
    [
      'From: "Warren 2F" <scanner@berkeley.edu>',
      'To: ops@example.org',
      'Subject: Scanned image from warren-2f',
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '.a line that starts with a dot',
      '..and one with two',
      '.',
      'end of text',
      `--${boundary}`,
      'Content-Type: application/pdf; name="scan0001.pdf"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="scan0001.pdf"',
      '',
      base64,
      `--${boundary}--`,
      '',
    ].join('\r\n'),
    'latin1',
  );
}

describe('spooled bodies and records', () => {
  const scope = useGatewayScope({ devices: [scannerDevice()] });
  const start = (raw: RawConfig = {}) => scope.start(raw);
  const session = () => scope.session();

  it('spools a multi-megabyte attachment sent by nodemailer byte for byte', async () => {
    await start();
    const message = buildScanMessage(4 * 1024 * 1024);
    expect(message.length).toBeGreaterThan(5_000_000);
    const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
    const info = await transport.sendMail({ envelope: { from: 'scanner@berkeley.edu', to: ['ops@example.org'] }, raw: message });
    transport.close();
    const id = queueIdOf(info.response);
    const spooled = await readFile(scope.gw.gateway.queue.bodyPath(id));
    expect(spooled.length).toBe(message.length);
    expect(sha256(spooled)).toBe(sha256(message));
    const record = scope.gw.gateway.queue.require(id);
    expect(record.sha256).toBe(sha256(message));
    expect(record.size).toBe(message.length);
    expect(record.has8bit).toBe(false);
  });

  it('spools a multi-megabyte message sent over a raw socket with dot-stuffing byte for byte', async () => {
    await start();
    const message = buildScanMessage(3 * 1024 * 1024);
    const client = await session();
    expect((await client.command(`MAIL FROM:<scanner@berkeley.edu> SIZE=${message.length}`)).code).toBe(250);
    expect((await client.command('RCPT TO:<ops@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dataPayload(message));
    const done = await client.read(30_000);
    expect(done.code).toBe(250);
    const id = queueIdOf(done.text);
    const spooled = await readFile(scope.gw.gateway.queue.bodyPath(id));
    expect(sha256(spooled)).toBe(sha256(message));
    expect(scope.gw.gateway.queue.require(id).sha256).toBe(sha256(message));
  });

  it('keeps undeclared 8-bit bytes unchanged and flags them', async () => {
    await start();
    const message = Buffer.from('Subject: Scan \xe9t\xe9\r\n\r\nCaf\xe9 \xff\x80\r\n', 'latin1');
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    await client.command('DATA');
    client.write(dataPayload(message));
    const id = queueIdOf((await client.read()).text);
    expect(sha256(await readFile(scope.gw.gateway.queue.bodyPath(id)))).toBe(sha256(message));
    expect(scope.gw.gateway.queue.require(id).has8bit).toBe(true);
  });

  it('writes a durable record with device, sender, recipients, size, received time and client address', async () => {
    await start();
    const before = Date.now();
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu> BODY=8BITMIME');
    await client.command('RCPT TO:<ops@example.org>');
    await client.command('RCPT TO:<dean@berkeley.edu>');
    await client.command('DATA');
    const body = Buffer.from('From: scanner@berkeley.edu\r\nSubject: record\r\nMessage-ID: <abc@printer>\r\n\r\nx\r\n');
    client.write(dataPayload(body));
    const id = queueIdOf((await client.read()).text);

    // The record is the message's row in the store database, read back through the queue.
    const onDisk = scope.gw.gateway.queue.require(id);
    expect(onDisk).toMatchObject({
      id,
      device: 'warren-2f-scanner',
      envelope: { mailFrom: 'scanner@berkeley.edu', rcptTo: ['ops@example.org', 'dean@berkeley.edu'], bodyType: '8bitmime' },
      size: body.length,
      sha256: sha256(body),
      client: { address: '127.0.0.1', heloName: 'test.client', authMethod: 'PLAIN' },
      headers: { subject: 'record', messageId: '<abc@printer>', hasDate: false },
      state: 'held', // no upstream configured for this device
    });
    expect(onDisk.client.sessionId).toMatch(/^[0-9a-f]{12}$/);
    expect(onDisk.receivedAt).toBeGreaterThanOrEqual(before);
    expect(onDisk.receivedAt).toBeLessThanOrEqual(Date.now());
    expect(JSON.stringify(onDisk)).not.toContain(SCANNER_PASSWORD);

    // One JSON log line for the event, carrying the session id, the device and the queue id.
    const accepted = scope.gw.logs.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'queue.accepted');
    expect(accepted).toMatchObject({ queueId: id, sessionId: onDisk.client.sessionId, device: 'warren-2f-scanner', size: body.length });
  });

  it('leaves nothing behind when the client disconnects in the middle of DATA', async () => {
    await start();
    const rejected: Array<{ code: number }> = [];
    scope.gw.gateway.events.on('message.rejected', (event) => rejected.push(event));
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    expect((await client.command('DATA')).code).toBe(354);
    client.write(Buffer.from(`Subject: aborted\r\n\r\n${'B'.repeat(76)}\r\n`.repeat(20_000)));
    // The transfer is under way once the temp body exists; then the printer loses power.
    await waitFor(async () => (await spoolEntries(scope.gw.dataDir)).part.length > 0, { what: 'temp body file' });
    client.close();
    await waitFor(() => rejected.length > 0, { what: 'message.rejected event' });
    expect(await spoolEntries(scope.gw.dataDir)).toEqual({ queue: [], part: [] });
    expect(scope.gw.gateway.queue.list().total).toBe(0);
    expect(scope.gw.logs.some((line) => line.includes('smtp.data.refused'))).toBe(true);
  });

  it('leaves nothing behind when a transfer times out mid-DATA', async () => {
    await start({ smtp: { socketTimeout: '1s' } });
    const client = await session();
    await client.command('MAIL FROM:<scanner@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    await client.command('DATA');
    client.write('Subject: stalled\r\n\r\nthe printer stops sending here\r\n');
    const reply = await client.read(15_000);
    expect(reply.code).toBe(421);
    await client.waitClosed();
    await waitFor(
      async () => {
        const entries = await spoolEntries(scope.gw.dataDir);
        return entries.queue.length === 0 && entries.part.length === 0;
      },
      { what: 'empty spool' },
    );
    expect(scope.gw.gateway.queue.list().total).toBe(0);
  });

  it('gives every accepted message its own body and record under concurrent senders', async () => {
    await start();
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`Subject: n${i}\r\n\r\n${randomBytes(20_000).toString('base64')}\r\n`));
    const ids = await Promise.all(
      bodies.map(async (raw) => {
        const transport = deviceTransport(scope.gw.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
        try {
          return queueIdOf((await transport.sendMail({ envelope: { from: 'a@berkeley.edu', to: ['b@berkeley.edu'] }, raw })).response);
        } finally {
          transport.close();
        }
      }),
    );
    expect(new Set(ids).size).toBe(bodies.length);
    for (const [i, id] of ids.entries()) {
      expect(sha256(await readFile(scope.gw.gateway.queue.bodyPath(id)))).toBe(sha256(bodies[i]));
    }
    const names = await readdir(join(scope.gw.dataDir, 'queue'));
    expect(names.sort()).toEqual(ids.map((id) => `${id}.eml`).sort());
    expect(
      scope.gw.gateway.queue
        .list({ limit: 100 })
        .items.map((m) => m.id)
        .sort(),
    ).toEqual([...ids].sort());
    expect((await spoolEntries(scope.gw.dataDir)).part).toEqual([]);
  });
});
