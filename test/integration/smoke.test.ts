import { afterEach, describe, expect, it } from 'vitest';
import nodemailer from 'nodemailer';
import { startTestGateway, type TestGateway } from '../kit/gateway.js';

describe('gateway smoke', () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  it('accepts an authenticated message and queues it as held without an upstream', async () => {
    gw = await startTestGateway({
      devices: [{ name: 'scanner', username: 'scanner', password: 'pw-0123456789', allowRecipients: ['*@example.org'] }],
    });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: gw.smtpPort, ignoreTLS: true, auth: { user: 'scanner', pass: 'pw-0123456789' } });
    const info = await transport.sendMail({ from: 'p@example.org', to: 'x@example.org', subject: 's', text: 'body' });
    const id = /queued as (\w+)/.exec(info.response)?.[1];
    expect(id).toBeDefined();
    expect(gw.gateway.queue.require(id!).state).toBe('held');
  });
});
