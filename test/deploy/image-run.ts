/**
 * Runs the image test/deploy/image.sh built and checks it from the outside, the way an admin runs it:
 * `--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges`, host networking with the
 * listeners moved to 127.0.0.1 and free ports through the image's SCANRELAY_* variables, a real config
 * mounted at /config, and the testkit's TLS+AUTH upstream on the host. Checks: the healthcheck says
 * healthy, the process runs as uid 1000 without capabilities, a scan is accepted over SMTP and delivered
 * upstream with the printer's header and body byte-identical below the headers the gateway adds,
 * `podman diff` shows changes only under /data and /tmp, `podman stop` drains a DATA in flight (250,
 * exit 0, delivered after the restart), a kill -9 is followed by a start whose store check passes, and
 * the image carries its version. Prints one PASS/FAIL line per
 * check and the image size; exits 1 on any failure. Every wait is bounded.
 *
 * Started by image.sh with SCANRELAY_IMAGE, SCANRELAY_PODMAN_ARGS (global podman options) and
 * SCANRELAY_PODMAN_ULIMITS; not a vitest file (it needs the engine and a built image).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { RawSmtpClient, plainAuth } from '../kit/raw-smtp.js';
import { TEST_DEVICE, TestUpstream, upstreamEntry } from '../kit/upstream.js';
import { testCerts } from '../kit/certs.js';
import { SCAVENGE_BUFFERS_NEW_SPACE_MB, SCAVENGER_FLAG } from '../../src/shared/heap-tuning.js';
import { REPO } from './files.js';

const IMAGE = process.env.SCANRELAY_IMAGE ?? 'localhost/scanrelay:ci';
const PODMAN_ARGS = (process.env.SCANRELAY_PODMAN_ARGS ?? '').split(' ').filter(Boolean);
const ULIMITS = (process.env.SCANRELAY_PODMAN_ULIMITS ?? '').split(' ').filter(Boolean);
const NAME = `scanrelay-ci-${process.pid}`;
const TOKEN = 'image-check-admin-token-0123456789';
const OVERALL_MS = 8 * 60_000;

let failures = 0;
function check(ok: boolean, what: string, detail?: string): boolean {
  if (ok) console.log(`PASS ${what}`);
  else {
    failures++;
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

function podman(args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('podman', [...PODMAN_ARGS, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Runs podman in the background; resolves with its exit status. */
function podmanAsync(args: string[], timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('podman', [...PODMAN_ARGS, ...args], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` every 200 ms until it returns a value; throws after `timeoutMs`. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function healthz(port: number): Promise<number | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
    return response.status === 200 ? 200 : undefined;
  } catch {
    return undefined;
  }
}

function running(): boolean {
  return podman(['inspect', NAME, '--format', '{{.State.Running}}']).stdout.trim() === 'true';
}

/** A scan as a printer writes it: its own headers (Date and Message-ID included), a base64 PDF, a dot line. */
function printerMessage(subject: string): Buffer {
  const pdf = Buffer.alloc(48 * 1024);
  for (let i = 0; i < pdf.length; i++) pdf[i] = (i * 7919) & 0xff;
  const base64 = (pdf.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
  const text = [
    'From: "WorkCentre 6505DN" <scanner@example.org>',
    'To: office@example.org',
    `Subject: ${subject}`,
    'Date: Tue, 01 Dec 2026 10:32:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '')}.6505dn@scanner.example.org>`,
    'X-Mailer:   Xerox WorkCentre 6505DN   (folded',
    '\tover two lines)',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="XEROX-SCAN"',
    '',
    '--XEROX-SCAN',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Scanned document attached.',
    '.a line that starts with a dot (dot-stuffed on the wire)',
    '',
    '--XEROX-SCAN',
    'Content-Type: application/pdf; name="scan.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    base64,
    '--XEROX-SCAN--',
    '',
  ].join('\r\n');
  return Buffer.from(text, 'latin1');
}

/** The message as sent in DATA: dot-stuffed, terminated. */
function dataOf(message: Buffer): string {
  // The CRLF before the dot ends the last line: a message that already ends with CRLF gets only ".\r\n",
  // or the upstream would (rightly) receive one more empty line than the printer wrote.
  const stuffed = message.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return `${stuffed}${stuffed.endsWith('\r\n') ? '' : '\r\n'}.\r\n`;
}

