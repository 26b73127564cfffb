import { describe, expect, it } from 'vitest';
import { buildOutgoingHeaders, type HeaderContext } from '../../../src/delivery/headers.js';
import { findHeaderEnd, parseHeaderBlock, type SniffedHeaders } from '../../../src/queue/index.js';

const RECEIVED_AT = Date.UTC(2025, 6, 1, 10, 0, 0);
const ctx = (extra: Partial<HeaderContext> = {}): HeaderContext => ({
  queueId: 'mh9k2x7qa3f91c0d2',
  receivedAt: RECEIVED_AT,
  hostname: 'relay.example.edu',
  deviceName: 'scanner-2f',
  client: { address: '192.168.1.5', heloName: 'NPIF65E56', sessionId: 's1', authMethod: 'PLAIN' },
  account: 'warren-2f-scanner@berkeley.edu',
  fromMode: 'keep',
  ...extra,
});

/** What the queue's sniffer would have recorded for this message. */
function sniff(message: Buffer): { block?: Buffer; sniffed: SniffedHeaders } {
  const end = findHeaderEnd(message);
  const block = end === -1 ? undefined : message.subarray(0, end);
  const fields = parseHeaderBlock((block ?? message).toString('latin1'));
  const first = (name: string) => fields.find(([key]) => key === name)?.[1];
  return {
    block,
    sniffed: {
      from: first('from'),
      subject: first('subject'),
      messageId: first('message-id'),
      hasDate: fields.some(([k]) => k === 'date'),
      headerBytes: end === -1 ? undefined : end,
    },
  };
}

function outgoing(text: string | Buffer, extra: Partial<HeaderContext> = {}) {
  const message = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  const { block, sniffed } = sniff(message);
  const result = buildOutgoingHeaders(block, sniffed, ctx(extra));
  const full = Buffer.concat([result.prefix, message.subarray(result.skipBytes)]);
  return { result, text: full.toString('latin1'), full, message };
}

