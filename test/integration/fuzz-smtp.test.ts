/**
 * Fuzz: randomly mutated SMTP sessions (seeded PRNG, seed printed) against a real in-process gateway.
 * Each session starts from a valid printer conversation (EHLO/HELO, AUTH, MAIL, RCPT, DATA, body, QUIT)
 * and gets a few mutations: lines dropped, repeated, swapped, truncated, case-flipped, bytes flipped or
 * inserted, line endings changed, stray commands and oversized lines inserted, writes split at random
 * points. Every session ends with "\r\n.\r\nQUIT\r\n" so a DATA phase it opened can finish.
 *
 * Asserted for every session: every byte the gateway sent is a well-formed SMTP reply, the session ends
 * within its bound (no hang), and at the end the queue holds exactly the messages answered
 * "250 ... queued as <id>" (nothing queued without a 250, no 250 without a queued message); the gateway
 * still serves a normal client. Default: 300 sessions or 20 s, whichever comes first;
 * SCANRELAY_LONG_TESTS=1: 5000 sessions or 5 minutes. Replay with SCANRELAY_FUZZ_SEED=<seed printed>.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { plainAuth } from '../kit/raw-smtp.js';
import { deviceTransport, queueIdOf, scannerDevice, SCANNER_PASSWORD, spoolEntries } from '../kit/inbound-scope.js';
import { converse, parseReplies } from '../unit/hardening/smtp-wire.js';
import { LONG_TESTS, createPrng, seedFrom, type Prng } from '../unit/hardening/prng.js';

const SESSIONS = Number(process.env.SCANRELAY_FUZZ_SESSIONS ?? (LONG_TESTS ? 5000 : 300));
const BUDGET_MS = LONG_TESTS ? 300_000 : 20_000;
const CONCURRENCY = 4;
/** smtp.socketTimeout below is 1 s: a session stuck waiting for input ends then. */
const SESSION_BOUND_MS = 8_000;

const b64 = (text: string) => Buffer.from(text).toString('base64');

const STRAY_COMMANDS = [
  'NOOP',
  'RSET',
  'HELP',
  'VRFY ops',
  'EXPN staff',
  'STARTTLS',
  'AUTH LOGIN',
  'AUTH CRAM-MD5',
  'AUTH PLAIN',
  'AUTH',
  'XCLIENT ADDR=10.0.0.1',
  'XFORWARD NAME=x',
  'ETRN example.org',
  'TURN',
  'BDAT 10 LAST',
  'DATA',
  'QUIT',
  'MAIL FROM:<>',
  'MAIL FROM:<a@b> SIZE=999999999999',
  'MAIL FROM:<a@b> BODY=BINARYMIME',
  'MAIL FROM:<a@b> SMTPUTF8=yes',
  'RCPT TO:<victim@gmail.com>',
  'RCPT TO:<@berkeley.edu:victim@gmail.com>',
  'RCPT TO:<ops%gmail.com@example.org>',
  'RCPT TO:<ops@example.org> NOTIFY=NEVER',
  'EHLO',
  'HELO',
  'EHLO a b c',
  'LHLO x',
  'GET / HTTP/1.0',
  '.',
  '',
  `AUTH PLAIN ${plainAuth('warren-2f', 'wrong-password')}`,
  `AUTH PLAIN ${plainAuth('nobody', 'x')}`,
  'AUTH PLAIN ====',
];

