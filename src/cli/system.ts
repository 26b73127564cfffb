/** `scanrelay lockout ...`, `reload` and `stats`: the gateway-wide commands. */
import { ApiError } from './client.js';
import { type CommandContext, EXIT, UsageError, need, segment } from './context.js';
import { shortTime, table } from './format.js';

interface Lockout {
  address?: string;
  key?: string;
  username?: string;
  until: string;
  failures?: number;
}

export async function lockoutCommand(ctx: CommandContext, action: string | undefined, address: string | undefined): Promise<number> {
  switch (action) {
    case 'list': {
      const data = await ctx.api.request<{ items: Lockout[] }>('GET', '/api/lockouts');
      ctx.print(data, () =>
        data.items.length === 0
          ? 'no address is locked out'
          : table(
              ['ADDRESS', 'USERNAME', 'FAILURES', 'LOCKED UNTIL'],
              data.items.map((l) => [l.address ?? l.key ?? '-', l.username ?? '-', l.failures === undefined ? '-' : String(l.failures), shortTime(l.until)]),
            ),
      );
      return EXIT.ok;
    }
    case 'clear': {
      const target = need(address, 'the ADDRESS to unlock (see "scanrelay lockout list")');
      await ctx.api.request('DELETE', `/api/lockouts/${segment(target)}`);
      ctx.print({ cleared: target }, () => `${target} unlocked: logins from it are accepted again`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(action ? `unknown lockout action "${action}"` : 'lockout needs an action (list, clear)');
  }
}

export async function reloadCommand(ctx: CommandContext): Promise<number> {
  const result = await ctx.api.request<{ status: string; devices: number; upstreams: number }>('POST', '/api/reload');
  ctx.print(result, () => `configuration reloaded: ${result.devices} device(s), ${result.upstreams} upstream(s)`);
  return EXIT.ok;
}

interface Counts {
  received: number;
  delivered: number;
  failed: number;
}

interface GatewayStats {
  generatedAt: string;
  timeZone: string;
  devices: Array<{ device: string; today: Counts; week: Counts }>;
  queue: Record<string, number>;
  daily: Array<{ day: string; delivered: number; failed: number }>;
}

export async function statsCommand(ctx: CommandContext): Promise<number> {
  let stats: GatewayStats;
  try {
    stats = await ctx.api.request<GatewayStats>('GET', '/api/stats');
  } catch (err) {
    if (err instanceof ApiError && err.body?.code === 'SCANRELAY_ROUTE_NOT_FOUND') return olderGatewayStats(ctx);
    throw err;
  }
  ctx.print(stats, () => {
    const devices = table(
      ['DEVICE', 'TODAY RECEIVED', 'DELIVERED', 'FAILED', 'WEEK RECEIVED', 'DELIVERED', 'FAILED'],
      stats.devices.map((d) => [d.device, ...[d.today, d.week].flatMap((c) => [c.received, c.delivered, c.failed].map(String))]),
    );
    const queue = Object.entries(stats.queue)
      .map(([state, n]) => `${state} ${n}`)
      .join(', ');
    const peak = Math.max(1, ...stats.daily.map((d) => d.delivered + d.failed));
    const daily = stats.daily.map((d) => {
      const bar = '#'.repeat(Math.round((d.delivered / peak) * 40)) + '!'.repeat(Math.round((d.failed / peak) * 40));
      return `  ${d.day}  ${String(d.delivered).padStart(5)} delivered  ${String(d.failed).padStart(4)} failed  ${bar}`;
    });
    return [devices, '', `queue: ${queue}`, '', `last ${stats.daily.length} days (${stats.timeZone}; # delivered, ! failed):`, ...daily].join('\n');
  });
  return EXIT.ok;
}

/** A gateway without GET /api/stats: the same picture from the device counts and the queue counts. */
async function olderGatewayStats(ctx: CommandContext): Promise<number> {
  const devices = await ctx.api.request<{ items: Array<{ name: string; status: { counts: Counts & { queued: number } } }> }>('GET', '/api/devices');
  const queue = await ctx.api.request<{ counts: Record<string, number> }>('GET', '/api/queue/stats');
  const data = {
    generatedAt: new Date().toISOString(),
    devices: devices.items.map((d) => ({ device: d.name, sinceStart: d.status.counts })),
    queue: queue.counts,
  };
  ctx.print(data, () =>
    [
      table(
        ['DEVICE', 'RECEIVED', 'DELIVERED', 'FAILED', 'QUEUED'],
        data.devices.map((d) => [d.device, ...[d.sinceStart.received, d.sinceStart.delivered, d.sinceStart.failed, d.sinceStart.queued].map(String)]),
      ),
      '',
      `queue: ${Object.entries(queue.counts)
        .map(([state, n]) => `${state} ${n}`)
        .join(', ')}`,
      '(counts since the gateway started: this gateway has no per-day statistics)',
    ].join('\n'),
  );
  return EXIT.ok;
}
