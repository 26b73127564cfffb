/**
 * Run as a child process (under prlimit --fsize) by spool-disk.test.ts: accepts one body of the given
 * size into a Queue in `dataDir` and prints the outcome as one JSON line. A file-size limit is a real
 * "no more room" condition that needs no privileges: write(2) first comes back short, then fails EFBIG.
 *
 * Usage: node --import tsx spool-child.ts <dataDir> <bodyBytes> [<bodyBytes>...]
 */
import { Readable } from 'node:stream';
import { Queue } from '../../../src/queue/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';

const [dataDir, ...sizes] = process.argv.slice(2);
const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });

for (const size of sizes.map(Number)) {
  const body = Buffer.alloc(size, 'scan-bytes ');
  // Socket-sized chunks, as smtp-server's DATA stream delivers them.
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += 16_384) chunks.push(body.subarray(i, i + 16_384));
  try {
    const message = await queue.accept(
      {
        device: 'scanner',
        envelope: { mailFrom: 'a@example.org', rcptTo: ['b@example.org'], bodyType: '7bit', smtpUtf8: false },
        client: { address: '127.0.0.1', sessionId: 'child' },
        maxSize: 50_000_000,
      },
      Readable.from(chunks),
    );
    process.stdout.write(`${JSON.stringify({ ok: true, id: message.id, size: message.size })}\n`);
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string } };
    process.stdout.write(`${JSON.stringify({ ok: false, code: e.code, cause: e.cause?.code })}\n`);
  }
}
