/** `scanrelay upstream ...`: the Google (or other) accounts scans leave through; verify, test-send, retry. */
import { type CommandContext, EXIT, UsageError, need, segment } from './context.js';
import { ago, fields, shortTime, table, truncate } from './format.js';

interface UpstreamView {
  name: string;
  host: string;
  port: number;
  security: string;
  user: string;
  auth: string;
  state: string;
  lastSuccessAt?: string;
  lastError?: { at: string; message: string; code?: string; responseCode?: number };
  waiting: number;
  activePort?: number;
  activeSecurity?: string;
  securityChosen?: string;
  pausedUntil?: string;
  quotaPausedUntil?: string;
  inFlight?: number;
  held?: number;
  sentToday?: number;
  dailyLimit?: number;
}

interface UpstreamCheck {
  ok: boolean;
  port?: number;
  security?: string;
  response?: string;
  error?: { message: string; code?: string; responseCode?: number };
  durationMs: number;
}

export async function upstreamCommand(ctx: CommandContext, action: string | undefined, name: string | undefined): Promise<number> {
  const path = (suffix = '') => `/api/upstreams/${segment(need(name, 'upstream NAME'))}${suffix}`;
  switch (action) {
    case 'list': {
      const data = await ctx.api.request<{ items: UpstreamView[] }>('GET', '/api/upstreams');
      ctx.print(data, () =>
        table(
          ['NAME', 'STATE', 'SERVER', 'SECURITY', 'ACCOUNT', 'WAITING', 'HELD', 'SENT TODAY', 'LAST SUCCESS', 'LAST ERROR'],
          data.items.map((u) => [
            u.name,
            u.state,
            `${u.host}:${u.activePort ?? u.port}`,
            security(u),
            u.user,
            String(u.waiting),
            String(u.held ?? 0),
            u.sentToday === undefined ? '-' : `${u.sentToday}${u.dailyLimit ? `/${u.dailyLimit}` : ''}`,
            ago(u.lastSuccessAt),
            truncate(pause(u) ?? u.lastError?.message, 60),
          ]),
        ),
      );
      return EXIT.ok;
    }
    case 'show': {
      const u = await ctx.api.request<UpstreamView>('GET', path());
      ctx.print(u, () =>
        [
          u.name,
          fields([
            ['state', u.state],
            ['server', `${u.host}:${u.port}`],
            ['security', security(u)],
            ['port in use', u.activePort],
            ['account', u.user],
            ['auth', u.auth],
            ['waiting', u.waiting],
            ['held', u.held],
            ['sending now', u.inFlight],
            ['sent today', u.sentToday === undefined ? undefined : `${u.sentToday}${u.dailyLimit ? ` of ${u.dailyLimit} a day` : ''}`],
            ['paused', pause(u)],
            ['last success', u.lastSuccessAt],
            ['last error', u.lastError ? `${u.lastError.message} (${u.lastError.at})` : undefined],
          ]),
        ].join('\n'),
      );
      return EXIT.ok;
    }
    case 'verify':
    case 'test': {
      if (action === 'test' && !ctx.values.to) throw new UsageError('upstream test needs --to ADDRESS (where the test message goes)');
      const check = await ctx.api.request<UpstreamCheck>('POST', path(`/${action}`), action === 'test' ? { to: ctx.values.to } : undefined);
      const what = action === 'verify' ? 'login (connect, TLS, AUTH)' : `test message to ${ctx.values.to}`;
      ctx.print(check, () => {
        const via = check.port ? ` via port ${check.port}${check.security ? ` (${check.security})` : ''}` : '';
        const head = check.ok ? `${name}: ${what} OK${via} in ${Math.round(check.durationMs)} ms` : `${name}: ${what} FAILED${via}`;
        const reply = check.ok ? check.response : (check.error?.message ?? check.response);
        return reply ? `${head}\n  the upstream said: ${reply}` : head;
      });
      return check.ok ? EXIT.ok : EXIT.refused;
    }
    case 'retry': {
      const result = await ctx.api.request<{ released: number }>('POST', path('/retry'));
      ctx.print(result, () => `${name}: failure state and pause cleared; ${result.released} held message(s) released and being tried now`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(action ? `unknown upstream action "${action}"` : 'upstream needs an action (list, show, verify, test, retry)');
  }
}

function security(u: UpstreamView): string {
  const chosen = u.securityChosen ?? u.activeSecurity;
  return u.security === 'auto' && chosen ? `auto (${chosen})` : u.security;
}

function pause(u: UpstreamView): string | undefined {
  const until = u.quotaPausedUntil ?? u.pausedUntil;
  return until && Date.parse(until) > Date.now() ? `paused until ${shortTime(until)}` : undefined;
}
