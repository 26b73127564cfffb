/**
 * A store with history, written as the gateway writes it: `finished` message-log rows (delivered, every 50th
 * failed, with their attempt and recipient) spread over the last month, oldest first, then `queued` waiting
 * messages (rows + body files). In large transactions: the restart bench's seed, and tests that need pages of
 * old rows that start-up does not read.
 */
import { writeFile } from 'node:fs/promises';
import { Queue, type QueuedMessage } from '../../src/queue/index.js';
import { GatewayEventBus } from '../../src/shared/events.js';
import { newQueueId } from '../../src/shared/ids.js';

export async function seedStore(dataDir: string, finished: number, queued: number): Promise<void> {
  const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
  const now = Date.now();
  const month = 30 * 86_400_000;
  const devices = Array.from({ length: 20 }, (_, i) => `scanner-${i}`);
  const make = (i: number, at: number, state: QueuedMessage['state']): QueuedMessage => {
    const device = devices[i % devices.length];
    const done = state === 'delivered' || state === 'failed';
    return {
      id: newQueueId(at),
      state,
      device,
      upstream: 'gmail-office',
      envelope: { mailFrom: `${device}@example.org`, rcptTo: [`desk${i % 50}@example.org`], bodyType: '7bit', smtpUtf8: false },
      recipients: [
        { address: `desk${i % 50}@example.org`, state: done ? (state === 'delivered' ? 'delivered' : 'failed') : 'pending', at: done ? at + 900 : undefined },
      ],
      size: 1_200,
      sha256: '0'.repeat(64),
      has8bit: false,
      headers: { from: `${device}@example.org`, subject: `Scan ${i} from ${device}`, hasDate: true, headerBytes: 80 },
      client: { address: `10.0.${i % 20}.5`, sessionId: `s${i}`, authMethod: 'PLAIN' },
      receivedAt: at,
      updatedAt: at + 900,
      attempts: done ? 1 : 0,
      nextAttemptAt: done ? undefined : now + 3_600_000,
      deliveredAt: state === 'delivered' ? at + 900 : undefined,
      failedAt: state === 'failed' ? at + 900 : undefined,
      upstreamResponse: state === 'delivered' ? '250 2.0.0 OK gsmtp' : undefined,
      failReason: state === 'failed' ? '552 5.3.4 message too large' : undefined,
      bodyRemoved: done,
    };
  };
  const BATCH = 5_000;
  for (let start = 0; start < finished; start += BATCH) {
    queue.database.transaction(() => {
      for (let i = start; i < Math.min(finished, start + BATCH); i++) {
        const at = now - month + Math.floor((i / finished) * month);
        const message = make(i, at, i % 50 === 0 ? 'failed' : 'delivered');
        queue.insertRow(message, false, [
          {
            at: at + 900,
            upstream: 'gmail-office',
            outcome: message.state === 'failed' ? 'failed' : 'delivered',
            reply: message.upstreamResponse ?? message.failReason,
          },
        ]);
      }
    });
  }
  const body = Buffer.from(`From: x@example.org\r\nSubject: waiting scan\r\n\r\n${'x'.repeat(1_100)}\r\n`);
  for (let start = 0; start < queued; start += BATCH) {
    const batch: QueuedMessage[] = [];
    for (let i = start; i < Math.min(queued, start + BATCH); i++) batch.push(make(i, now - 3_600_000 + i, 'queued'));
    await Promise.all(batch.map((m) => writeFile(queue.bodyPath(m.id), body, { mode: 0o600 })));
    queue.database.transaction(() => {
      for (const message of batch) queue.insertRow(message, false);
    });
  }
  await queue.close();
}
