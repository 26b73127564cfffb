/**
 * The header block the upstream sees. Never touches the body: the outgoing message is a new header block
 * (or a prefix) followed by the spooled file from `skipBytes` on, streamed from disk.
 *
 * - always: a Received trace header on top (device address, HELO, device name, queue id)
 * - when missing: Message-ID and Date (empty ones are replaced; Gmail refuses a message without a Message-ID)
 * - fromMode rewrite: From becomes `"<device name>" <account>`, the printer's From moves to Reply-To
 *   (unless a Reply-To exists), so Gmail does not silently rewrite it.
 *
 * Header bytes are handled as latin1 so 8-bit header bytes pass through unchanged.
 */
import type { ClientInfo, SniffedHeaders } from '../queue/index.js';

export interface HeaderContext {
  queueId: string;
  receivedAt: number;
  /** The gateway's name (smtp.hostname). */
  hostname: string;
  deviceName: string;
  client: ClientInfo;
  /** The upstream account (envelope sender, rewritten From). */
  account: string;
  fromMode: 'keep' | 'rewrite';
}

export interface OutgoingHeaders {
  /** Bytes sent before the spooled file's bytes from `skipBytes` on. */
  prefix: Buffer;
  skipBytes: number;
  /** Message-ID of the outgoing message (existing or added), with angle brackets. */
  messageId?: string;
  addedMessageId: boolean;
  addedDate: boolean;
  rewroteFrom: boolean;
  /** fromMode rewrite was asked for but the header block could not be read (too long, no end found). */
  rewriteSkipped: boolean;
}

interface HeaderField {
  /** Lower-case name. */
  name: string;
  /** The field's raw text including folded lines and line endings. */
  raw: string;
}

const CRLF = '\r\n';

/**
 * Builds the outgoing header bytes. `block` is the message's header block (including the blank line)
 * when its end was found (`headers.headerBytes`), else undefined: then only a prefix is added.
 */
export function buildOutgoingHeaders(block: Buffer | undefined, sniffed: SniffedHeaders, ctx: HeaderContext): OutgoingHeaders {
  const received = receivedHeader(ctx);
  if (!block) {
    // Without the whole block nothing can be removed: an empty Message-ID line stays, so none is added
    // (a duplicate Message-ID is refused by Gmail; an empty one is only frowned upon).
    const addedMessageId = sniffed.messageId === undefined;
    const messageId = addedMessageId ? generatedMessageId(ctx) : sniffed.messageId;
    const extra = (addedMessageId ? `Message-ID: ${messageId}${CRLF}` : '') + (sniffed.hasDate ? '' : `Date: ${rfc5322Date(ctx.receivedAt)}${CRLF}`);
    return {
      prefix: Buffer.from(received + extra, 'latin1'),
      skipBytes: 0,
      messageId,
      addedMessageId,
      addedDate: !sniffed.hasDate,
      rewroteFrom: false,
      rewriteSkipped: ctx.fromMode === 'rewrite',
    };
  }

  const { fields, terminator } = splitHeaderBlock(block.toString('latin1'));
  const kept: HeaderField[] = [];
  let messageId: string | undefined;
  let hasDate = false;
  for (const field of fields) {
    const value = fieldValue(field);
    // Empty Message-ID/Date lines (old printers) are dropped and replaced, never duplicated.
    if (field.name === 'message-id') {
      if (!value || messageId) continue;
      messageId = value;
    }
    if (field.name === 'date') {
      if (!value || hasDate) continue;
      hasDate = true;
    }
    kept.push(field);
  }

  const added: string[] = [received];
  const addedMessageId = messageId === undefined;
  if (addedMessageId) {
    messageId = generatedMessageId(ctx);
    added.push(`Message-ID: ${messageId}${CRLF}`);
  }
  if (!hasDate) added.push(`Date: ${rfc5322Date(ctx.receivedAt)}${CRLF}`);

  let body = kept;
  let rewroteFrom = false;
  if (ctx.fromMode === 'rewrite') {
    body = rewriteFrom(kept, ctx);
    rewroteFrom = true;
  }

  const text = added.join('') + body.map((f) => f.raw).join('') + terminator;
  return {
    prefix: Buffer.from(text, 'latin1'),
    skipBytes: block.length,
    messageId,
    addedMessageId,
    addedDate: !hasDate,
    rewroteFrom,
    rewriteSkipped: false,
  };
}

