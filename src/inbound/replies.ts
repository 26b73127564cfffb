/** The SMTP replies scanrelay sends itself (smtp-server sends the protocol-level ones). */
export interface SmtpReply {
  code: number;
  text: string;
}

export const replies = {
  authRequired: { code: 530, text: "5.7.0 Authentication required: log in with this device's scanrelay credentials" },
  authFailed: { code: 535, text: '5.7.8 Authentication credentials invalid' },
  authWrongAddress: { code: 535, text: '5.7.8 Authentication refused from this address' },
  authLocked: { code: 454, text: '4.7.0 Too many failed logins from this address, try again later' },
  authCramNeedsSecret: { code: 535, text: '5.7.8 CRAM-MD5 is not available for this login, use PLAIN or LOGIN' },
  connectionLocked: { code: 421, text: '4.7.0 Too many failed logins from this address, try again later' },
  tooManyFromAddress: { code: 421, text: '4.7.0 Too many connections from this address' },
  deviceDisabled: { code: 550, text: '5.7.1 This device is disabled on the gateway' },
  senderNotAllowed: { code: 550, text: '5.7.1 This device may not send from this address' },
  recipientNotAllowed: (address: string, device: string): SmtpReply => ({
    code: 550,
    text: `5.7.1 Relaying to <${printable(address)}> is not allowed for device ${device}`,
  }),
  badRecipient: (reason: string): SmtpReply => ({ code: 553, text: `5.1.3 Recipient address rejected: ${reason}` }),
  declaredTooLarge: (limit: number): SmtpReply => ({ code: 552, text: `5.3.4 Message size exceeds the limit of ${limit} bytes for this device` }),
  tooLarge: (limit: number): SmtpReply => ({ code: 552, text: `5.3.4 Message size exceeds the limit of ${limit} bytes for this device` }),
  diskFull: { code: 452, text: '4.3.1 Insufficient system storage, try again later' },
  spoolError: { code: 451, text: '4.3.0 Temporary local problem, try again later' },
  queued: (id: string): SmtpReply => ({ code: 250, text: `2.0.0 OK queued as ${id}` }),
} as const;

/**
 * A client-supplied value made safe to echo in a reply: printable ASCII only (replies go to printers that
 * may choke on 8-bit bytes; smtp-server strips only control characters), at most 254 characters.
 */
export function printable(value: string): string {
  const ascii = value.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 254 ? `${ascii.slice(0, 251)}...` : ascii;
}

/** An Error carrying the reply, as smtp-server callbacks expect. */
export function replyError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}
