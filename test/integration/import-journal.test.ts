/**
 * The one-time import of the file journal written by the version before the store database. The data
 * directory comes from test/fixtures/legacy-journal (written by that version's own Queue, see
 * generate.ts there): 40 messages in every state, one record unreadable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from '../../src/queue/index.js';
import { JournalImport } from '../../src/queue/import.js';
import { GatewayEventBus } from '../../src/shared/events.js';
import { makeTempDir, startTestGateway, waitFor, type TestGateway } from '../kit/gateway.js';
import { startGatewayProcess, writeGatewayConfig, type GatewayProcess } from '../kit/gateway-process.js';
import { RawSmtpClient } from '../kit/raw-smtp.js';

const FIXTURE = new URL('../fixtures/legacy-journal/data', import.meta.url).pathname;

interface LegacyRecord {
  id: string;
  state: string;
  receivedAt: number;
  updatedAt: number;
  deliveredAt?: number;
  failedAt?: number;
  upstreamResponse?: string;
  failReason?: string;
  attempts: number;
  nextAttemptAt?: number;
  recipients: unknown[];
}

async function fixtureRecords(): Promise<{ records: LegacyRecord[]; unreadable: string[]; bodies: string[] }> {
  const names = await readdir(join(FIXTURE, 'queue'));
  const records: LegacyRecord[] = [];
  const unreadable: string[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    try {
      records.push(JSON.parse(await readFile(join(FIXTURE, 'queue', name), 'utf8')) as LegacyRecord);
    } catch {
      unreadable.push(name.slice(0, 17));
    }
  }
  return { records, unreadable, bodies: names.filter((n) => n.endsWith('.eml')) };
}

describe('import of the old file journal', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function copyFixture(): Promise<string> {
    const dataDir = await makeTempDir('scanrelay-import-');
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    await cp(FIXTURE, dataDir, { recursive: true });
    return dataDir;
  }

  it('keeps every id, state, time and result; an unreadable record comes through quarantined with its body', async () => {
    const dataDir = await copyFixture();
    const { records, unreadable, bodies } = await fixtureRecords();
    expect(records.length).toBe(39);
    expect(new Set(records.map((r) => r.state))).toEqual(new Set(['queued', 'deferred', 'held', 'delivered', 'failed']));

    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    cleanups.push(() => queue.close());
    const progress: number[] = [];
    const result = await new JournalImport(queue, { batchSize: 7, onProgress: (p) => progress.push(p.done) }).run();
    expect(result).toMatchObject({ done: 40, total: 40, running: false });
    expect(progress).toEqual([7, 14, 21, 28, 35, 40]);

    for (const record of records) {
      const message = queue.require(record.id);
      const expected = {
        state: record.state,
        receivedAt: record.receivedAt,
        updatedAt: record.updatedAt,
        deliveredAt: record.deliveredAt,
        failedAt: record.failedAt,
        upstreamResponse: record.upstreamResponse,
        failReason: record.failReason,
        attempts: record.attempts,
        nextAttemptAt: record.nextAttemptAt,
        recipients: record.recipients,
      };
      expect(message, record.id).toMatchObject(JSON.parse(JSON.stringify(expected)));
    }
    expect(queue.require(unreadable[0])).toMatchObject({ state: 'quarantined', quarantine: { reason: expect.stringContaining('cannot be read') } });
    expect(queue.list({ limit: 500 }).total).toBe(40);
    const after = await readdir(join(dataDir, 'queue'));
    expect(after.filter((n) => n.endsWith('.json'))).toEqual([]);
    expect(after.filter((n) => n.endsWith('.eml')).sort()).toEqual(bodies.sort());
    expect(after).toContain(`${unreadable[0]}.json.unreadable`);
    // open messages are in memory and due; finished ones are not
    expect(queue.due(Number.MAX_SAFE_INTEGER).length).toBe(records.filter((r) => r.state === 'queued' || r.state === 'deferred').length);
    expect(queue.stats().counts).toMatchObject({ delivered: records.filter((r) => r.state === 'delivered').length, quarantined: 1 });
  });

  it('opens SMTP at once and answers /readyz "importing, N of M" while it runs', async () => {
    const dataDir = await copyFixture();
    let g: TestGateway | undefined;
    cleanups.push(async () => g?.stop());
    g = await startTestGateway(
      { devices: [{ name: 'scanner', auth: 'none', allowFrom: ['127.0.0.1/32'], allowRecipients: ['*@example.org'] }] },
      { dataDir, importBatchSize: 2, importPauseMs: 100 },
    );
    const ready = await g.gateway.admin!.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().importing).toMatch(/^importing, \d+ of 40$/);

    const { client, greeting } = await RawSmtpClient.open(g.smtpPort);
    expect(greeting.code).toBe(220);
    expect((await client.command('EHLO printer')).code).toBe(250);
    expect((await client.command('MAIL FROM:<scanner@example.org>')).code).toBe(250);
    expect((await client.command('RCPT TO:<desk@example.org>')).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    const queued = await client.command('Subject: during the import\r\n\r\nhello\r\n.');
    expect(queued.code).toBe(250);
    client.close();
    const id = /queued as (\S+)/.exec(queued.text)?.[1] ?? '';
    expect(g.gateway.queue.get(id)).toBeDefined();

    await waitFor(() => g?.logs.some((l) => l.includes('queue.import.done')), { timeoutMs: 20_000, what: 'the import to finish' });
    expect(g.logs.filter((l) => l.includes('queue.import.progress')).length).toBeGreaterThanOrEqual(10);
    expect((await g.gateway.admin!.inject({ method: 'GET', url: '/readyz' })).json().importing).toBeUndefined();
    expect(g.gateway.queue.list({ limit: 1 }).total).toBe(41);
  });

  it('killed with SIGKILL half way and started again: nothing lost, nothing doubled', async () => {
    const dataDir = await copyFixture();
    const { records, unreadable } = await fixtureRecords();
    const configFile = await writeGatewayConfig(dataDir, {
      dataDir,
      log: { level: 'info' },
      smtp: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      devices: [],
      upstreams: [],
    });
    let proc: GatewayProcess | undefined;
    cleanups.push(async () => proc?.kill());
    proc = await startGatewayProcess(configFile, { env: { SCANRELAY_IMPORT_BATCH: '3', SCANRELAY_IMPORT_PAUSE_MS: '200' } });
    await proc.waitForLog((l) => String(l.msg).startsWith('queue.import.progress') && Number(l.done) >= 6, 20_000);
    await proc.kill();
    const left = (await readdir(join(dataDir, 'queue'))).filter((n) => n.endsWith('.json'));
    expect(left.length).toBeGreaterThan(0);
    expect(left.length).toBeLessThan(40);

    proc = await startGatewayProcess(configFile);
    await proc.waitForLog((l) => l.msg === 'queue.import.done', 20_000);
    await proc.kill();

    const queue = await Queue.open({ dataDir, events: new GatewayEventBus() });
    cleanups.push(() => queue.close());
    const rows = queue.database.all<{ id: string; n: number }>('SELECT id, count(*) AS n FROM messages GROUP BY id');
    expect(rows.length).toBe(40);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    // Finished records keep their state. Open ones (queued, deferred) are the gateway's to move on: with no
    // device configured, a scan whose retry time has come is held (no-upstream) by the second run.
    for (const record of records) {
      const state = queue.require(record.id).state;
      const allowed = record.state === 'queued' || record.state === 'deferred' ? ['queued', 'deferred', 'held'] : [record.state];
      expect(allowed, `${record.id}: ${record.state} -> ${state}`).toContain(state);
    }
    expect(queue.require(unreadable[0]).state).toBe('quarantined');
    expect((await readdir(join(dataDir, 'queue'))).filter((n) => n.endsWith('.json'))).toEqual([]);
  }, 120_000);
});