async function openSession(port: number): Promise<RawSmtpClient> {
  const { client, greeting } = await RawSmtpClient.open(port);
  if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.lines.join(' ')}`);
  const steps: Array<[string, number]> = [
    ['EHLO scanner.example.org', 250],
    [`AUTH PLAIN ${plainAuth(TEST_DEVICE.username, TEST_DEVICE.password)}`, 235],
    ['MAIL FROM:<scanner@example.org>', 250],
    ['RCPT TO:<office@example.org>', 250],
    ['DATA', 354],
  ];
  for (const [line, code] of steps) {
    const reply = await client.command(line);
    if (reply.code !== code) throw new Error(`${line.split(' ')[0]}: ${reply.code} ${reply.lines.join(' ')}`);
  }
  return client;
}

/** The gateway's added header block: header lines only (with folded continuations), a Received among them. */
function isHeaderBlock(prefix: string): boolean {
  return prefix.includes('Received:') && /^(?:[!-9;-~]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+$/.test(prefix);
}

async function main(): Promise<void> {
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string; license: string };
  const upstream = await TestUpstream.start({ mode: 'tls' });
  const configDir = await mkdtemp(join(tmpdir(), 'scanrelay-image-'));
  try {
    await writeFile(join(configDir, 'upstream-ca.pem'), (await testCerts()).caCert);
    const config = {
      log: { level: 'info' },
      smtp: { hostname: 'scanrelay-image-check', closeTimeout: '30s' },
      admin: { tokens: [TOKEN] },
      delivery: { retryBase: '1s', retryMax: '5s', shutdownTimeout: '10s' },
      devices: [{ ...TEST_DEVICE, upstream: 'gmail-test' }],
      upstreams: [upstreamEntry(upstream, '/config/upstream-ca.pem')],
    };
    await writeFile(join(configDir, 'gateway.yaml'), stringify(config));
    // The container runs as uid 1000: the mounted config must be readable by it.
    await chmod(configDir, 0o755);
    await chmod(join(configDir, 'gateway.yaml'), 0o644);
    await chmod(join(configDir, 'upstream-ca.pem'), 0o644);

    const labels = JSON.parse(podman(['image', 'inspect', IMAGE, '--format', '{{json .Labels}}']).stdout || '{}') as Record<string, string>;
    check(labels['org.opencontainers.image.version'] === pkg.version, `image label version = package.json ${pkg.version}`, JSON.stringify(labels));
    check(labels['org.opencontainers.image.licenses'] === pkg.license && Boolean(labels['org.opencontainers.image.source']), 'image labels licence and source');
    const size = Number(podman(['image', 'inspect', IMAGE, '--format', '{{.Size}}']).stdout.trim());
    console.log(`image size: ${(size / 1e6).toFixed(1)} MB (${size} bytes)`);

    const smtpPort = await freePort();
    const adminPort = await freePort();
    const started = podman([
      'run',
      '-d',
      '--name',
      NAME,
      '--network',
      'host',
      '--read-only',
      '--tmpfs',
      '/tmp',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      ...ULIMITS,
      '-e',
      'SCANRELAY_SMTP_HOST=127.0.0.1',
      '-e',
      `SCANRELAY_SMTP_PORT=${smtpPort}`,
      '-e',
      'SCANRELAY_ADMIN_HOST=127.0.0.1',
      '-e',
      `SCANRELAY_ADMIN_PORT=${adminPort}`,
      '-v',
      `${configDir}:/config:ro`,
      IMAGE,
    ]);
    if (!check(started.status === 0, 'podman run --read-only --cap-drop ALL --security-opt no-new-privileges', started.stderr.trim())) return;

    const startedAt = Date.now();
    const up = await waitFor('/healthz', 120_000, async () => (running() ? healthz(adminPort) : 'exited')).catch((err: Error) => err.message);
    if (!check(up === 200, `/healthz answers 200 (${Date.now() - startedAt} ms after podman run)`, `${up}\n${podman(['logs', NAME]).stdout}`)) return;

    const health = podman(['healthcheck', 'run', NAME]);
    check(health.status === 0, 'podman healthcheck run: healthy (the HEALTHCHECK survived the build)', `${health.stdout}${health.stderr}`.trim());

    const status = podman(['exec', NAME, 'cat', '/proc/1/status']).stdout;
    const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1].split(/\s+/) ?? [];
    check(uids.length === 4 && uids.every((u) => u === '1000'), 'the gateway (PID 1) runs as uid 1000', uids.join(' '));
    check(/^CapEff:\s+0+$/m.test(status) && /^NoNewPrivs:\s+1$/m.test(status), 'no capabilities, no new privileges');
    const nodeVersion = podman(['exec', NAME, 'node', '--version']).stdout.trim();
    check(/^v24\./.test(nodeVersion), `Node.js 24 in the image (${nodeVersion})`);
    const cliVersion = podman(['exec', NAME, 'node', 'dist/src/cli/index.js', '--version']).stdout.trim();
    check(cliVersion === `scanrelay ${pkg.version}`, `scanrelay --version inside the image: ${cliVersion}`);
    const nodeOptions = podman(['exec', NAME, 'sh', '-c', 'tr "\\0" "\\n" < /proc/1/environ | grep ^NODE_OPTIONS=']).stdout.trim();
    check(nodeOptions.includes('--max-semi-space-size=') && nodeOptions.includes('--max-old-space-size='), `V8 flags reach the gateway (${nodeOptions})`);
    const ready =
      podman(['logs', NAME])
        .stdout.split('\n')
        .find((line) => line.includes('scanrelay.ready')) ?? '';
    const heapTuning = /"heapTuning":"([^"]*)"/.exec(ready)?.[1];
    check(
      heapTuning === `${SCAVENGER_FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`,
      `the gateway frees dead ArrayBuffers early on the image's V8 (heapTuning: ${heapTuning})`,
    );
    const httpImport = /"httpImport":"([^"]*)"/.exec(ready)?.[1] ?? '';
    check(/without its undici getters/.test(httpImport), `node:http loads without undici on the image's Node (httpImport: ${httpImport})`);
    const arenas = podman(['exec', NAME, 'sh', '-c', 'tr "\\0" "\\n" < /proc/1/environ | grep ^MALLOC_ARENA_MAX=']).stdout.trim();
    check(arenas === 'MALLOC_ARENA_MAX=2', `malloc arenas limited for the gateway (${arenas})`);
    const compiler = podman(['exec', NAME, 'sh', '-c', 'command -v g++ gcc make python3 || true']).stdout.trim();
    check(compiler === '', 'no compiler in the runtime image', compiler);
    const app = podman(['exec', NAME, 'du', '-sm', '/app']).stdout.trim().split(/\s+/)[0];
    console.log(`application files in the image: ${app} MB (/app)`);

    // A scan, byte for byte.
    const scan = printerMessage('scan 10:32 2nd floor');
    const session = await openSession(smtpPort);
    session.write(dataOf(scan));
    const queued = await session.read(30_000);
    await session.command('QUIT').catch(() => undefined);
    check(queued.code === 250 && /queued as/.test(queued.lines.join(' ')), `scan accepted over SMTP: ${queued.code} ${queued.lines.join(' ')}`);
    const delivered = await waitFor('the upstream to receive the scan', 30_000, () => upstream.received[0]).catch(() => undefined);
    if (check(delivered !== undefined, 'scan delivered to the TLS upstream')) {
      const raw = delivered!.raw;
      const tailMatches = raw.length > scan.length && raw.subarray(raw.length - scan.length).equals(scan);
      const prefix = raw.subarray(0, raw.length - scan.length).toString('latin1');
      check(tailMatches, "the printer's headers and body arrive byte-identical", `${raw.length} bytes received for ${scan.length} sent`);
      check(tailMatches && isHeaderBlock(prefix), 'above them only the header lines the gateway adds (Received ...)', JSON.stringify(prefix.slice(0, 400)));
      check(
        delivered!.secure && delivered!.user === upstream.user && delivered!.rcptTo.join() === 'office@example.org',
        'over TLS, with the device account, to the recipient',
      );
    }

    const diff = podman(['diff', NAME]).stdout.trim().split('\n').filter(Boolean);
    // "C /etc" alone is podman's own doing: with host networking it bind-mounts /etc/hosts, /etc/resolv.conf
    // and /etc/hostname into the container, which marks their directory changed; any file below it is ours.
    const outside = diff.map((line) => line.split(/\s+/)[1]).filter((path) => !/^\/(data|tmp)(\/|$)/.test(path) && path !== '/etc');
    check(outside.length === 0, `podman diff: changes only under /data and /tmp (${diff.length} entries)`, outside.join(', '));

    // podman stop during a DATA transfer: the transfer finishes (250), the gateway exits 0, and the scan
    // goes out after the restart (it was durable before the 250).
    const inflight = await openSession(smtpPort);
    const second = printerMessage('scan during shutdown');
    const wire = dataOf(second);
    inflight.write(wire.slice(0, wire.length >> 1));
    const stopStarted = Date.now();
    const stopping = podmanAsync(['stop', '-t', '90', NAME], 120_000);
    const sawShutdown = await waitFor('the gateway to log scanrelay.shutdown', 20_000, () =>
      podman(['logs', NAME]).stdout.includes('scanrelay.shutdown') ? true : undefined,
    ).catch(() => false);
    check(sawShutdown, 'SIGTERM reached the gateway while a DATA was in flight');
    inflight.write(wire.slice(wire.length >> 1));
    const drained = await inflight.read(30_000).catch((err: Error) => ({ code: 0, lines: [err.message] }));
    check(drained.code === 250, `the in-flight DATA is answered during the drain: ${drained.code} ${drained.lines.join(' ')}`);
    await inflight.command('QUIT').catch(() => undefined);
    inflight.socket.destroy();
    const stopStatus = await stopping;
    const exitCode = podman(['inspect', NAME, '--format', '{{.State.ExitCode}}']).stdout.trim();
    check(
      stopStatus === 0 && exitCode === '0',
      `podman stop: the gateway drained and exited 0 in ${Date.now() - stopStarted} ms`,
      `stop ${stopStatus}, exit code ${exitCode}`,
    );

    if (!upstream.received.some((m) => m.raw.subarray(m.raw.length - second.length).equals(second))) {
      const restarted = podman(['start', NAME]);
      check(restarted.status === 0, 'podman start of the same container (its /data volume)', restarted.stderr.trim());
    }
    const afterRestart = await waitFor('the drained scan upstream', 60_000, () =>
      upstream.received.some((m) => m.raw.subarray(m.raw.length - second.length).equals(second)) ? true : undefined,
    ).catch(() => false);
    check(afterRestart, 'the scan accepted during the drain is delivered, byte-identical');

    // kill -9 (the OOM killer, a power cut): the next start opens at once and checks the store behind it,
    // in a process of its own, inside the read-only container.
    const runningAgain = running() || podman(['start', NAME]).status === 0;
    if (check(runningAgain, 'the container runs again before the kill -9')) {
      await waitFor('/healthz before the kill', 30_000, async () => ((await healthz(adminPort)) === 200 ? true : undefined)).catch(() => false);
      podman(['kill', '--signal', 'KILL', NAME]);
      const restarted = podman(['start', NAME]);
      const verdict = await waitFor(
        'the store check after the kill',
        60_000,
        () => /store\.check\.(ok|skipped)|store\.corrupt/.exec(podman(['logs', NAME]).stdout)?.[0],
      ).catch(() => 'no verdict in the log');
      check(
        restarted.status === 0 && verdict === 'store.check.ok',
        `after kill -9 the store is checked in the background: ${verdict}`,
        restarted.stderr.trim(),
      );
      const back = await waitFor('/healthz after the kill', 30_000, async () => ((await healthz(adminPort)) === 200 ? true : undefined)).catch(() => false);
      check(back, '/healthz answers 200 after the kill -9 and the check');
    }
    if (running()) {
      const stoppedAgain = podman(['stop', '-t', '90', NAME], 120_000);
      check(stoppedAgain.status === 0, 'second podman stop');
    }
  } finally {
    podman(['rm', '-f', '-v', NAME]);
    await upstream.close();
    await rm(configDir, { recursive: true, force: true });
  }
}

const guard = setTimeout(() => {
  console.log(`FAIL the image checks did not finish within ${OVERALL_MS / 60_000} minutes`);
  podman(['rm', '-f', '-v', NAME]);
  process.exit(1);
}, OVERALL_MS);
guard.unref();

main().then(
  () => {
    console.log(failures === 0 ? 'image: all checks passed' : `image: ${failures} check(s) failed`);
    process.exit(failures === 0 ? 0 : 1);
  },
  (err: unknown) => {
    console.log(`FAIL ${err instanceof Error ? err.message : String(err)}`);
    podman(['rm', '-f', '-v', NAME]);
    process.exit(1);
  },
);
