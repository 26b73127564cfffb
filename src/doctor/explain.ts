/**
 * The printer doctor's catalogue: a failed session step (and its true reason) -> what went wrong and what
 * to change, in the words of the printer's own setup pages (WorkCentre 6505DN "Email Server"). One table,
 * so the web console, the CLI's `watch` and the docs say the same thing.
 */
import type { SessionStep } from '../shared/events.js';

export interface Explanation {
  problem: string;
  fix: string;
}

/** What the catalogue may say about the device the session belongs to (never its secret). */
export interface DeviceFacts {
  name: string;
  username?: string;
  auth: 'password' | 'none';
  allowFrom: readonly string[];
  allowRecipients: readonly string[];
  maxMessageSize: number;
  enabled: boolean;
}

type Explainer = (step: SessionStep, device: DeviceFacts | undefined) => Explanation;

const EMAIL_SERVER_PAGE = "the printer's Email Server page (CentreWare Internet Services > Properties > Protocols > Email Server)";

const loginName = (device: DeviceFacts | undefined) => (device?.username ? `"${device.username}"` : 'the device\'s login (see "scanrelay device show")');

/** Failed AUTH (and POP3 login) steps, by LoginReason. */
const AUTH: Record<string, Explainer> = {
  'unknown-user': (_s, d) => ({
    problem: 'the login name is unknown',
    fix: `set Login Name on ${EMAIL_SERVER_PAGE} to exactly ${loginName(d)} (letters are case-sensitive, no spaces)`,
  }),
  'bad-password': (_s, d) => ({
    problem: 'the login name is right but the password is wrong',
    fix: `type the device's password again in Password on the Email Server page (not the Google app password); if it is lost, rotate it${d ? ` for ${d.name}` : ''} in the console and enter the new one`,
  }),
  'wrong-address': (s, d) => ({
    problem: `the login is right but the printer sent from ${s.remoteAddress}, which the device does not allow`,
    fix: `add ${s.remoteAddress} to the device's allowFrom${d && d.allowFrom.length > 0 ? ` (now ${d.allowFrom.join(', ')})` : ''}, or give the printer its reserved address back`,
  }),
  disabled: (_s, d) => ({
    problem: 'the device is disabled, so the gateway refuses it (the printer shows "Stop")',
    fix: `enable ${d ? d.name : 'the device'} on the Devices page`,
  }),
  'locked-out': (s) => ({
    problem: `too many failed logins: ${s.remoteAddress} is locked out for a while`,
    fix: 'correct the Login Name and Password on the Email Server page, then clear the lock-out on the Devices page',
  }),
  'method-unavailable': () => ({
    problem: 'the printer chose a login method the device cannot use (CRAM-MD5 needs the stored password, not only its hash)',
    fix: 'give the device a plain password (rotate it in the console) or set Email Send Authentication to SMTP AUTH (Auto)',
  }),
  'pop-grant-expired': () => ({
    problem: "POP before SMTP: the printer's POP3 login is too old, so its address is no longer trusted",
    fix: "lower the printer's POP3 Server Check Interval below the gateway's pop3.authWindow, or use SMTP AUTH (Auto)",
  }),
  malformed: () => ({
    problem: 'the printer sent a login the gateway could not read',
    fix: 'set Email Send Authentication to SMTP AUTH (Auto) and retype Login Name and Password (letters and digits only)',
  }),
};

/** Refusals, by the SMTP reply code the gateway sent. */
const REFUSED: Record<string, Explainer> = {
  '530': () => ({
    problem: 'the printer tried to send without logging in',
    fix: `set Email Send Authentication to SMTP AUTH (Auto) on ${EMAIL_SERVER_PAGE} and fill in Login Name and Password`,
  }),
  '550': (_s, d) => ({
    problem: 'a recipient is not allowed for this device (the gateway is not an open relay)',
    fix: `scan to an address the device allows${d ? ` (${d.allowRecipients.join(', ')})` : ''}, or add the address to its allowRecipients`,
  }),
  '552': (_s, d) => ({
    problem: `the scan is larger than the device's limit${d ? ` (${Math.round(d.maxMessageSize / 1048576)} MB)` : ''}`,
    fix: 'scan at a lower resolution or in fewer pages, or raise maxMessageSize for the device (Gmail takes at most 25 MB)',
  }),
  '554': () => ({
    problem: 'the gateway refused the message as a whole',
    fix: 'read the refusal text above; check that the device is enabled and the recipients are allowed',
  }),
  '421': () => ({
    problem: 'the gateway is busy or shutting down and asked the printer to come back later',
    fix: 'scan again in a minute; if it keeps happening, look at the gateway log',
  }),
  '451': () => ({
    problem: 'the gateway could not store the scan (for example the disk is full)',
    fix: 'free disk space for the data directory; the printer may resend by itself',
  }),
  '452': () => ({
    problem: 'the gateway is out of storage for now',
    fix: 'free disk space for the data directory, then scan again',
  }),
};

