/**
 * Load for SMTP servers (the gateway or any MTA): a sender that pipelines MAIL/RCPT/DATA on a
 * RawSmtpClient and streams a generated body of any size with backpressure (nothing is built whole),
 * timing the final dot -> reply; plus the concurrency driver and percentile the benchmark reports with.
 * Body lines are base64-like text that never starts with a dot, so no dot-stuffing is needed.
 */
import { plainAuth, RawSmtpClient, type SmtpResponse } from './raw-smtp.js';

export interface GeneratedMail {
  /** Body size in bytes (rounded up to whole 80-byte lines). */
  bytes: number;
  from: string;
  to: string[];
  /** Extra header lines, each ending in CRLF (e.g. a tag the receiver matches on). */
  headers?: string;
  subject?: string;
  /** AUTH PLAIN with these credentials after EHLO (omit for an MTA that relays for loopback). */
  auth?: { username: string; password: string };
  /** Limit for each reply, and for the final reply after the dot (large bodies). */
  timeoutMs?: number;
  /** Called as the final dot is written (end-to-end clocks start there). */
  onFinalDot?: () => void;
}

export interface SendResult {
  /** Final dot written -> reply read, in ms. */
  acceptMs: number;
  reply: SmtpResponse;
}

const LINE = Buffer.from('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n'); // 80 bytes
const CHUNK = Buffer.concat(Array.from({ length: 800 }, () => LINE)); // 64,000 bytes, shared by every sender

/** Sends one generated message; throws with the server's words when any step is refused. */
export async function sendGenerated(port: number, mail: GeneratedMail, host = '127.0.0.1'): Promise<SendResult> {
  const timeoutMs = mail.timeoutMs ?? 30_000;
  const { client, greeting } = await RawSmtpClient.open(port, host);
  try {
    client.socket.setNoDelay(true);
    expectCode(greeting, 220, 'greeting');
    expectCode(await client.command('EHLO load.test', '\r\n', timeoutMs), 250, 'EHLO');
    if (mail.auth) expectCode(await client.command(`AUTH PLAIN ${plainAuth(mail.auth.username, mail.auth.password)}`, '\r\n', timeoutMs), 235, 'AUTH');
    // PIPELINING: the envelope and DATA in one write, then one reply each.
    client.write(`MAIL FROM:<${mail.from}>\r\n${mail.to.map((to) => `RCPT TO:<${to}>\r\n`).join('')}DATA\r\n`);
    expectCode(await client.read(timeoutMs), 250, 'MAIL FROM');
    for (const to of mail.to) expectCode(await client.read(timeoutMs), 250, `RCPT TO ${to}`);
    expectCode(await client.read(timeoutMs), 354, 'DATA');
    const head = `From: <${mail.from}>\r\nTo: ${mail.to.map((to) => `<${to}>`).join(', ')}\r\nSubject: ${mail.subject ?? 'Scan'}\r\n${mail.headers ?? ''}MIME-Version: 1.0\r\n\r\n`;
    await writeAll(client, Buffer.from(head, 'latin1'));
    for (let sent = 0; sent < mail.bytes; ) {
      const piece = mail.bytes - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, Math.ceil((mail.bytes - sent) / LINE.length) * LINE.length);
      sent += piece.length;
      await writeAll(client, piece);
    }
    const started = performance.now();
    mail.onFinalDot?.();
    client.write('.\r\n');
    const reply = await client.read(timeoutMs);
    const acceptMs = performance.now() - started;
    expectCode(reply, 250, 'end of DATA');
    client.write('QUIT\r\n');
    return { acceptMs, reply };
  } finally {
    client.socket.end();
    client.socket.unref();
  }
}

function writeAll(client: RawSmtpClient, data: Buffer): Promise<void> | void {
  if (client.socket.write(data)) return;
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      client.socket.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      client.socket.off('drain', onDrain);
      reject(new Error('connection closed while sending the body'));
    };
    client.socket.once('drain', onDrain);
    client.socket.once('close', onClose);
  });
}

function expectCode(reply: SmtpResponse, code: number, step: string): void {
  if (reply.code !== code) throw new Error(`${step} refused: ${reply.lines.join(' | ')}`);
}

/** Runs `task(0..total-1)` on `concurrency` workers; results in index order. The first failure rejects. */
export async function runConcurrent<T>(total: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) {
        const index = next++;
        results[index] = await task(index);
      }
    }),
  );
  return results;
}

/** The p-th percentile (nearest rank) of `values`; 0 when empty. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
