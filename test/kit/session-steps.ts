/**
 * Session steps shaped as the login recorder emits them on the gateway's event bus, for tests of the
 * printer doctor (the watch stream, the console page): one session, each step stamped later than the last.
 */
import type { SessionStep } from '../../src/shared/events.js';

export function sessionSteps(sessionId: string, remoteAddress = '127.0.0.1') {
  let at = Date.now();
  return (step: SessionStep['step'], extra: Partial<SessionStep> = {}): SessionStep => ({
    sessionId,
    protocol: 'smtp',
    remoteAddress,
    step,
    ok: true,
    detail: step,
    at: at++,
    ...extra,
  });
}
