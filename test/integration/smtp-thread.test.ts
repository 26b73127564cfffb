/**
 * The SMTP client thread on its own: it sends a body from the claim's open descriptor byte for byte, and
 * never closes or reuses that descriptor, not even when the upstream drops the connection in the middle
 * of a large body (the main thread closes it, and a second close could hit another file or a socket).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import pino from 'pino';
import { SmtpThread } from '../../src/delivery/smtp-thread.js';
import type { TransportSpec } from '../../src/delivery/smtp-thread-protocol.js';
import { testCerts, type TestCerts } from '../kit/certs.js';
import { makeTempDir } from '../kit/gateway.js';
import { TestUpstream } from '../kit/upstream.js';

const fdTarget = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);

describe('SMTP client thread', () => {
  let certs: TestCerts;
  let dir: string;
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    certs = await testCerts();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const spec = (port: number, user: string, pass: string): TransportSpec => ({
    host: '127.0.0.1',
    port,
    secure: true,
    requireTLS: false,
    servername: 'localhost',
    tls: { rejectUnauthorized: true, servername: 'localhost', ca: certs.caCert },
    name: 'relay.test',
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 10_000,
    maxConnections: 2,
    auth: { user, pass },
  });

  async function bodyFile(content: Buffer): Promise<{ path: string; handle: FileHandle }> {
    dir = await makeTempDir();
    const path = join(dir, 'm.eml');
    await writeFile(path, content);
    const handle = await open(path, 'r');
    cleanups.push(async () => {
      await handle.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { path, handle };
  }

  function thread(): SmtpThread {
    const smtp = new SmtpThread(pino({ level: 'silent' }));
    cleanups.push(() => smtp.stop());
    return smtp;
  }

  it('sends the head, then the open body from an offset, byte for byte; the descriptor stays open', async () => {
    const upstream = await TestUpstream.start({ mode: 'tls' });
    cleanups.push(() => upstream.close());
    const printed = Buffer.from(`From: printer@example.org\r\nSubject: scan\r\n\r\n${'.dot line\r\n'.repeat(3)}${'x'.repeat(700_000)}\r\n`);
    const { path, handle } = await bodyFile(Buffer.concat([Buffer.from('SKIPPED'), printed]));
    const head = Buffer.from('X-Relayed: yes\r\n');
    const smtp = thread();

    const outcome = await smtp.send('u#1', spec(upstream.port, upstream.user, upstream.password), {
      from: upstream.user,
      to: ['a@example.org'],
      size: head.length + printed.length,
      use8BitMime: false,
      head,
      body: { fd: handle.fd, start: 7 },
    });

    expect(outcome.accepted).toEqual(['a@example.org']);
    expect(upstream.received[0].raw.equals(Buffer.concat([head, printed]))).toBe(true);
    expect(fdTarget(handle.fd)).toBe(path);
  });

  it('leaves the descriptor open when the upstream drops the connection in the middle of a large body', async () => {
    const dropper = await droppingUpstream(certs);
    cleanups.push(() => new Promise((resolve) => dropper.server.close(resolve)));
    const { path, handle } = await bodyFile(Buffer.alloc(30_000_000, 'a'));
    const smtp = thread();

    const sending = smtp.send('u#1', spec(dropper.port, 'account@example.org', 'secret'), {
      from: 'account@example.org',
      to: ['a@example.org'],
      size: 30_000_000,
      use8BitMime: false,
      head: Buffer.from('Subject: big\r\n\r\n'),
      body: { fd: handle.fd, start: 0 },
    });

    const err = (await sending.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toMatch(/^(ECONNECTION|ESOCKET|ETIMEDOUT)$/);
    expect(dropper.bodyBytesSeen()).toBeGreaterThan(0);
    expect(dropper.bodyBytesSeen()).toBeLessThan(30_000_000);
    // Still this file, still readable: the thread neither closed it nor read past the answer.
    expect(fdTarget(handle.fd)).toBe(path);
    const check = Buffer.alloc(4);
    expect((await handle.read(check, 0, 4, 29_999_000)).bytesRead).toBe(4);
  });

  it('fails a send still running when the gateway stops, as a dropped connection (the message is deferred)', async () => {
    const upstream = await TestUpstream.start({ mode: 'tls' });
    cleanups.push(() => upstream.close());
    upstream.hangInData();
    const { handle } = await bodyFile(Buffer.from('Subject: s\r\n\r\nbody\r\n'));
    const smtp = new SmtpThread(pino({ level: 'silent' }));

    const sending = smtp.send('u#1', spec(upstream.port, upstream.user, upstream.password), {
      from: upstream.user,
      to: ['a@example.org'],
      size: 20,
      use8BitMime: false,
      head: Buffer.alloc(0),
      body: { fd: handle.fd, start: 0 },
    });
    await expect.poll(() => upstream.hungCount, { timeout: 5_000 }).toBe(1);
    await smtp.stop();

    await expect(sending).rejects.toMatchObject({ code: 'ECONNECTION', message: expect.stringMatching(/stopping/) });
    await expect(smtp.probe(spec(upstream.port, upstream.user, upstream.password))).rejects.toMatchObject({ code: 'ECONNECTION' });
  });
});

/**
 * Implicit TLS, accepts any AUTH PLAIN and the envelope, answers DATA with 354, then drops the connection
 * after the first 64 KiB of the body.
 */
async function droppingUpstream(certs: TestCerts): Promise<{ server: Server; port: number; bodyBytesSeen: () => number }> {
  let seen = 0;
  const server = createServer({ key: certs.key, cert: certs.cert }, (socket: TLSSocket) => {
    let inData = false;
    let buffered = '';
    socket.write('220 dropper ESMTP\r\n');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (inData) {
        seen += chunk.length;
        if (seen > 65_536) socket.destroy();
        return;
      }
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n'); end >= 0 && !inData; end = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, end).toUpperCase();
        buffered = buffered.slice(end + 2);
        if (line.startsWith('EHLO')) socket.write('250-dropper\r\n250-AUTH PLAIN\r\n250 SIZE 50000000\r\n');
        else if (line.startsWith('AUTH')) socket.write('235 ok\r\n');
        else if (line.startsWith('MAIL') || line.startsWith('RCPT')) socket.write('250 ok\r\n');
        else if (line === 'DATA') {
          socket.write('354 go on\r\n');
          inData = true;
        } else socket.write('502 no\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, bodyBytesSeen: () => seen };
}