/** From -> "<device>" <account>; the original From value goes to Reply-To unless one exists. */
function rewriteFrom(fields: HeaderField[], ctx: HeaderContext): HeaderField[] {
  const originalFrom = fields.find((f) => f.name === 'from');
  const hasReplyTo = fields.some((f) => f.name === 'reply-to');
  const newFrom: HeaderField = { name: 'from', raw: `From: "${quoteDisplayName(ctx.deviceName)}" <${ctx.account}>${CRLF}` };
  const out: HeaderField[] = [];
  let placed = false;
  for (const field of fields) {
    if (field.name !== 'from') {
      out.push(field);
      continue;
    }
    if (placed) continue; // a second From would make Gmail refuse the message (duplicate header)
    placed = true;
    out.push(newFrom);
    if (!hasReplyTo && originalFrom && !mentionsAddress(fieldValue(originalFrom), ctx.account)) {
      out.push({ name: 'reply-to', raw: `Reply-To:${originalFrom.raw.slice(originalFrom.raw.indexOf(':') + 1)}` });
    }
  }
  if (!placed) out.unshift(newFrom);
  return out;
}

/** Splits a header block into fields (continuation lines belong to the field above) and the blank line. */
export function splitHeaderBlock(text: string): { fields: HeaderField[]; terminator: string } {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const fields: HeaderField[] = [];
  let terminator = '';
  for (const line of lines) {
    if (line === '\r\n' || line === '\n') {
      terminator = line;
      break;
    }
    if (/^[ \t]/.test(line) && fields.length > 0) {
      fields[fields.length - 1].raw += line;
      continue;
    }
    const colon = line.indexOf(':');
    fields.push({ name: colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '', raw: line });
  }
  return { fields, terminator };
}

function fieldValue(field: HeaderField): string {
  const colon = field.raw.indexOf(':');
  return colon < 0
    ? ''
    : field.raw
        .slice(colon + 1)
        .replace(/\r?\n[ \t]/g, ' ')
        .trim();
}

function mentionsAddress(value: string, address: string): boolean {
  return value.toLowerCase().includes(address.toLowerCase());
}

function quoteDisplayName(name: string): string {
  return name.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ');
}

/** Stable across retries, so a message re-sent after a crash carries the same Message-ID. */
export function generatedMessageId(ctx: Pick<HeaderContext, 'queueId' | 'hostname'>): string {
  return `<${ctx.queueId}@${safeDomain(ctx.hostname)}>`;
}

export function receivedHeader(ctx: HeaderContext): string {
  const helo = safeToken(ctx.client.heloName ?? 'unknown');
  const address = ctx.client.address.includes(':') ? `IPv6:${ctx.client.address}` : ctx.client.address;
  const protocol = ctx.client.authMethod ? 'ESMTPA' : 'ESMTP';
  return (
    `Received: from ${helo} ([${safeToken(address)}]) (device ${safeToken(ctx.deviceName)})${CRLF}` +
    `\tby ${safeDomain(ctx.hostname)} (scanrelay) with ${protocol} id ${ctx.queueId};${CRLF}` +
    `\t${rfc5322Date(ctx.receivedAt)}${CRLF}`
  );
}

/** "Tue, 01 Jul 2025 10:00:00 +0000" */
export function rfc5322Date(at: number): string {
  return new Date(at).toUTCString().replace(/GMT$/, '+0000');
}

function safeToken(value: string): string {
  return value.replace(/[^A-Za-z0-9.\-_:[\]@]/g, '_').slice(0, 255) || 'unknown';
}

function safeDomain(value: string): string {
  return value.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 255) || 'scanrelay';
}
