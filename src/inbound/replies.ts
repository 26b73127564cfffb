/** The SMTP replies scanrelay sends itself (smtp-server sends the protocol-level ones). */
export interface SmtpReply {
  code: number;
  text: string;
}

export const replies = {
  authRequired: { code: 530, text: "5.7.0 Authentication required: log in with this device's scanrelay credentials" },
  /** Every failed login hears this, whatever failed (the log and the login.attempted event say what). */
  authFailed: { code: 535, text: '5.7.8 Authentication credentials invalid' },
  /** Only after the password was verified correct. */
  authWrongAddress: {
    code: 535,
    text: "5.7.8 The password is right, but this device may not log in from this address: add it to the device's allowFrom",
  },
  /** Only after the password was verified correct. */
  authDisabled: { code: 535, text: '5.7.8 The password is right, but this device is disabled on the gateway: enable it in the admin console' },
  authLocked: { code: 454, text: '4.7.0 Too many failed logins, try again later' },
  connectionLocked: { code: 421, text: '4.7.0 Too many failed logins from this address, try again later' },
  tooManyFromAddress: { code: 421, text: '4.7.0 Too many connections from this address' },
  tooManyClients: { code: 421, text: '4.7.0 Too many connected clients, try again in a moment' },
  tooManyUnauthenticated: { code: 421, text: '4.7.0 Too many clients waiting to log in, try again in a moment' },
  evicted: { code: 421, text: '4.7.0 The gateway is busy: closing this idle session that has not logged in' },
  preAuthTimeout: (seconds: number): SmtpReply => ({
    code: 421,
    text: `4.4.2 No login (or MAIL, for devices without a password) within ${seconds} s: closing connection`,
  }),
  popGrantExpired: {
    code: 530,
    text: '5.7.0 The POP3 login (POP before SMTP) for this address has expired: the printer must log in over POP3 again just before sending, or use SMTP AUTH',
  },
  deviceDisabled: { code: 550, text: '5.7.1 This device is disabled on the gateway' },
  senderNotAllowed: (address: string, device: string): SmtpReply => ({
    code: 553,
    text: `5.7.1 Sender <${printable(address)}> is not allowed for device ${device}: use an address listed in its allowSenders`,
  }),
  headerFromNotAllowed: (address: string, device: string): SmtpReply => ({
    code: 550,
    text: `5.7.1 The message's From <${printable(address)}> is not allowed for device ${device}: set the printer's sender address to one listed in its allowSenders`,
  }),
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
