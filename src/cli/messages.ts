/**
 * `scanrelay queue ...` (postqueue / postsuper) and `scanrelay log` (the message log): both read
 * /api/messages with the same filters; `queue` shows what is still waiting, `log` everything kept.
 * Actions take message IDs (each one reported; any refused ID makes the exit code non-zero) or a
 * selection (--all, --all-held, filters) sent as one bulk request (skips are reported, exit 0).
 */
import { ApiError } from './client.js';
import { type CommandContext, EXIT, UsageError, need, segment, timeOption, withoutUndefined } from './context.js';
import { fields, shortTime, size, table, truncate } from './format.js';

/** States a message leaves the queue in; `queue list` (postqueue -p) shows every other state. */
const DONE_STATES = new Set(['delivered', 'failed', 'partly-failed']);

export interface MessageSummary {
  id: string;
  state: string;
  device: string;
  upstream?: string;
  from: string;
  recipients: number;
  subject?: string;
  size: number;
  attempts: number;
  receivedAt: string;
  nextAttemptAt?: string;
  outcome: string;
}

interface MessageList {
  total: number;
  limit: number;
  offset: number;
  items: MessageSummary[];
  nextCursor?: string;
}

interface Attempt {
  at: string;
  upstream?: string;
  outcome: string;
  reply?: string;
  code?: string;
  responseCode?: number;
}

interface MessageDetail {
  id: string;
  state: string;
  device: string;
  upstream?: string;
  envelope: { mailFrom: string; rcptTo: string[] };
  recipients: Array<{ address: string; state: string; response?: string; at?: string }>;
  headers: { from?: string; to?: string; subject?: string; messageId?: string };
  client?: { remoteAddress?: string; heloName?: string };
  size: number;
  attempts: number | Attempt[];
  attemptCount?: number;
  receivedAt: string;
  nextAttemptAt?: string;
  lastAttemptAt?: string;
  lastError?: { at: string; message: string; code?: string; responseCode?: number };
  held?: { code: string; reason: string };
  hold?: { reason: string; owner: string; text: string; fix: string; since?: string };
  deliveredAt?: string;
  failedAt?: string;
  failReason?: string;
  upstreamResponse?: string;
}

interface BulkResult {
  matched: number;
  changed: number;
  skipped: Array<{ id: string; reason: string }>;
}

type MessageAction = 'retry' | 'release' | 'hold' | 'delete';

const QUEUE_ACTIONS = 'list, show, retry, release, hold, delete, flush, stats';

export async function queueCommand(ctx: CommandContext, action: string | undefined, args: string[]): Promise<number> {
  switch (action) {
    case 'list':
      return listMessages(ctx, ctx.values.state || ctx.values['all-held'] ? [] : await waitingStates(ctx), 'queue');
    case 'show':
      return showMessage(ctx, need(args[0], 'message ID'));
    case 'retry':
    case 'release':
    case 'hold':
    case 'delete':
      return act(ctx, action, args);
    case 'flush': {
      const result = await ctx.api.request<{ flushed: number }>('POST', '/api/queue/flush');
      ctx.print(result, () => `${result.flushed} deferred message(s) due now; the delivery worker is sending them`);
      return EXIT.ok;
    }
    case 'stats': {
      const stats = await ctx.api.request<{ counts: Record<string, number>; oldestPendingAgeSeconds: number }>('GET', '/api/queue/stats');
      ctx.print(
        stats,
        () =>
          `${table(
            ['STATE', 'MESSAGES'],
            Object.entries(stats.counts).map(([state, count]) => [state, String(count)]),
          )}\noldest waiting message: ${stats.oldestPendingAgeSeconds > 0 ? `${Math.round(stats.oldestPendingAgeSeconds)} s old` : 'none'}`,
      );
      return EXIT.ok;
    }
    default:
      throw new UsageError(action ? `unknown queue action "${action}"` : `queue needs an action (${QUEUE_ACTIONS})`);
  }
}

/** The states this gateway has (its queue stats count each one), less the finished ones. */
async function waitingStates(ctx: CommandContext): Promise<string[]> {
  const stats = await ctx.api.request<{ counts: Record<string, number> }>('GET', '/api/queue/stats');
  return Object.keys(stats.counts).filter((state) => !DONE_STATES.has(state));
}

/** `scanrelay log`: the whole message log (delivered and failed too), newest first. */
export async function logCommand(ctx: CommandContext): Promise<number> {
  return listMessages(ctx, [], 'log');
}

