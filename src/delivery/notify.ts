/**
 * The optional failure notice to delivery.notifyAddress: a short plain-text mail, sent straight through
 * an upstream (never queued, so a failing notice cannot loop). It carries facts, not the scan.
 */
import type { QueuedMessage, RecipientStatus } from '../queue/index.js';
import { generatedMessageId, rfc5322Date } from './headers.js';

export interface NoticeInput {
  message: QueuedMessage;
  reason: string;
  failedRecipients: RecipientStatus[];
  /** Sender of the notice: the upstream account. */
  from: string;
  to: string;
  hostname: string;
  now: number;
}

export function buildFailureNotice(input: NoticeInput): Buffer {
  const { message } = input;
  const subject = ascii(message.headers.subject ?? '(no subject)', 120);
  const lines = [
    `A scan from device '${message.device}' could not be delivered${input.failedRecipients.length > 0 && message.recipients.length > input.failedRecipients.length ? ' to every recipient' : ''}.`,
    '',
    `Queue id:   ${message.id}`,
    `Received:   ${new Date(message.receivedAt).toISOString()} from ${message.client.address}`,
    `Subject:    ${subject}`,
    `Size:       ${message.size} bytes`,
    `Reason:     ${ascii(input.reason, 1000)}`,
  ];
  if (input.failedRecipients.length > 0) {
    lines.push('', 'Refused recipients:');
    for (const r of input.failedRecipients) lines.push(`  ${ascii(r.address, 320)}: ${ascii(r.response ?? '', 500)}`);
  }
  lines.push('', 'While the body is still on disk the message can be retried from the admin API (POST /api/messages/<id>/retry).');
  const head = [
    `From: "scanrelay" <${input.from}>`,
    `To: <${input.to}>`,
    `Subject: [scanrelay] delivery failed: ${subject}`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: ${generatedMessageId({ queueId: `notice.${message.id}`, hostname: input.hostname })}`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${lines.join('\r\n')}\r\n`, 'ascii');
}

function ascii(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}
