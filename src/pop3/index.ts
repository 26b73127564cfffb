/**
 * POP-before-SMTP (issue 7): a POP3 listener that only logs devices in (empty maildrop), and the grants
 * it leaves behind ("address X sends as device Y until T") for the SMTP side. Imports devices and shared
 * only; inbound reads grants through the `popGrant` lookup that app.ts wires in.
 */
export { PopGrants, type PopGrant } from './grants.js';
export { createPop3Server, POP3_MAX_LINE_BYTES, type Pop3Deps, type Pop3Server } from './server.js';
export { Pop3Session, pop3Replies, type Pop3Login, type Pop3LoginOutcome, type Pop3Step } from './session.js';
export { apopDigest, apopTimestamp } from './apop.js';
