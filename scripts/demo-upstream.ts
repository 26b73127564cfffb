/**
 * A local stand-in for Gmail, for trying scanrelay without a Google account: implicit TLS (like 465) with
 * a self-signed certificate made at start, AUTH PLAIN/LOGIN with one account, and a line printed for every
 * message it receives. Used by `npm run demo:upstream` (see README) and by test/integration/demo.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { generate } from 'selfsigned';

export const DEMO_UPSTREAM_USER = 'demo-account@example.org';
export const DEMO_UPSTREAM_PASSWORD = 'demo-app-password';

export interface DemoMessage {
  from: string;
  to: string[];
  size: number;
  sha256: string;
  subject?: string;
  raw: Buffer;
}

export interface DemoUpstream {
  port: number;
  caFile: string;
  messages: DemoMessage[];
  close(): Promise<void>;
}

export async function startDemoUpstream(options: { port: number; host?: string; caFile: string; onMessage?: (m: DemoMessage) => void }): Promise<DemoUpstream> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const caFile = resolve(options.caFile);
  await mkdir(dirname(caFile), { recursive: true });
  await writeFile(caFile, pems.cert);
  const messages: DemoMessage[] = [];
  const server = new SMTPServer({
    secure: true,
    key: pems.private,
    cert: pems.cert,
    logger: false,
    disableReverseLookup: true,
    authMethods: ['PLAIN', 'LOGIN'],
    size: 35_882_577,
    banner: 'scanrelay demo upstream',
    onAuth(auth, _session, callback) {
      if (auth.username === DEMO_UPSTREAM_USER && auth.password === DEMO_UPSTREAM_PASSWORD) return callback(null, { user: auth.username });
      callback(Object.assign(new Error('5.7.8 Username and Password not accepted'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const message: DemoMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          size: raw.length,
          sha256: createHash('sha256').update(raw).digest('hex'),
          raw,
          subject: /^Subject: (.*)$/im.exec(raw.subarray(0, 64 * 1024).toString('latin1'))?.[1]?.trim(),
        };
        messages.push(message);
        options.onMessage?.(message);
        callback(null, '2.0.0 OK demo upstream');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((ok, fail) => {
    server.server.once('error', fail);
    server.listen(options.port, options.host ?? '127.0.0.1', () => ok());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    caFile,
    messages,
    close: () => new Promise((done) => server.close(() => done())),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.SCANRELAY_DEMO_UPSTREAM_PORT ?? 4650);
  const upstream = await startDemoUpstream({
    port,
    caFile: process.env.SCANRELAY_DEMO_UPSTREAM_CA ?? 'data/demo-upstream-ca.pem',
    onMessage: (m) =>
      console.log(`received: from=${m.from} to=${m.to.join(',')} subject=${JSON.stringify(m.subject ?? '')} size=${m.size} sha256=${m.sha256.slice(0, 16)}...`),
  });
  console.log(`demo upstream: implicit TLS on 127.0.0.1:${upstream.port}, account ${DEMO_UPSTREAM_USER}, certificate in ${upstream.caFile}`);
  console.log('now run `npm run start:demo` in another terminal; Ctrl-C stops this one');
  process.on('SIGINT', () => void upstream.close().then(() => process.exit(0)));
  process.on('SIGTERM', () => void upstream.close().then(() => process.exit(0)));
}
