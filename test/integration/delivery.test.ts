import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { writeCaFile } from '../kit/certs.js';
import { TEST_DEVICE, TestUpstream, bodyOf, headersOf, sendToGateway, upstreamEntry, type TestUpstreamOptions } from '../kit/upstream.js';

describe('delivery through TLS upstreams', () => {
  let gw: TestGateway | undefined;
  const upstreams: TestUpstream[] = [];
  let caDir: string | undefined;

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    for (const u of upstreams.splice(0)) await u.close();
    if (caDir) await rm(caDir, { recursive: true, force: true });
    caDir = undefined;
  });

  async function startUpstream(options: TestUpstreamOptions): Promise<TestUpstream> {
    const upstream = await TestUpstream.start(options);
    upstreams.push(upstream);
    return upstream;
  }

  async function startGateway(upstreamList: Record<string, unknown>[], extra: Record<string, unknown> = {}): Promise<TestGateway> {
    gw = await startTestGateway({
      devices: [{ ...TEST_DEVICE, upstream: upstreamList[0]?.name }],
      upstreams: upstreamList,
      delivery: { retryBase: '200ms', retryMax: '2s' },
      ...extra,
    });
    return gw;
  }

  async function caFile(): Promise<string> {
    caDir ??= await makeTempDir('scanrelay-ca-');
    return writeCaFile(caDir);
  }

  it('delivers through implicit TLS with the upstream account as sender, body byte-identical', async () => {
    const upstream = await startUpstream({ mode: 'tls' });
    const g = await startGateway([upstreamEntry(upstream, await caFile())]);
    const raw = 'From: Scanner <printer@example.org>\r\nTo: alice@example.org\r\nSubject: Scan 1\r\n\r\nline one\r\n.leading dot\r\n';
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org', raw });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered' });
    expect(upstream.received).toHaveLength(1);
    const got = upstream.received[0];
    expect(got.secure).toBe(true);
    expect(got.user).toBe(upstream.user);
    expect(got.mailFrom).toBe(upstream.user);
    expect(got.rcptTo).toEqual(['alice@example.org']);
    expect(bodyOf(got.raw).toString()).toBe('line one\r\n.leading dot\r\n');
    const head = headersOf(got.raw);
    expect(head).toMatch(/^Received: from \S+ \(\[127\.0\.0\.1\]\) \(device scanner-2f\)\r\n\tby scanrelay \(scanrelay\) with ESMTPA id /);
    expect(head).toContain(`Message-ID: <${id}@scanrelay>`);
    expect(head).toMatch(/\r\nDate: \w{3}, \d{2} \w{3} \d{4} [\d:]{8} \+0000\r\n/);
    expect(head).toContain('From: Scanner <printer@example.org>');
    const message = g.gateway.queue.require(id);
    expect(message.upstreamResponse).toMatch(/^250 /);
    expect(message.recipients[0]).toMatchObject({ address: 'alice@example.org', state: 'delivered' });
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ name: 'gmail-test', state: 'up', waiting: 0, activeSecurity: 'tls' });
  });

  it('delivers through STARTTLS (587-style), upgrading before AUTH', async () => {
    const upstream = await startUpstream({ mode: 'starttls' });
    const g = await startGateway([upstreamEntry(upstream, await caFile())]);
    const id = await sendToGateway(g.smtpPort, { to: 'bob@example.org', subject: 'Scan 2' });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered' });
    expect(upstream.received[0]).toMatchObject({ secure: true, user: upstream.user, mailFrom: upstream.user, rcptTo: ['bob@example.org'] });
    expect(upstream.auths.every((a) => a.secure)).toBe(true);
  });

  it('auto: uses implicit TLS on tlsPort when it answers', async () => {
    const implicit = await startUpstream({ mode: 'tls' });
    const starttls = await startUpstream({ mode: 'starttls' });
    const g = await startGateway([
      upstreamEntry(implicit, await caFile(), { security: 'auto', port: undefined, tlsPort: implicit.port, starttlsPort: starttls.port }),
    ]);
    const id = await sendToGateway(g.smtpPort, { to: 'carol@example.org' });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered' });
    expect(implicit.received).toHaveLength(1);
    expect(starttls.received).toHaveLength(0);
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ activePort: implicit.port, activeSecurity: 'tls' });
    expect(g.logs.some((l) => l.includes('"upstream.auto.selected"') && l.includes('"security":"tls"'))).toBe(true);
  });

  it('auto: falls back to STARTTLS on starttlsPort when tlsPort is closed, and remembers it', async () => {
    const starttls = await startUpstream({ mode: 'starttls' });
    const closed = await startUpstream({ mode: 'tls' });
    const closedPort = closed.port;
    await closed.down();
    const g = await startGateway([
      upstreamEntry(starttls, await caFile(), { security: 'auto', port: undefined, tlsPort: closedPort, starttlsPort: starttls.port }),
    ]);
    const first = await sendToGateway(g.smtpPort, { to: 'dave@example.org' });
    await waitFor(() => g.gateway.queue.get(first)?.state === 'delivered', { what: 'first delivered' });
    const second = await sendToGateway(g.smtpPort, { to: 'dave@example.org' });
    await waitFor(() => g.gateway.queue.get(second)?.state === 'delivered', { what: 'second delivered' });
    expect(starttls.received).toHaveLength(2);
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ activePort: starttls.port, activeSecurity: 'starttls', state: 'up' });
    expect(g.logs.filter((l) => l.includes('"upstream.auto.selected"'))).toHaveLength(1);
  });

  it('never falls back to plaintext when the upstream offers no STARTTLS: the message waits, the error says why', async () => {
    const plain = await startUpstream({ mode: 'starttls', noStarttls: true });
    const g = await startGateway([upstreamEntry(plain, await caFile())]);
    const id = await sendToGateway(g.smtpPort, { to: 'erin@example.org' });
    const message = await waitFor(() => (g.gateway.queue.get(id)?.state === 'deferred' ? g.gateway.queue.get(id) : undefined), { what: 'deferred' });
    expect(message.lastError?.message).toMatch(/STARTTLS/);
    expect(message.lastError?.code).toBe('ETLS');
    expect(plain.auths).toHaveLength(0);
    expect(plain.received).toHaveLength(0);
    expect(g.gateway.delivery.upstreamStatus()[0]).toMatchObject({ state: 'tls-failed', waiting: 1 });
    expect(g.logs.some((l) => l.includes('"upstream.tls-failed"') && l.includes('"level":50'))).toBe(true);
  });

  it('keeps the message when the upstream is down and delivers it once the upstream is back', async () => {
    const upstream = await startUpstream({ mode: 'tls' });
    await upstream.down();
    const g = await startGateway([upstreamEntry(upstream, await caFile())]);
    const id = await sendToGateway(g.smtpPort, { to: 'frank@example.org' });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'deferred', { what: 'deferred' });
    expect(g.gateway.queue.require(id).lastError?.message).toMatch(/ECONNREFUSED/);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('unreachable');
    await upstream.resume();
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered after the upstream returned', timeoutMs: 15_000 });
    expect(upstream.received).toHaveLength(1);
    expect(g.gateway.queue.require(id).attempts).toBeGreaterThanOrEqual(2);
    expect(g.gateway.delivery.upstreamStatus()[0].state).toBe('up');
  });

  it('rewrites From to the device name and the account, keeping the printer address in Reply-To', async () => {
    const upstream = await startUpstream({ mode: 'tls' });
    const g = await startGateway([upstreamEntry(upstream, await caFile(), { fromMode: 'rewrite' })]);
    const raw =
      'From: "MFP" <printer@example.org>\r\nTo: gina@example.org\r\nSubject: s\r\nMessage-ID: <m1@printer>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n';
    const id = await sendToGateway(g.smtpPort, { to: 'gina@example.org', raw });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered' });
    const head = headersOf(upstream.received[0].raw);
    expect(head).toContain(`From: "scanner-2f" <${upstream.user}>\r\nReply-To: "MFP" <printer@example.org>\r\n`);
    expect(head).toContain('Message-ID: <m1@printer>');
    expect(head.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(head.match(/^Date:/gim)).toHaveLength(1);
    expect(bodyOf(upstream.received[0].raw).toString()).toBe('body\r\n');
  });

  it('relays a multi-MB scan attachment byte-identical (sha256 of the decoded attachment equal at the upstream)', async () => {
    const upstream = await startUpstream({ mode: 'tls' });
    const g = await startGateway([upstreamEntry(upstream, await caFile())]);
    const pdf = randomBytes(3 * 1024 * 1024 + 17);
    const raw = scanWithAttachment(pdf);
    const id = await sendToGateway(g.smtpPort, { to: 'alice@example.org', raw });
    await waitFor(() => g.gateway.queue.get(id)?.state === 'delivered', { what: 'delivered', timeoutMs: 20_000 });
    const received = upstream.received[0].raw;
    expect(bodyOf(received).equals(bodyOf(raw))).toBe(true);
    const encoded = /filename="scan\.pdf"\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(received.toString('latin1'))?.[1];
    expect(encoded).toBeDefined();
    const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
    expect(sha(Buffer.from(encoded!.replace(/\r\n/g, ''), 'base64'))).toBe(sha(pdf));
  });
});

function scanWithAttachment(data: Buffer): Buffer {
  const lines = data
    .toString('base64')
    .match(/.{1,76}/g)!
    .join('\r\n');
  return Buffer.from(
    [
      'From: "MFP 2F" <printer@example.org>',
      'To: alice@example.org',
      'Subject: Scanned image',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="scanrelay-boundary"',
      '',
      '--scanrelay-boundary',
      'Content-Type: text/plain',
      '',
      'Please find the scanned document attached.',
      '--scanrelay-boundary',
      'Content-Type: application/pdf; name="scan.pdf"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="scan.pdf"',
      '',
      lines,
      '--scanrelay-boundary--',
      '',
    ].join('\r\n'),
  );
}