/** Failed steps whose reason is a word (the inbound server's own causes), whatever the step. */
const BY_REASON: Record<string, Explainer> = {
  'pre-auth-timeout': () => ({
    problem: 'the printer connected but did not log in in time',
    fix: "set Email Send Authentication to SMTP AUTH (Auto) and fill in Login Name and Password; a printer set to No Authentication needs its address in the device's allowFrom",
  }),
  evicted: () => ({
    problem: 'the gateway was full and closed this session because it had not logged in yet',
    fix: 'scan again; if it keeps happening, something else on the network is holding connections open (see the lock-outs and the gateway log)',
  }),
  'per-address': (s) => ({
    problem: `too many connections at once from ${s.remoteAddress}`,
    fix: 'wait a minute and scan again; several printers behind one address need a higher per-address limit',
  }),
  'session-timeout': () => ({
    problem: 'the POP3 session lasted longer than the gateway allows',
    fix: 'scan again; check the network between the printer and the gateway',
  }),
  'idle-timeout': () => ({
    problem: 'the printer went quiet in the middle of the session',
    fix: 'check the network between the printer and the gateway; scan again',
  }),
};

const OTHER: Partial<Record<SessionStep['step'], Explainer>> = {
  starttls: () => ({
    problem: 'the printer tried STARTTLS (encryption), which this plaintext port does not offer',
    fix: 'set SSL/TLS to Off on its Email Server page (keep Email Send Authentication on SMTP AUTH); scanrelay adds the TLS towards Gmail itself',
  }),
  connect: (s) => ({
    problem: `the connection from ${s.remoteAddress} was refused before the greeting`,
    fix: 'check that the address is not locked out and that the gateway is not at its connection limit',
  }),
  timeout: () => ({
    problem: 'the printer stopped talking in the middle of the session',
    fix: 'check the network between the printer and the gateway; a scan this large may need a longer smtp.socketTimeout',
  }),
  helo: () => ({
    problem: 'the printer greeted the gateway with a name it refused',
    fix: 'set a Host Name in the printer\'s TCP/IP settings (letters, digits, "-")',
  }),
};

/** What went wrong and how to fix it, for a failed step; undefined for a step that went fine. */
export function explainStep(step: SessionStep, device?: DeviceFacts): Explanation | undefined {
  if (step.ok) return undefined;
  if (step.step === 'auth') return (AUTH[step.reason ?? ''] ?? AUTH.malformed)(step, device);
  const byReason = BY_REASON[step.reason ?? ''];
  if (byReason) return byReason(step, device);
  const code = /^\d{3}/.exec(step.reason ?? '')?.[0];
  if (code && REFUSED[code]) return REFUSED[code](step, device);
  const other = OTHER[step.step];
  if (other) return other(step, device);
  if (code?.startsWith('4')) return REFUSED['421'](step, device);
  return {
    problem: `the ${step.step.toUpperCase()} step failed${step.reason ? ` (${step.reason})` : ''}`,
    fix: 'read the step above; the gateway log has the details',
  };
}

/** Hides what must never reach a screen even if a step's detail carried it (AUTH initial responses, passwords). */
export function maskSecrets(detail: string): string {
  return (
    detail
      // An initial response after the mechanism ("AUTH PLAIN AGFk..."), not the words "as <login>".
      .replace(/\b(AUTH\s+(?:PLAIN|LOGIN|CRAM-MD5|XOAUTH2))\s+(?!as\s)\S+/gi, '$1 ••••')
      .replace(/^(PASS)\s+\S+/, '$1 ••••')
      .replace(/\b(APOP\s+\S+\s+)[0-9a-f]{32}\b/gi, '$1••••')
      .replace(/(password|pass|secret)(\s*[=:]\s*)\S+/gi, '$1$2••••')
  );
}