async function listMessages(ctx: CommandContext, defaultStates: string[], shape: 'queue' | 'log'): Promise<number> {
  const query = new URLSearchParams();
  const filter = messageFilter(ctx);
  for (const state of filter.state ?? defaultStates) query.append('state', state);
  for (const [key, value] of Object.entries(filter)) if (key !== 'state' && typeof value === 'string') query.set(key, value);
  const { limit, offset, cursor } = ctx.values;
  if (limit) query.set('limit', limit);
  if (offset) query.set('offset', offset);
  if (cursor) query.set('cursor', cursor);
  const data = await ctx.api.request<MessageList>('GET', `/api/messages?${query}`);
  ctx.print(data, () => {
    const rows =
      shape === 'queue'
        ? table(
            ['ID', 'STATE', 'DEVICE', 'UPSTREAM', 'RECEIVED', 'SIZE', 'RCPT', 'ATTEMPTS', 'SUBJECT', 'OUTCOME'],
            data.items.map((m) => [
              m.id,
              m.state,
              m.device,
              m.upstream ?? '-',
              shortTime(m.receivedAt),
              size(m.size),
              String(m.recipients),
              String(m.attempts),
              truncate(m.subject, 30),
              truncate(m.outcome, 70),
            ]),
          )
        : table(
            ['RECEIVED', 'ID', 'DEVICE', 'STATE', 'UPSTREAM', 'FROM', 'SUBJECT', 'OUTCOME'],
            data.items.map((m) => [
              shortTime(m.receivedAt),
              m.id,
              m.device,
              m.state,
              m.upstream ?? '-',
              truncate(m.from, 30),
              truncate(m.subject, 30),
              truncate(m.outcome, 70),
            ]),
          );
    const more = data.nextCursor
      ? `; next page: --cursor ${data.nextCursor}`
      : data.offset + data.items.length < data.total
        ? `; next page: --offset ${data.offset + data.items.length}`
        : '';
    return `${rows}\n${data.items.length} of ${data.total} shown (offset ${data.offset})${more}`;
  });
  return EXIT.ok;
}

