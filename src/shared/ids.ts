import { randomBytes } from 'node:crypto';

/**
 * Queue ids sort by time and are safe in file names: 9 base36 chars of milliseconds + 8 hex random.
 * Example: "mh9k2x7qa3f91c0d2".
 */
export function newQueueId(now = Date.now()): string {
  return now.toString(36).padStart(9, '0') + randomBytes(4).toString('hex');
}

export function newSessionId(): string {
  return randomBytes(6).toString('hex');
}

const QUEUE_ID = /^[0-9a-z]{9}[0-9a-f]{8}$/;
export function isQueueId(value: string): boolean {
  return QUEUE_ID.test(value);
}