describe('buildOutgoingHeaders (keep From)', () => {
  it('prepends Received, and Message-ID and Date when missing; the rest is byte-identical', () => {
    const original = 'From: printer@example.org\r\nSubject: Scan\r\n\r\nbody\r\n';
    const { result, text } = outgoing(original);
    expect(text).toBe(
      'Received: from NPIF65E56 ([192.168.1.5]) (device scanner-2f)\r\n' +
        '\tby relay.example.edu (scanrelay) with ESMTPA id mh9k2x7qa3f91c0d2;\r\n' +
        '\tTue, 01 Jul 2025 10:00:00 +0000\r\n' +
        'Message-ID: <mh9k2x7qa3f91c0d2@relay.example.edu>\r\n' +
        'Date: Tue, 01 Jul 2025 10:00:00 +0000\r\n' +
        original,
    );
    expect(result).toMatchObject({ addedMessageId: true, addedDate: true, rewroteFrom: false, messageId: '<mh9k2x7qa3f91c0d2@relay.example.edu>' });
  });

  it('keeps an existing Message-ID and Date and adds only Received', () => {
    const original = 'Message-ID: <abc@printer>\r\nDate: Mon, 30 Jun 2025 08:00:00 +0200\r\nFrom: p@example.org\r\n\r\nx';
    const { result, text } = outgoing(original);
    expect(text.slice(text.indexOf('Message-ID'))).toBe(original);
    expect(result).toMatchObject({ addedMessageId: false, addedDate: false, messageId: '<abc@printer>' });
  });

  it('replaces an empty Message-ID (old printers) instead of adding a duplicate', () => {
    const { text } = outgoing('Message-ID:\r\nMessage-ID: \r\nDate:\r\nFrom: p@example.org\r\n\r\nx');
    expect(text.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(text.match(/^Date:/gim)).toHaveLength(1);
    expect(text).toContain('Message-ID: <mh9k2x7qa3f91c0d2@relay.example.edu>\r\n');
  });

  it('passes 8-bit header bytes and bare-LF header blocks through unchanged', () => {
    const original = Buffer.concat([Buffer.from('Subject: Scan '), Buffer.from([0xe9, 0xe8]), Buffer.from('\nFrom: p@example.org\n\nbody\n')]);
    const { full } = outgoing(original);
    expect(full.subarray(full.length - original.length).equals(original)).toBe(true);
    expect(full.subarray(0, full.length - original.length).toString()).toMatch(/^Received: [^]*\r\nDate: [^\r\n]+\r\n$/);
  });

  it('marks ESMTP without AUTH and writes IPv6 addresses as IPv6 literals', () => {
    const { text } = outgoing('From: p@example.org\r\n\r\nx', { client: { address: 'fe80::1', sessionId: 's', heloName: 'bad host(name)' } });
    expect(text).toMatch(/^Received: from bad_host_name_ \(\[IPv6:fe80::1\]\) \(device scanner-2f\)\r\n\tby relay\.example\.edu \(scanrelay\) with ESMTP id /);
  });

  it('without a readable header block, only prepends (From cannot be rewritten)', () => {
    const huge = `X-Long: ${'a'.repeat(70_000)}`; // no blank line found
    const { result } = outgoing(huge, { fromMode: 'rewrite' });
    expect(result.skipBytes).toBe(0);
    expect(result.rewriteSkipped).toBe(true);
    expect(result.prefix.toString()).toMatch(/^Received: [\s\S]*Message-ID: <mh9k2x7qa3f91c0d2@relay\.example\.edu>\r\nDate: /);
  });
});

describe('buildOutgoingHeaders (rewrite From)', () => {
  it('From becomes "<device>" <account>; the printer From moves to Reply-To, folding kept', () => {
    const { text, result } = outgoing('Subject: s\r\nFrom: "Xerox WorkCentre"\r\n <scan@printer.example.org>\r\nTo: a@example.org\r\n\r\nbody', {
      fromMode: 'rewrite',
    });
    expect(result.rewroteFrom).toBe(true);
    expect(text).toContain(
      'Subject: s\r\nFrom: "scanner-2f" <warren-2f-scanner@berkeley.edu>\r\nReply-To: "Xerox WorkCentre"\r\n <scan@printer.example.org>\r\nTo: a@example.org\r\n\r\nbody',
    );
  });

  it('keeps an existing Reply-To and adds none', () => {
    const { text } = outgoing('From: p@example.org\r\nReply-To: desk@example.org\r\n\r\nx', { fromMode: 'rewrite' });
    expect(text.match(/^Reply-To:/gim)).toHaveLength(1);
    expect(text).toContain('Reply-To: desk@example.org');
  });

  it('adds no Reply-To when the printer already used the account, and drops a second From', () => {
    const { text } = outgoing('From: warren-2f-scanner@berkeley.edu\r\nFrom: other@example.org\r\n\r\nx', { fromMode: 'rewrite' });
    expect(text.match(/^From:/gim)).toHaveLength(1);
    expect(text).not.toContain('Reply-To');
  });

  it('adds a From when the printer sent none', () => {
    const { text } = outgoing('Subject: s\r\n\r\nx', { fromMode: 'rewrite', deviceName: 'mfp "3"' });
    expect(text).toContain('From: "mfp \\"3\\"" <warren-2f-scanner@berkeley.edu>\r\nSubject: s\r\n');
  });
});

describe('buildOutgoingHeaders without a complete header block', () => {
  it('adds no second Message-ID when the printer sent an empty one it cannot remove', () => {
    const message = Buffer.from(`Message-ID:\r\nSubject: ${'x'.repeat(100)}\r\n`, 'latin1'); // no blank line: block not found
    const { block, sniffed } = sniff(message);
    expect(block).toBeUndefined();
    const result = buildOutgoingHeaders(undefined, sniffed, ctx());
    expect(result.addedMessageId).toBe(false);
    expect(result.prefix.toString('latin1')).not.toMatch(/Message-ID/i);
  });
});
