/**
 * The README's "see a scan delivered" path: config/demo.yaml + scripts/demo-upstream.ts, with only the
 * ports and paths moved to temp/ephemeral ones through the documented environment overrides.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { loadConfig } from '../../src/config/index.js';
import { createGateway, type Gateway } from '../../src/app.js';
import { startDemoUpstream, type DemoUpstream } from '../../scripts/demo-upstream.js';
import { makeTempDir, memoryLogger, waitFor } from '../kit/gateway.js';

describe('README demo: printer -> scanrelay -> local TLS upstream', () => {
  let upstream: DemoUpstream | undefined;
  let gateway: Gateway | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    gateway = upstream = dir = undefined;
  });

  it('delivers a scan sent with the demo credentials to the demo upstream over TLS', async () => {
    dir = await makeTempDir();
    upstream = await startDemoUpstream({ port: 0, caFile: join(dir, 'demo-upstream-ca.pem') });
    const config = loadConfig('config/demo.yaml', {
      SCANRELAY_DATA_DIR: join(dir, 'data'),
      SCANRELAY_SMTP_PORT: '0',
      SCANRELAY_ADMIN_PORT: '0',
      SCANRELAY_DEMO_UPSTREAM_PORT: String(upstream.port),
      SCANRELAY_DEMO_UPSTREAM_CA: upstream.caFile,
    });
    gateway = await createGateway(config, { defaultMetrics: false, logger: memoryLogger([]) });
    const { smtp } = await gateway.start();

    const printer = nodemailer.createTransport({
      host: '127.0.0.1',
      port: smtp.port,
      ignoreTLS: true,
      auth: { user: 'demo-scanner', pass: 'demo-password-change-me' },
    });
    const info = await printer.sendMail({
      from: 'scanner@example.org',
      to: 'you@example.org',
      subject: 'scan',
      text: 'hi',
      attachments: [{ filename: 'scan.pdf', content: Buffer.alloc(200_000, 7) }],
    });
    expect(info.response).toMatch(/^250 2\.0\.0 OK queued as \w+$/);

    const received = await waitFor(() => upstream!.messages[0], { what: 'the demo upstream to receive the scan' });
    expect(received.subject).toBe('scan');
    expect(received.from).toBe('demo-account@example.org');
    expect(received.to).toEqual(['you@example.org']);
    const id = /queued as (\w+)/.exec(info.response)![1];
    await waitFor(() => gateway!.queue.get(id)?.state === 'delivered', { what: 'the message to be marked delivered' });
  });
});
