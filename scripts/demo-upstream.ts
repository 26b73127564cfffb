/**
 * A local stand-in for Gmail, for trying scanrelay without a Google account: the testkit's TLS+AUTH
 * upstream (implicit TLS like 465, AUTH PLAIN/LOGIN with one account), its CA certificate written where
 * config/demo.yaml trusts it, and a line printed for every message it receives. Used by
 * `npm run demo:upstream` (see README) and by test/integration/demo.test.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { testCerts } from '../test/kit/certs.js';
import { TestUpstream } from '../test/kit/upstream.js';

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

export async function startDemoUpstream(options: { port: number; caFile: string; onMessage?: (m: DemoMessage) => void }): Promise<DemoUpstream> {
  const caFile = resolve(options.caFile);
  await mkdir(dirname(caFile), { recursive: true });
  await writeFile(caFile, (await testCerts()).caCert);
  const messages: DemoMessage[] = [];
  const upstream = await TestUpstream.start({
    mode: 'tls',
    port: options.port,
    user: DEMO_UPSTREAM_USER,
    password: DEMO_UPSTREAM_PASSWORD,
    size: 35_882_577,
    banner: 'scanrelay demo upstream',
    onMessage: ({ message, head }) => {
      if (!message) return;
      const demo: DemoMessage = {
        from: message.mailFrom,
        to: message.rcptTo,
        size: message.raw.length,
        sha256: message.sha256,
        raw: message.raw,
        subject: /^Subject: (.*)$/im.exec(head)?.[1]?.trim(),
      };
      messages.push(demo);
      options.onMessage?.(demo);
    },
  });
  return { port: upstream.port, caFile, messages, close: () => upstream.close() };
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