function baseSession(random: Prng): string[] {
  const greet = random.pick(['EHLO fuzz.test', 'HELO fuzz', 'ehlo [127.0.0.1]', 'EHLO']);
  const auth = random.pick([
    [`AUTH PLAIN ${plainAuth('warren-2f', SCANNER_PASSWORD)}`],
    ['AUTH PLAIN', plainAuth('warren-2f', SCANNER_PASSWORD)],
    ['AUTH LOGIN', b64('warren-2f'), b64(SCANNER_PASSWORD)],
    [`AUTH LOGIN ${b64('warren-2f')}`, b64(SCANNER_PASSWORD)],
  ]);
  const message = () => [
    random.pick(['MAIL FROM:<scanner@berkeley.edu>', 'MAIL FROM:scanner@berkeley.edu', 'MAIL FROM: <scanner@berkeley.edu> SIZE=2000', 'MAIL FROM:<>']),
    ...Array.from({ length: random.int(1, 3) }, () => random.pick(['RCPT TO:<ops@example.org>', 'RCPT TO:<dean@berkeley.edu>', 'RCPT TO:ops@example.org'])),
    'DATA',
    `Subject: fuzz ${random.int(0, 1e6)}`,
    random.pick(['From: scanner@berkeley.edu', 'X-Fuzz: 1', '']),
    '',
    ...Array.from({ length: random.int(0, 20) }, () =>
      random.pick(['scan line', '.leading dot', '..double dot', '', 'x'.repeat(random.int(1, 2000)), '\u00e9t\u00e9']),
    ),
    '.',
  ];
  return [greet, ...auth, ...message(), ...(random.chance(0.3) ? ['RSET', ...message()] : []), 'QUIT'];
}

