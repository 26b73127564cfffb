import { afterEach, describe, expect, it } from 'vitest';
import { readFile, rm, stat, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import nodemailer from 'nodemailer';
import { generate } from 'selfsigned';
import { buildTestConfig, makeTempDir, memoryLogger, startTestGateway, type TestGateway } from '../kit/gateway.js';
import { RawSmtpClient } from '../kit/raw-smtp.js';
import { createGateway } from '../../src/app.js';

const USER = 'wc6505';
const PASS = 'Tls-pass-0123456789';
const DEVICES = [{ name: 'printer', username: USER, password: PASS, allowRecipients: ['*@example.org'] }];
const TLS1_ONLY: ConnectionOptions = { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' };

async function generatedCert(dataDir: string): Promise<string> {
  return readFile(join(dataDir, 'tls', 'device-cert.pem'), 'utf8');
}

/** Completes a TLS handshake (on a port, or on an existing socket after STARTTLS); resolves the protocol or the error. */
function handshake(options: ConnectionOptions): Promise<{ socket?: TLSSocket; protocol?: string | null; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', ...options }, () => resolve({ socket, protocol: socket.getProtocol() }));
    socket.once('error', (error) => {
      socket.destroy();
      resolve({ error });
    });
  });
}

/** Reads the first SMTP reply line on a TLS socket. */
function firstLine(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n');
      if (end !== -1) resolve(buffer.slice(0, end));
    });
    socket.once('error', reject);
  });
}

/** Plaintext EHLO + STARTTLS, then hands back the raw client whose socket is ready for the TLS handshake. */
async function startTls(port: number): Promise<RawSmtpClient> {
  const { client } = await RawSmtpClient.open(port);
  const ehlo = await client.command('EHLO NPIF65E56');
  expect(ehlo.lines.some((l) => l.includes('STARTTLS'))).toBe(true);
  expect((await client.command('STARTTLS')).code).toBe(220);
  return client;
}

