/**
 * The messages between the main thread (smtp-thread.ts) and the SMTP client thread (smtp-thread-entry.ts).
 * Everything here survives structured cloning: plain objects, strings, numbers, byte arrays.
 */

import type { SecureVersion } from 'node:tls';

/** What the thread needs to build one nodemailer transport (the main thread decides every value). */
export interface TransportSpec {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  servername?: string;
  tls: { rejectUnauthorized: boolean; servername?: string; minVersion?: SecureVersion /** PEM, trusted in addition to the public roots. */; ca?: string };
  /** EHLO name. */
  name: string;
  connectionTimeout: number;
  greetingTimeout: number;
  socketTimeout: number;
  maxConnections: number;
  /** A password login, or XOAUTH2 with tokens asked of the main thread. */
  auth: { user: string; pass?: string; oauth2?: boolean };
}

/** One message to send: the bytes of `head`, then (optionally) the open body file from byte `start`. */
export interface MailSpec {
  from: string;
  to: string[];
  /** Bytes of the message as sent (for SIZE=). */
  size: number;
  use8BitMime: boolean;
  messageId?: string;
  /** The new header lines (or, for a test or notice mail, the whole message). */
  head: Uint8Array;
  /** The spooled body: the claim's open descriptor, read by position from `start`. */
  body?: { fd: number; start: number };
}

/** An error as the thread saw it: its message and nodemailer's facts (code, responseCode, response, ...). */
export interface ErrorFacts {
  name?: string;
  message: string;
  [fact: string]: string | number | boolean | undefined | string[] | ErrorFacts[];
}

export interface SendOutcome {
  accepted: string[];
  rejected: string[];
  rejectedErrors: ErrorFacts[];
  response: string;
}

export type ToThread =
  | { type: 'send'; id: number; key: string; spec: TransportSpec; mail: MailSpec }
  | { type: 'verify'; id: number; key: string; spec: TransportSpec }
  | { type: 'probe'; id: number; spec: TransportSpec }
  | { type: 'close'; key: string; force: boolean }
  | { type: 'token'; id: number; accessToken?: string; expires?: number; error?: ErrorFacts };

export type FromThread =
  | { type: 'done'; id: number; outcome?: SendOutcome; error?: ErrorFacts }
  | { type: 'token'; id: number; key: string; renew: boolean }
  | { type: 'transport-error'; key: string; message: string };

/** Own properties of an error that are plain facts (nodemailer puts code, responseCode, response... there). */
export function errorFacts(err: unknown): ErrorFacts {
  if (!(err instanceof Error)) return { message: String(err) };
  const facts: ErrorFacts = { name: err.name, message: err.message };
  for (const [key, value] of Object.entries(err)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') facts[key] = value;
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) facts[key] = value as string[];
    else if (Array.isArray(value) && value.every((v) => v instanceof Error)) facts[key] = value.map(errorFacts);
  }
  return facts;
}

/** An Error again, with the same facts as own properties (what classify.ts reads). */
export function errorFrom(facts: ErrorFacts): Error {
  const { name, message, ...rest } = facts;
  const err = new Error(message);
  if (name) err.name = name;
  for (const [key, value] of Object.entries(rest)) {
    (err as unknown as Record<string, unknown>)[key] =
      Array.isArray(value) && value.some((v) => typeof v === 'object') ? (value as ErrorFacts[]).map(errorFrom) : value;
  }
  return err;
}