/** Applies 0-4 random mutations to a session's lines, then joins them with (mostly) CRLF. */
function mutate(random: Prng, lines: string[]): Buffer {
  const out = [...lines];
  const mutations = random.int(0, 4);
  for (let m = 0; m < mutations; m++) {
    const at = random.int(0, Math.max(0, out.length - 1));
    switch (random.int(0, 10)) {
      case 0:
        out.splice(at, 1);
        break; // drop
      case 1:
        out.splice(at, 0, out[at] ?? '');
        break; // repeat
      case 2: {
        const other = random.int(0, out.length - 1);
        [out[at], out[other]] = [out[other], out[at]];
        break;
      } // swap
      case 3:
        out[at] = (out[at] ?? '').slice(0, random.int(0, (out[at] ?? '').length));
        break; // truncate
      case 4:
        out[at] = [...(out[at] ?? '')].map((c) => (random.chance(0.5) ? c.toLowerCase() : c.toUpperCase())).join('');
        break;
      case 5: {
        // flip bytes
        const bytes = Buffer.from(out[at] ?? '', 'latin1');
        for (let i = 0; i < bytes.length; i++) if (random.chance(0.1)) bytes[i] = random.int(0, 255);
        out[at] = bytes.toString('latin1');
        break;
      }
      case 6:
        out.splice(at, 0, random.bytes(random.int(1, 300)).toString('latin1'));
        break; // noise line
      case 7:
        out.splice(at, 0, random.pick(STRAY_COMMANDS));
        break;
      case 8:
        out.splice(at, 0, `${random.pick(['NOOP ', 'EHLO ', 'RCPT TO:<', 'AUTH PLAIN ', ''])}${'z'.repeat(random.int(300, 20_000))}`);
        break; // oversized
      case 9:
        out.splice(at, 0, ...Array.from({ length: random.int(2, 30) }, () => random.pick(STRAY_COMMANDS)));
        break; // burst
      default:
        out[at] = `${random.pick([' ', '\t', '  '])}${out[at] ?? ''}${random.pick([' ', '\t', ''])}`; // stray whitespace
    }
  }
  const eol = () => random.pick(['\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '\r\r\n', '']);
  return Buffer.from(out.map((line) => line + eol()).join(''), 'latin1');
}

/** Splits the bytes into 1-4 writes with short pauses, so partial lines reach the parser too. */
function chunked(random: Prng, data: Buffer): Array<Buffer | number> {
  const script: Array<Buffer | number> = [];
  let offset = 0;
  const pieces = random.int(1, 4);
  for (let p = 1; p <= pieces; p++) {
    const end = p === pieces ? data.length : random.int(offset, data.length);
    script.push(data.subarray(offset, end));
    if (p < pieces) script.push(random.int(0, 30));
    offset = end;
  }
  return script;
}

describe('SMTP fuzz (seeded, bounded)', () => {
  let gw: TestGateway | undefined;

  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  it(`${SESSIONS} mutated sessions (or ${BUDGET_MS / 1000} s): well-formed replies, no hangs, nothing queued without a 250`, {
    timeout: BUDGET_MS + 90_000,
  }, async () => {
    const seed = seedFrom('SCANRELAY_FUZZ_SEED');
    console.log(`fuzz-smtp: seed ${seed} (replay with SCANRELAY_FUZZ_SEED=${seed})`);
    gw = await startTestGateway({
      log: { level: 'info' },
      admin: { enabled: false },
      devices: [scannerDevice()],
      smtp: { socketTimeout: '1s', maxConnectionsPerIp: 50, maxRecipients: 20, authLockout: { maxFailures: 1_000_000 } },
    });
    const g = gw;
    const random = createPrng(seed);
    // Sessions are generated up front from the one seed, so a replay does not depend on timing.
    const sessions = Array.from({ length: SESSIONS }, () =>
      chunked(random, Buffer.concat([mutate(random, baseSession(random)), Buffer.from('\r\n.\r\nQUIT\r\n')])),
    );

    const acked = new Set<string>();
    const failures: string[] = [];
    const codes = new Map<number, number>();
    let next = 0;
    let completed = 0;
    const started = Date.now();
    const deadline = started + BUDGET_MS;

    const worker = async () => {
      while (next < sessions.length && Date.now() < deadline) {
        const index = next++;
        const talk = await converse(g.smtpPort, { script: sessions[index], timeoutMs: SESSION_BOUND_MS });
        completed++;
        const parsed = parseReplies(talk.text);
        const problem = talk.timedOut
          ? `still open after ${SESSION_BOUND_MS} ms`
          : parsed.malformed.length > 0
            ? `malformed reply lines ${JSON.stringify(parsed.malformed.slice(0, 3))}`
            : parsed.partial !== ''
              ? `reply cut off: ${JSON.stringify(parsed.partial.slice(0, 100))}`
              : parsed.codes[0] !== 220
                ? `no greeting (${parsed.codes[0]})`
                : undefined;
        if (problem)
          failures.push(
            `session ${index}: ${problem}; sent ${JSON.stringify(
              Buffer.concat(sessions[index].filter((s): s is Buffer => typeof s !== 'number'))
                .toString('latin1')
                .slice(0, 400),
            )}`,
          );
        for (const code of parsed.codes) codes.set(code, (codes.get(code) ?? 0) + 1);
        for (const match of talk.text.matchAll(/^250 .*queued as ([0-9a-z]+)\r$/gm)) acked.add(match[1]);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `fuzz-smtp: ${completed} sessions in ${seconds.toFixed(1)} s = ${(completed / seconds).toFixed(1)} sessions/s; ${acked.size} messages acknowledged; reply codes ${JSON.stringify(Object.fromEntries([...codes].sort((a, b) => a[0] - b[0])))}`,
    );

    expect(failures.slice(0, 5)).toEqual([]);
    expect(completed).toBeGreaterThanOrEqual(Math.min(SESSIONS, 50));
    // The queue holds exactly what was acknowledged.
    const queued = new Set(g.gateway.queue.list({ limit: Number.MAX_SAFE_INTEGER }).items.map((m) => m.id));
    expect([...queued].filter((id) => !acked.has(id))).toEqual([]);
    expect([...acked].filter((id) => !queued.has(id))).toEqual([]);
    // Temp bodies of aborted transfers go once their DATA streams have unwound.
    const entries = await waitFor(
      async () => {
        const now = await spoolEntries(g.dataDir);
        return now.part.length === 0 ? now : undefined;
      },
      { what: 'no temp bodies left' },
    );
    // One body per acknowledged message (its state is the row listed above).
    expect(entries.queue.sort()).toEqual([...queued].map((id) => `${id}.eml`).sort());

    // Still up and serving a normal printer.
    const transport = deviceTransport(g.smtpPort, { user: 'warren-2f', pass: SCANNER_PASSWORD });
    try {
      const info = await transport.sendMail({ from: 'scanner@berkeley.edu', to: 'ops@example.org', subject: 'after the fuzz', text: 'scan' });
      expect(g.gateway.queue.require(queueIdOf(info.response)).headers.subject).toBe('after the fuzz');
    } finally {
      transport.close();
    }
  });
});
