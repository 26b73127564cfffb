/**
 * `scanrelay watch DEVICE`: the printer doctor in a terminal. Follows GET /api/watch?device=NAME (server-sent
 * events) and prints each session step as it arrives, failing steps with the problem and the fix, then
 * the upstream attempt. Runs until Ctrl-C, the gateway ends the stream, or --sessions N sessions are
 * complete (closed, and each scan they queued has a delivery outcome).
 */
import type { ServerSentEvent } from './client.js';
import { type CommandContext, EXIT, UsageError, need, segment } from './context.js';
import { shortTime } from './format.js';

export interface WatchStep {
  sessionId: string;
  protocol: string;
  remoteAddress: string;
  device?: string;
  step: string;
  ok: boolean;
  detail: string;
  reason?: string;
  at: string;
  explanation?: { problem: string; fix: string };
}

export interface WatchDelivery {
  id: string;
  sessionId?: string;
  device: string;
  outcome: string;
  upstream?: string;
  reply?: string;
  at: string;
}

/** Steps after which a session says nothing more. */
const FINAL_STEPS = new Set(['closed']);

export async function watchCommand(ctx: CommandContext, device: string | undefined): Promise<number> {
  const name = need(device, 'DEVICE to watch');
  const wanted = ctx.values.sessions === undefined ? undefined : Number(ctx.values.sessions);
  if (wanted !== undefined && !(Number.isInteger(wanted) && wanted > 0)) throw new UsageError('--sessions is a whole number of sessions, 1 or more');

  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  ctx.io.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const sessions = new SessionTracker();

  const onEvent = (event: ServerSentEvent) => {
    if (event.event === 'ping') return;
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // a line we cannot read is not worth stopping the watch for
    }
    if (ctx.json) ctx.io.stdout(`${JSON.stringify({ event: event.event, data })}\n`);
    if (event.event === 'step') {
      const step = data as WatchStep;
      if (!ctx.json) ctx.io.stdout(formatStep(step));
      sessions.step(step);
    } else if (event.event === 'delivery') {
      const delivery = data as WatchDelivery;
      if (!ctx.json) ctx.io.stdout(formatDelivery(delivery));
      sessions.delivery(delivery);
    }
    if (wanted !== undefined && sessions.complete >= wanted) stop.abort();
  };

  // Said once the gateway has accepted the watch, so "scan now" is true when it is read.
  const onOpen = () => {
    if (!ctx.json) ctx.io.stderr(`watching ${name}: scan on the printer now; each step appears as it happens (Ctrl-C to stop)\n`);
  };
  try {
    const end = await ctx.api.stream(`/api/watch?device=${segment(name)}`, onEvent, { signal: stop.signal, onOpen });
    if (end === 'ended' && !stop.signal.aborted) {
      ctx.io.stderr('scanrelay: the gateway ended the watch (restarted or stopped?)\n');
      return EXIT.unavailable;
    }
    return EXIT.ok;
  } finally {
    ctx.io.signal?.removeEventListener('abort', onOuterAbort);
  }
}

/** Which sessions are complete: closed, and every message they queued has had a delivery outcome. */
class SessionTracker {
  complete = 0;
  private readonly closed = new Set<string>();
  private readonly pending = new Map<string, Set<string>>();
  private readonly counted = new Set<string>();

  step(step: WatchStep): void {
    if (step.step === 'queued') {
      const id = /queued as (\S+)/.exec(step.detail)?.[1];
      if (id) this.pendingOf(step.sessionId).add(id);
    }
    if (FINAL_STEPS.has(step.step)) this.closed.add(step.sessionId);
    this.settle(step.sessionId);
  }

  delivery(delivery: WatchDelivery): void {
    for (const [sessionId, ids] of this.pending) {
      if (ids.delete(delivery.id) || sessionId === delivery.sessionId) this.settle(sessionId);
    }
  }

  private pendingOf(sessionId: string): Set<string> {
    const ids = this.pending.get(sessionId) ?? new Set<string>();
    this.pending.set(sessionId, ids);
    return ids;
  }

  private settle(sessionId: string): void {
    if (this.counted.has(sessionId) || !this.closed.has(sessionId)) return;
    if ((this.pending.get(sessionId)?.size ?? 0) > 0) return;
    this.counted.add(sessionId);
    this.pending.delete(sessionId);
    this.complete += 1;
  }
}

export function formatStep(step: WatchStep): string {
  const head = `${shortTime(step.at)}  ${step.protocol} ${shortId(step.sessionId)}  ${step.ok ? 'ok  ' : 'FAIL'}  ${step.step.padEnd(9)}  `;
  const where = step.step === 'connect' && !step.detail.includes(step.remoteAddress) ? ` (from ${step.remoteAddress})` : '';
  const reason = !step.ok && step.reason && !step.detail.includes(step.reason) ? ` [${step.reason}]` : '';
  const lines = [`${head}${step.detail}${where}${reason}`];
  if (step.explanation) {
    const pad = ' '.repeat(head.length);
    lines.push(`${pad}problem: ${step.explanation.problem}`, `${pad}fix:     ${step.explanation.fix}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatDelivery(d: WatchDelivery): string {
  // Queued and deferred are not failures: the scan is safe and waits for its (next) attempt.
  const mark = d.outcome === 'failed' || d.outcome === 'held' || d.outcome === 'partly-failed' ? 'FAIL' : d.outcome === 'delivered' ? 'ok  ' : 'wait';
  const via = d.upstream ? ` via ${d.upstream}` : '';
  return `${shortTime(d.at)}  upstream     ${mark}  ${d.outcome.padEnd(9)}  message ${d.id}${via}${d.reply ? `: ${d.reply}` : ''}\n`;
}

function shortId(sessionId: string): string {
  return sessionId.length <= 8 ? sessionId.padEnd(8) : sessionId.slice(-8);
}