/** The message-log filters given on the command line, in the API's shape (times made absolute). */
function messageFilter(ctx: CommandContext): {
  state?: string[];
  device?: string;
  upstream?: string;
  recipient?: string;
  subject?: string;
  since?: string;
  until?: string;
} {
  const { values } = ctx;
  const states = (values.state ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (values['all-held']) states.push('held');
  if ((values.recipient?.length ?? 0) > 1) throw new UsageError('--recipient filters on one address');
  return withoutUndefined({
    state: states.length > 0 ? [...new Set(states)] : undefined,
    device: values.device,
    upstream: values.upstream,
    recipient: values.recipient?.[0],
    subject: values.subject,
    since: timeOption(values.since, 'since'),
    until: timeOption(values.until, 'until'),
  });
}

async function showMessage(ctx: CommandContext, id: string): Promise<number> {
  const m = await ctx.api.request<MessageDetail>('GET', `/api/messages/${segment(id)}`);
  ctx.print(m, () => describeMessage(m));
  return EXIT.ok;
}

function describeMessage(m: MessageDetail): string {
  const attempts = Array.isArray(m.attempts) ? m.attempts : [];
  const attemptCount = Array.isArray(m.attempts) ? (m.attemptCount ?? m.attempts.length) : m.attempts;
  const lines = [
    `message ${m.id}`,
    fields([
      ['state', m.state],
      ['device', m.device],
      ['upstream', m.upstream ?? '(none)'],
      ['received', m.receivedAt],
      ['from (envelope)', m.envelope.mailFrom || '<>'],
      ['to (envelope)', m.envelope.rcptTo.join(', ')],
      ['From:', m.headers.from],
      ['Subject:', m.headers.subject],
      ['Message-ID:', m.headers.messageId],
      ['size', size(m.size)],
      ['client', m.client?.remoteAddress ? `${m.client.remoteAddress}${m.client.heloName ? ` (${m.client.heloName})` : ''}` : undefined],
      ['attempts', attemptCount],
      ['last attempt', m.lastAttemptAt],
      ['next attempt', m.nextAttemptAt],
      ['last error', m.lastError ? `${m.lastError.message}${m.lastError.responseCode ? ` (${m.lastError.responseCode})` : ''}` : undefined],
      ['held because', m.hold?.text ?? m.held?.reason],
      ['to fix', m.hold?.fix],
      ['held since', m.hold?.since],
      ['delivered', m.deliveredAt],
      ['upstream reply', m.upstreamResponse],
      ['failed', m.failedAt ? `${m.failedAt}${m.failReason ? `: ${m.failReason}` : ''}` : undefined],
    ]),
  ];
  if (m.recipients.length > 0) {
    lines.push(
      '',
      'recipients:',
      indent(
        table(
          ['ADDRESS', 'STATE', 'REPLY'],
          m.recipients.map((r) => [r.address, r.state, truncate(r.response, 80)]),
        ),
      ),
    );
  }
  if (attempts.length > 0) {
    lines.push(
      '',
      'attempts:',
      indent(
        table(
          ['AT', 'UPSTREAM', 'OUTCOME', 'REPLY'],
          attempts.map((a) => [shortTime(a.at), a.upstream ?? '-', a.outcome, truncate(a.reply ?? (a.responseCode ? String(a.responseCode) : a.code), 90)]),
        ),
      ),
    );
  }
  return lines.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

const PAST: Record<MessageAction, string> = { retry: 'retried', release: 'released', hold: 'held', delete: 'deleted' };

async function act(ctx: CommandContext, action: MessageAction, ids: string[]): Promise<number> {
  const { values } = ctx;
  const selecting = values.all || values['all-held'] || hasFilter(ctx);
  if (ids.length > 0 && selecting) throw new UsageError(`queue ${action}: give message IDs or a selection (--all, --all-held, filters), not both`);
  if (ids.length === 0 && !selecting) {
    throw new UsageError(`queue ${action} needs message IDs, or --all-held / --all with filters (--device, --upstream, --state, --since ...)`);
  }
  if (action === 'hold' && values['all-held']) throw new UsageError('queue hold --all-held would select messages that are already held');
  return ids.length > 0 ? actOnIds(ctx, action, ids) : actOnSelection(ctx, action);
}

function hasFilter(ctx: CommandContext): boolean {
  const { values } = ctx;
  return [values.state, values.device, values.upstream, values.recipient, values.subject, values.since, values.until].some((v) => v !== undefined);
}

async function actOnIds(ctx: CommandContext, action: MessageAction, ids: string[]): Promise<number> {
  const results: Array<{ id: string; ok: boolean; state?: string; status?: number; code?: string; message?: string }> = [];
  for (const id of ids) {
    const path = `/api/messages/${segment(id)}`;
    try {
      const message =
        action === 'delete'
          ? await ctx.api.request<MessageDetail | undefined>('DELETE', path)
          : await ctx.api.request<MessageDetail>('POST', `${path}/${action}`, action === 'hold' && ctx.values.note ? { note: ctx.values.note } : undefined);
      results.push({ id, ok: true, state: action === 'delete' ? 'deleted' : message?.state });
    } catch (err) {
      // A refusal of one message is reported and the rest go on; no access or no gateway stops everything.
      if (!(err instanceof ApiError) || err.status === 401) throw err;
      results.push({ id, ok: false, status: err.status, code: err.body?.code, message: err.message });
    }
  }
  if (ctx.json) ctx.io.stdout(`${JSON.stringify({ action, results }, null, 2)}\n`);
  for (const r of results) {
    if (r.ok && !ctx.json) ctx.io.stdout(`${PAST[action]} ${r.id}${action === 'delete' ? '' : `: now ${r.state}`}\n`);
    if (!r.ok) ctx.io.stderr(`scanrelay: ${r.id}: ${r.message}${r.code ? ` [${r.code}]` : ''}\n`);
  }
  const failed = results.filter((r) => !r.ok);
  if (failed.length === 0) return EXIT.ok;
  return failed.every((r) => r.status === 404) ? EXIT.notFound : EXIT.refused;
}

async function actOnSelection(ctx: CommandContext, action: MessageAction): Promise<number> {
  const filter = messageFilter(ctx);
  const body: Record<string, unknown> = { action, filter };
  const result = await ctx.api.request<BulkResult>('POST', '/api/messages/bulk', body);
  ctx.print(result, () => {
    const lines = [`${result.changed} of ${result.matched} matching message(s) ${PAST[action]}`];
    for (const s of result.skipped) lines.push(`  skipped ${s.id}: ${s.reason}`);
    return lines.join('\n');
  });
  return EXIT.ok;
}