describe('TLS towards devices', () => {
  let gw: TestGateway | undefined;
  const cleanups: Array<() => unknown> = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await gw?.stop();
    gw = undefined;
  });

  it('offers no TLS and generates no certificate by default', async () => {
    gw = await startTestGateway({ devices: DEVICES });
    const { client } = await RawSmtpClient.open(gw.smtpPort);
    cleanups.push(() => client.close());
    const ehlo = await client.command('EHLO NPIF65E56');
    expect(ehlo.lines.some((l) => l.includes('STARTTLS'))).toBe(false);
    expect(gw.addresses.smtps).toBeUndefined();
    await expect(access(join(gw.dataDir, 'tls'))).rejects.toThrow();
  });

  it('STARTTLS on the plaintext port (smtp.starttls): AUTH and send over it, trusting the generated certificate', async () => {
    gw = await startTestGateway({ smtp: { starttls: true }, devices: DEVICES });
    const cert = await generatedCert(gw.dataDir);
    expect((await stat(join(gw.dataDir, 'tls', 'device-key.pem'))).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(cert);
    expect(x509.checkHost('scanrelay')).toBe('scanrelay');
    expect(x509.checkIP('127.0.0.1')).toBe('127.0.0.1');

    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.smtpPort,
      secure: false,
      requireTLS: true,
      tls: { ca: cert, minVersion: 'TLSv1.2' },
      auth: { user: USER, pass: PASS },
    });
    cleanups.push(() => transport.close());
    const info = await transport.sendMail({ from: 'scanner@example.org', to: 'inbox@example.org', subject: 'over starttls', text: 'scan' });
    const id = /queued as (\w+)/.exec(info.response)?.[1];
    expect(id).toBeDefined();
    expect(gw.gateway.queue.require(id!).device).toBe('printer');
  });

  it('implicit TLS listener on smtp.tlsPort, alongside the plaintext one', async () => {
    gw = await startTestGateway({ smtp: { tlsPort: 0 }, devices: DEVICES });
    expect(gw.addresses.smtps?.port).toBeGreaterThan(0);
    const cert = await generatedCert(gw.dataDir);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.addresses.smtps!.port,
      secure: true,
      tls: { ca: cert },
      auth: { user: USER, pass: PASS },
    });
    cleanups.push(() => transport.close());
    const info = await transport.sendMail({ from: 'scanner@example.org', to: 'inbox@example.org', subject: 'over smtps', text: 'scan' });
    expect(info.response).toMatch(/^250 .*queued as \w+/);
    // smtp.starttls stays off: the plaintext port does not offer it.
    const { client } = await RawSmtpClient.open(gw.smtpPort);
    cleanups.push(() => client.close());
    expect((await client.command('EHLO x')).lines.some((l) => l.includes('STARTTLS'))).toBe(false);
  });

  it('refuses a TLS 1.0 client by default, on both listeners', async () => {
    gw = await startTestGateway({ smtp: { starttls: true, tlsPort: 0 }, devices: DEVICES });
    const ca = await generatedCert(gw.dataDir);

    const implicit = await handshake({ port: gw.addresses.smtps!.port, ca, ...TLS1_ONLY });
    expect(implicit.error).toBeDefined();
    expect(implicit.protocol).toBeUndefined();

    const client = await startTls(gw.smtpPort);
    cleanups.push(() => client.close());
    const upgraded = await handshake({ socket: client.socket, ca, ...TLS1_ONLY });
    expect(upgraded.error).toBeDefined();

    // A modern client still gets in.
    const modern = await handshake({ port: gw.addresses.smtps!.port, ca });
    cleanups.push(() => modern.socket?.destroy());
    expect(modern.protocol).toMatch(/^TLSv1\.[23]$/);
  });

  it('accepts a real TLS 1.0 handshake with smtp.tls.legacyTls, on both listeners', async () => {
    gw = await startTestGateway({ smtp: { starttls: true, tlsPort: 0, tls: { legacyTls: true } }, devices: DEVICES });
    const ca = await generatedCert(gw.dataDir);

    const implicit = await handshake({ port: gw.addresses.smtps!.port, ca, ...TLS1_ONLY });
    cleanups.push(() => implicit.socket?.destroy());
    expect(implicit.error).toBeUndefined();
    expect(implicit.protocol).toBe('TLSv1');
    expect(await firstLine(implicit.socket!)).toMatch(/^220 /);

    // RSA key exchange (no ECDHE), as the oldest printer firmware offers.
    const rsaKx = await handshake({ port: gw.addresses.smtps!.port, ca, ...TLS1_ONLY, ciphers: 'AES128-SHA:@SECLEVEL=0' });
    cleanups.push(() => rsaKx.socket?.destroy());
    expect(rsaKx.protocol).toBe('TLSv1');
    expect(rsaKx.socket!.getCipher().name).toBe('AES128-SHA');

    const client = await startTls(gw.smtpPort);
    cleanups.push(() => client.close());
    const upgraded = await handshake({ socket: client.socket, ca, ...TLS1_ONLY });
    cleanups.push(() => upgraded.socket?.destroy());
    expect(upgraded.protocol).toBe('TLSv1');
    upgraded.socket!.write('EHLO NPIF65E56\r\n');
    expect(await firstLine(upgraded.socket!)).toMatch(/^250[- ]/);
  });

  it('opts in per listener: legacyTls "starttls" lets TLS 1.0 in on the plaintext port only', async () => {
    gw = await startTestGateway({ smtp: { starttls: true, tlsPort: 0, tls: { legacyTls: 'starttls' } }, devices: DEVICES });
    const ca = await generatedCert(gw.dataDir);

    const implicit = await handshake({ port: gw.addresses.smtps!.port, ca, ...TLS1_ONLY });
    expect(implicit.error).toBeDefined();

    const client = await startTls(gw.smtpPort);
    cleanups.push(() => client.close());
    const upgraded = await handshake({ socket: client.socket, ca, ...TLS1_ONLY });
    cleanups.push(() => upgraded.socket?.destroy());
    expect(upgraded.protocol).toBe('TLSv1');
  });

  it('generates the certificate once and reuses it on the next start', async () => {
    const dataDir = await makeTempDir();
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    gw = await startTestGateway({ smtp: { starttls: true }, devices: DEVICES }, { dataDir });
    const first = await generatedCert(dataDir);
    expect(gw.logs.some((l) => l.includes('"source":"generated"'))).toBe(true);
    await gw.stop();

    gw = await startTestGateway({ smtp: { starttls: true }, devices: DEVICES }, { dataDir });
    expect(await generatedCert(dataDir)).toBe(first);
    expect(gw.logs.some((l) => l.includes('"source":"reused"'))).toBe(true);
    await gw.stop();

    // A new smtp.hostname the certificate does not name: a fresh one is made.
    gw = await startTestGateway({ smtp: { starttls: true, hostname: 'scan-gw.example.org' }, devices: DEVICES }, { dataDir });
    const third = await generatedCert(dataDir);
    expect(third).not.toBe(first);
    expect(new X509Certificate(third).checkHost('scan-gw.example.org')).toBe('scan-gw.example.org');
  });

  it('serves a configured certificate and key instead of generating one', async () => {
    const dir = await makeTempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pems = await generate([{ name: 'commonName', value: 'relay.lan.example' }], { keyType: 'rsa', keySize: 2048, algorithm: 'sha256' });
    await writeFile(join(dir, 'cert.pem'), pems.cert);
    await writeFile(join(dir, 'key.pem'), pems.private, { mode: 0o600 });

    gw = await startTestGateway({ smtp: { tlsPort: 0, tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } }, devices: DEVICES });
    const served = await handshake({ port: gw.addresses.smtps!.port, ca: pems.cert, servername: 'relay.lan.example' });
    cleanups.push(() => served.socket?.destroy());
    expect(served.error).toBeUndefined();
    expect(served.socket!.getPeerX509Certificate()?.fingerprint256).toBe(new X509Certificate(pems.cert).fingerprint256);
    await expect(access(join(gw.dataDir, 'tls'))).rejects.toThrow();
  });

  it('refuses to start with a key that does not belong to the configured certificate', async () => {
    const dir = await makeTempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const [a, b] = await Promise.all([generate(undefined, { keySize: 2048 }), generate(undefined, { keySize: 2048 })]);
    await writeFile(join(dir, 'cert.pem'), a.cert);
    await writeFile(join(dir, 'key.pem'), b.private, { mode: 0o600 });
    const config = buildTestConfig(dir, { smtp: { starttls: true, tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } } });
    await expect(createGateway(config, { defaultMetrics: false, logger: memoryLogger([]) })).rejects.toMatchObject({ code: 'SCANRELAY_TLS_INVALID' });
  });
});
