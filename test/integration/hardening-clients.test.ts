/**
 * Hostile and broken clients against a real in-process gateway over loopback: connection floods (global
 * and per-address), silent clients, huge command lines, invalid base64 in AUTH, pipelined garbage,
 * random bytes, brute force across connections and mechanisms, and open-relay probes. The gateway must
 * answer with well-formed SMTP codes, keep its memory bounded, stay up (a normal client is served
 * afterwards) and queue nothing it did not answer 250 for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildTestConfig, startTestGateway, waitFor, type RawConfig, type TestGateway } from '../kit/gateway.js';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';
import { authenticatedClient, dataPayload, deviceTransport, queueIdOf, scannerDevice, SCANNER_PASSWORD, spoolEntries } from '../kit/inbound-scope.js';
import { apiClient } from '../unit/admin/api-client.js';
import { converse, parseReplies } from '../unit/hardening/smtp-wire.js';
import { LONG_TESTS, createPrng, seedFrom } from '../unit/hardening/prng.js';

const TOKEN = 'test-admin-token-0123456789';

/** A full garbage collection on demand (the test process is not started with --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('hostile and broken clients', () => {
  let gw: TestGateway | undefined;
  let raw: RawConfig = {};
  const clients: RawSmtpClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await gw?.stop();
    gw = undefined;
  });

  async function start(extra: RawConfig = {}): Promise<TestGateway> {
    raw = {
      devices: [scannerDevice()],
      ...extra,
      smtp: {
        socketTimeout: '2s',
        authLockout: { maxFailures: 1000, maxFailuresPerAddress: 1000, maxFailuresPerUsername: 1000 },
        ...(extra.smtp as RawConfig | undefined),
      },
    };
    gw = await startTestGateway(raw);
    return gw;
  }

  async function open(): Promise<{ client: RawSmtpClient; code: number; text: string }> {
    const { client, greeting } = await RawSmtpClient.open(gw!.smtpPort);
    clients.push(client);
    return { client, code: greeting.code, text: greeting.text };
  }

  /**
   * A normal printer can still log in and queue a scan. Sockets the test just closed may still count
   * against the per-address limit for a moment: a 421 at the greeting is retried (bounded).
   */
  async function normalClientServed(): Promise<void> {
    const info = await waitFor(
      async () => {
        const transport = deviceTransport(gw!.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
        try {
          return await transport.sendMail({ from: 'scanner@berkeley.edu', to: 'ops@example.org', subject: 'after the storm', text: 'scan' });
        } catch (err) {
          if ((err as { responseCode?: number }).responseCode === 421) return undefined;
          throw err;
        } finally {
          transport.close();
        }
      },
      { what: 'a normal client served', intervalMs: 100 },
    );
    expect(gw!.gateway.queue.require(queueIdOf(info.response)).headers.subject).toBe('after the storm');
  }

  it('connection floods: over smtp.maxClients and over maxConnectionsPerIp the extra ones get 421 at once; the admitted ones work', async () => {
    // reservedClients 0: this address has no device, and all 10 slots are open to it.
    const g = await start({ smtp: { maxClients: 10, maxConnectionsPerIp: 100, reservedClients: 0 } });
    const flood = await Promise.all(Array.from({ length: 40 }, () => open()));
    const admitted = flood.filter((c) => c.code === 220);
    const refused = flood.filter((c) => c.code === 421);
    expect(admitted).toHaveLength(10);
    expect(refused).toHaveLength(30);
    expect(refused[0].text).toMatch(/Too many connected clients/);
    await Promise.all(refused.map((c) => c.client.waitClosed()));
    for (const { client } of admitted) expect((await client.command('EHLO flood.test')).code).toBe(250);
    for (const { client } of flood) client.close();

    // The per-address limit applies from the next connection on (config reload, no restart).
    await g.gateway.reload(buildTestConfig(g.dataDir, { ...raw, smtp: { ...(raw.smtp as RawConfig), maxClients: 10, maxConnectionsPerIp: 3 } }));
    const second = await waitFor(
      async () => {
        // 10 at once stays within maxClients, so every refusal here is the per-address one.
        const batch = await Promise.all(Array.from({ length: 10 }, () => open()));
        const perAddressOnly = batch.every((c) => c.code === 220 || /Too many connections from this address/.test(c.text));
        if (perAddressOnly && batch.filter((c) => c.code === 220).length === 3) return batch;
        for (const { client } of batch) client.close(); // the first flood's sockets were still closing
        return undefined;
      },
      { what: 'a flood with exactly 3 admitted' },
    );
    const perAddress = second.filter((c) => c.code === 421);
    expect(perAddress).toHaveLength(7);
    expect(perAddress.every((c) => /Too many connections from this address/.test(c.text))).toBe(true);
    for (const { client } of second) client.close();
    await waitFor(
      async () => {
        const probe = await open();
        probe.client.close();
        return probe.code === 220;
      },
      { what: 'slots freed' },
    );
    await normalClientServed();
  });

  it('a client that never speaks gets 421 after smtp.socketTimeout, and leaves nothing behind', async () => {
    const g = await start({ smtp: { socketTimeout: '1s' } });
    const silent = await converse(g.smtpPort, { script: [], timeoutMs: 8_000 });
    expect(silent.closedByServer).toBe(true);
    expect(parseReplies(silent.text)).toMatchObject({ codes: [220, 421], malformed: [] });
    expect(silent.text).toMatch(/421 .*Timeout/);
    // Mid-transaction silence ends the same way, with nothing queued.
    const stalled = await converse(g.smtpPort, {
      script: [
        'EHLO slow.test\r\n',
        `AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}\r\n`,
        'MAIL FROM:<a@berkeley.edu>\r\n',
        'RCPT TO:<ops@example.org>\r\n',
        'DATA\r\n',
        'Subject: half\r\n\r\nhalf a sc',
      ],
      timeoutMs: 8_000,
    });
    expect(stalled.closedByServer).toBe(true);
    expect(parseReplies(stalled.text)).toMatchObject({ codes: [220, 250, 235, 250, 250, 354, 421], malformed: [] });
    // The half-written temp body goes once the aborted DATA stream has unwound.
    await waitFor(async () => JSON.stringify(await spoolEntries(g.dataDir)) === JSON.stringify({ queue: [], part: [] }), { what: 'an empty spool' });
    expect(g.gateway.queue.list().total).toBe(0);
    await normalClientServed();
  });

  it('a client dripping one byte at a time mid-DATA is closed with 421 after smtp.maxSessionDuration, and leaves nothing behind', async () => {
    const g = await start({ smtp: { socketTimeout: '1s', maxSessionDuration: '2s' } });
    const { client } = await open();
    await client.command('EHLO drip.test');
    expect((await client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`)).code).toBe(235);
    await client.command('MAIL FROM:<a@berkeley.edu>');
    await client.command('RCPT TO:<ops@example.org>');
    expect((await client.command('DATA')).code).toBe(354);
    // One byte every 300 ms never lets the 1 s idle timer fire; only the session limit can end this.
    const drip = setInterval(() => {
      if (!client.closed) client.write('x');
    }, 300);
    try {
      const reply = await client.read(8_000);
      expect(reply.code).toBe(421);
      expect(reply.text).toMatch(/Session time limit/);
      await client.waitClosed(5_000);
    } finally {
      clearInterval(drip);
    }
    await waitFor(async () => JSON.stringify(await spoolEntries(g.dataDir)) === JSON.stringify({ queue: [], part: [] }), { what: 'an empty spool' });
    expect(g.gateway.queue.list().total).toBe(0);
    await normalClientServed();
  });

  it('huge command lines: 421 for lines over the 16 KB limit, 5xx for over-long names and addresses; never a crash', async () => {
    const g = await start();
    const noNewline = await converse(g.smtpPort, { script: [`EHLO ${'x'.repeat(40_000)}`], timeoutMs: 8_000 });
    expect(noNewline.closedByServer).toBe(true);
    expect(parseReplies(noNewline.text)).toMatchObject({ codes: [220, 421], malformed: [] });
    expect(noNewline.text).toMatch(/421 Error: Command line too long/);

    const longLine = await converse(g.smtpPort, { script: [`NOOP ${'y'.repeat(20_000)}\r\n`], timeoutMs: 8_000 });
    expect(parseReplies(longLine.text)).toMatchObject({ codes: [220, 421], malformed: [] });

    const client = await authenticatedClient(g.smtpPort);
    clients.push(client);
    expect((await client.command(`EHLO ${'h'.repeat(5_000)}`)).code).toBe(501);
    expect((await client.command(`MAIL FROM:<${'a'.repeat(10_000)}@berkeley.edu>`)).code).toBeGreaterThanOrEqual(500);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
    const longRcpt = await client.command(`RCPT TO:<${'r'.repeat(10_000)}@berkeley.edu>`);
    expect(longRcpt.code).toBeGreaterThanOrEqual(500);
    expect((await client.command('RCPT TO:<ops@example.org>')).code).toBe(250);
    expect((await client.command('RSET')).code).toBe(250);
    expect(g.gateway.queue.stats().counts.queued).toBe(0);
    await normalClientServed();
  });

  it('invalid AUTH input (bad base64, missing fields, unknown mechanism, aborts): 5xx, the session stays usable', async () => {
    const _g = await start();
    const { client } = await open();
    await client.command('EHLO auth.fuzz');
    const attempts: Array<[string, string[]]> = [
      ['AUTH PLAIN !!!not*base64***', []],
      ['AUTH PLAIN =', []],
      [`AUTH PLAIN ${b64('no-separators-at-all')}`, []],
      [`AUTH PLAIN ${b64('\0\0')}`, []],
      [`AUTH PLAIN ${b64(`\0warren-2f\0${'p'.repeat(5_000)}`)}`, []],
      ['AUTH PLAIN', ['%%%%']],
      ['AUTH LOGIN', ['@@@not base64@@@', '###']],
      ['AUTH LOGIN', [b64('warren-2f'), '*']],
      ['AUTH CRAM-MD5', ['~~~ not base64 ~~~']],
      ['AUTH CRAM-MD5', [b64('warren-2f')]],
      ['AUTH XOAUTH2 dXNlcj1h', []],
      ['AUTH GSSAPI', []],
      ['AUTH', []],
    ];
    for (const [command, continuations] of attempts) {
      let reply = await client.command(command);
      for (const line of continuations) {
        if (reply.code !== 334) break;
        reply = await client.command(line);
      }
      expect(reply.code, `${command} ${continuations.join(' / ')} -> ${reply.code} ${reply.text}`).toBeGreaterThanOrEqual(500);
      expect(reply.code).toBeLessThan(600);
    }
    // Still the same session: a correct login works now.
    const challenge = await client.command('AUTH CRAM-MD5');
    const digest = createHmac('md5', SCANNER_PASSWORD).update(Buffer.from(challenge.text, 'base64')).digest('hex');
    expect((await client.command(b64(`warren-2f ${digest}`))).code).toBe(235);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
  });

  it('pipelined garbage, binary noise, HTTP, TLS hellos and early talkers: well-formed replies, then the connection ends', async () => {
    const seed = seedFrom('SCANRELAY_FUZZ_SEED');
    const random = createPrng(seed);
    console.log(`hardening-clients: noise seed ${seed}`);
    const g = await start();
    const tlsClientHello = Buffer.from(`16030100a5010000a10303${'00'.repeat(32)}000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035000a01000058`, 'hex');
    const scripts: Array<[string, Array<string | Buffer | number>, boolean?]> = [
      ['pipelined unknown commands', [Array.from({ length: 40 }, (_, i) => `XYZZY${i} ${'?'.repeat(i)}\r\n`).join('')]],
      ['pipelined mixed garbage', [`EHLO x\r\nMAIL FROM:<\r\nRCPT TO:>\r\nDATA\r\n\0\0\0\r\n${'\xff\xfe'.repeat(50)}\r\nAUTH\r\n`.repeat(5)]],
      ['random bytes without newlines', [random.bytes(40_000)]],
      ['random bytes with newlines', [Buffer.concat(Array.from({ length: 300 }, () => Buffer.concat([random.bytes(random.int(0, 80)), Buffer.from('\r\n')])))]],
      ['HTTP request', ['GET / HTTP/1.1\r\nHost: gateway\r\n\r\n']],
      ['TLS ClientHello on the plaintext port', [tlsClientHello]],
      ['early talker (before the greeting)', ['EHLO hurry\r\nMAIL FROM:<a@b.c>\r\n'], false],
      ['NUL and control bytes in commands', ['EH\0LO x\r\nMAIL\x07FROM:<a@b>\r\nRCPT TO:<\x1b[31m@x>\r\n'.repeat(6)]],
    ];
    for (const [name, script, awaitGreeting] of scripts) {
      const talk = await converse(g.smtpPort, { script: [...script, 200, 'QUIT\r\n'], timeoutMs: 10_000, awaitGreeting: awaitGreeting ?? true });
      const parsed = parseReplies(talk.text);
      expect(parsed.malformed, `${name}: ${JSON.stringify(talk.text.slice(0, 300))}`).toEqual([]);
      expect(parsed.codes.length, name).toBeGreaterThan(0);
      expect(talk.closedByServer, `${name}: still open after 10 s`).toBe(true);
    }
    expect(g.gateway.queue.stats().counts.queued).toBe(0);
    expect(await spoolEntries(g.dataDir)).toEqual({ queue: [], part: [] });
    await normalClientServed();
  });

  it(`memory stays bounded through ${LONG_TESTS ? 3000 : 300} hostile sessions (rss and live heap growth printed), and nothing is left open`, {
    timeout: LONG_TESTS ? 300_000 : 60_000,
  }, async () => {
    const seed = seedFrom('SCANRELAY_FUZZ_SEED');
    const random = createPrng(seed);
    const g = await start();
    const gc = exposeGc();
    gc();
    const before = process.memoryUsage();
    const noise = () =>
      random.pick([
        () => [random.bytes(random.int(1_000, 60_000))],
        () => [`EHLO ${'x'.repeat(random.int(1, 30_000))}\r\n`],
        () => ['EHLO a\r\n', `AUTH PLAIN ${random.bytes(random.int(10, 12_000)).toString('base64')}\r\n`],
        () => [
          `EHLO a\r\nAUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}\r\nMAIL FROM:<a@berkeley.edu>\r\nRCPT TO:<ops@example.org>\r\nDATA\r\n`,
          random.bytes(random.int(1_000, 200_000)),
        ],
        () => [Array.from({ length: 200 }, () => 'NOOP\r\n').join('')],
      ])();
    const sessions = LONG_TESTS ? 3000 : 300;
    let done = 0;
    const worker = async () => {
      while (done < sessions) {
        done++;
        const talk = await converse(g.smtpPort, { script: [...noise(), 50, '\r\n.\r\nQUIT\r\n'], timeoutMs: 10_000 });
        expect(parseReplies(talk.text).malformed).toEqual([]);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const rssGrowthMb = (process.memoryUsage().rss - before.rss) / 1024 / 1024;
    gc();
    // The live heap after a full GC is what a leak would grow; RSS also holds garbage not yet collected.
    const heapGrowthMb = (process.memoryUsage().heapUsed - before.heapUsed) / 1024 / 1024;
    console.log(
      `hardening-clients: after ${sessions} hostile sessions: rss growth ${rssGrowthMb.toFixed(1)} MB, live heap growth after GC ${heapGrowthMb.toFixed(1)} MB (seed ${seed})`,
    );
    expect(heapGrowthMb).toBeLessThan(40);
    expect(rssGrowthMb).toBeLessThan(300);
    // Every session is closed on the gateway side too: a full set of new clients is admitted.
    const fresh = await Promise.all(Array.from({ length: 10 }, () => open()));
    expect(fresh.every((c) => c.code === 220)).toBe(true);
    for (const { client } of fresh) client.close();
    await normalClientServed();
  });

  it('brute force across connections and mechanisms (and unknown logins) is locked out; the admin can lift it', async () => {
    const g = await start({ smtp: { socketTimeout: '2s', authLockout: { maxFailures: 5, maxFailuresPerAddress: 5, window: '10m', duration: '15m' } } });
    const guesses: Array<(client: RawSmtpClient) => Promise<number>> = [
      async (c) => (await c.command(`AUTH PLAIN ${plainAuth('warren-2f', 'guess-1')}`)).code,
      async (c) => {
        await c.command('AUTH LOGIN');
        await c.command(b64('warren-2f'));
        return (await c.command(b64('guess-2'))).code;
      },
      async (c) => {
        const challenge = await c.command('AUTH CRAM-MD5');
        const digest = createHmac('md5', 'guess-3').update(Buffer.from(challenge.text, 'base64')).digest('hex');
        return (await c.command(b64(`warren-2f ${digest}`))).code;
      },
      async (c) => (await c.command(`AUTH PLAIN ${plainAuth('admin', 'admin')}`)).code,
      async (c) => (await c.command(`AUTH PLAIN ${plainAuth('root', 'password')}`)).code,
    ];
    const waiting = await open(); // already connected when the lock-out starts
    await waiting.client.command('EHLO waiting');
    for (const guess of guesses) {
      const { client, code } = await open();
      expect(code).toBe(220);
      await client.command('EHLO guesser');
      expect(await guess(client)).toBe(535);
      client.close();
    }
    const locked = await open();
    expect(locked.code).toBe(421);
    expect(locked.text).toMatch(/Too many failed logins/);
    // Even the right password is refused while locked.
    expect((await waiting.client.command(`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`)).code).toBe(454);

    const api = apiClient(g, 'inject', TOKEN);
    expect((await api.call('GET', '/api/lockouts')).json.items).toEqual([expect.objectContaining({ address: '127.0.0.1' })]);
    expect((await api.call('DELETE', '/api/lockouts/127.0.0.1')).status).toBe(204);
    await normalClientServed();
  });

  it('open-relay probes are all refused: unauthenticated relay, other domains, source routes, percent hacks and address tricks', async () => {
    const g = await start();
    // Not logged in: nothing is relayed, whatever the order of commands.
    const anonymous = await converse(g.smtpPort, {
      script: [
        'EHLO relay-probe\r\n',
        'MAIL FROM:<spammer@evil.com>\r\n',
        'RCPT TO:<victim@gmail.com>\r\n',
        'RCPT TO:<ops@example.org>\r\n',
        'DATA\r\n',
        'Subject: relay?\r\n\r\nspam\r\n.\r\n',
        'QUIT\r\n',
      ],
      timeoutMs: 8_000,
    });
    const anonymousCodes = parseReplies(anonymous.text).codes;
    expect(anonymousCodes.slice(0, 3)).toEqual([220, 250, 530]);
    expect(anonymousCodes).not.toContain(354);
    expect(anonymousCodes.filter((c) => c === 250)).toHaveLength(1); // the EHLO only

    const client = await authenticatedClient(g.smtpPort);
    clients.push(client);
    expect((await client.command('MAIL FROM:<scanner@berkeley.edu>')).code).toBe(250);
    // allowRecipients: *@berkeley.edu and ops@example.org
    const probes = [
      'victim@gmail.com',
      '@berkeley.edu:victim@gmail.com',
      '@berkeley.edu,@example.org:victim@gmail.com',
      'victim%gmail.com@berkeley.edu',
      'victim%gmail.com@example.org',
      'ops%gmail.com@example.org',
      'victim@gmail.com@berkeley.edu',
      'ops@example.org@evil.com',
      'gmail.com!victim@berkeley.edu',
      '"victim@gmail.com"@berkeley.edu',
      '"ops"@example.org',
      '"ops@example.org"@evil.com',
      'ops\\@example.org@evil.com',
      'ops@example.org.',
      'ops@example.org..',
      'ops@.example.org',
      'ops@example.org.evil.com',
      'ops@evil-example.org',
      'ops@example.org-evil.com',
      'ops@berkeley.edu.evil.com',
      'ops@exаmple.org', // Cyrillic "а"
      'ops@xn--exmple-4nf.org',
      'ops@[127.0.0.1]',
      'ops@[IPv6:::1]',
      'ops@127.0.0.1',
      'ops@localhost',
      'ops',
      'postmaster',
      'ops@example.org,victim@gmail.com',
      'ops@example.org;victim@gmail.com',
      'ops@example.org victim@gmail.com',
      'victim@gmail.com#@berkeley.edu',
      'x@cs.berkeley.edu',
      'vіctim@gmail.com', // Cyrillic "і": echoed in the refusal, which must stay ASCII
      'опс@example.org',
    ];
    const accepted: string[] = [];
    for (const address of probes) {
      const reply = await client.command(`RCPT TO:<${address}>`);
      expect(reply.code, `${address} -> ${reply.code} ${reply.text}`).toBeGreaterThanOrEqual(500);
      expect(parseReplies(`${reply.lines.join('\r\n')}\r\n`).malformed, `reply to ${address}`).toEqual([]);
      if (reply.code < 400) accepted.push(address);
    }
    expect(accepted).toEqual([]);
    // Broken brackets and extra parameters do not sneak an address past the checks either.
    for (const line of [
      'RCPT TO:<victim@gmail.com',
      'RCPT TO:victim@gmail.com>',
      'RCPT TO:<victim@gmail.com> <ops@example.org>',
      'RCPT TO:<ops@example.org>> victim@gmail.com',
    ]) {
      const reply = await client.command(line);
      expect(reply.code, `${line} -> ${reply.code} ${reply.text}`).toBeGreaterThanOrEqual(500);
    }
    const data = await client.command('DATA');
    expect(data.code).toBeGreaterThanOrEqual(500);

    // Case differences are the same mailbox, not a trick: those are accepted, and only they reach the queue.
    expect((await client.command('RCPT TO:<OPS@EXAMPLE.ORG>')).code).toBe(250);
    expect((await client.command('RCPT TO:<Dean@Berkeley.EDU>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write(dataPayload(Buffer.from('Subject: legit\r\n\r\nscan\r\n')));
    const done = await client.read();
    expect(done.code).toBe(250);
    const queued = g.gateway.queue.list().items;
    expect(queued).toHaveLength(1);
    expect(queued[0].envelope.rcptTo).toEqual(['OPS@EXAMPLE.ORG', 'Dean@Berkeley.EDU']);
  });
});
