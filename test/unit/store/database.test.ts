import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreDatabase } from '../../../src/store/database.js';

describe('StoreDatabase group commit', () => {
  let dir: string;
  let db: StoreDatabase;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-db-'));
    db = StoreDatabase.open(join(dir, 'store.db'));
    db.exec('CREATE TABLE t (v INTEGER)');
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });
  const insert = (v: number) => () => db.prepare('INSERT INTO t (v) VALUES (?)').run(v).changes;

  it('leaves syncing to itself (synchronous=OFF, no automatic checkpoints) and resolves a durable write only after a WAL fdatasync', async () => {
    expect(db.synchronous()).toBe(0);
    expect(db.get<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint')?.wal_autocheckpoint).toBe(0);
    const before = db.commitStats.walSyncs;
    let syncsWhenResolved = -1;
    await db.commit(insert(1), { durable: true }).then(() => {
      syncsWhenResolved = db.commitStats.walSyncs;
    });
    expect(syncsWhenResolved).toBe(before + 1);
    // A non-durable write resolves at its commit and starts no fdatasync of its own.
    await db.commit(insert(2));
    expect(db.commitStats.walSyncs).toBe(before + 1);
    expect(db.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n).toBe(2);
  });

  it('makes durable writes committed while an fdatasync runs wait for the next one, which covers them all', async () => {
    const before = db.commitStats.walSyncs;
    const first = db.commit(insert(1), { durable: true });
    // Next ticks: the first batch has committed and its fdatasync is running.
    await new Promise((resolve) => setImmediate(resolve));
    const later = Array.from({ length: 10 }, (_, i) => db.commit(insert(i + 2), { durable: true }));
    const settled: number[] = [];
    await Promise.all([first, ...later].map((p, i) => p.then(() => settled.push(i))));
    expect(settled).toHaveLength(11);
    // One for the first batch, one (at most two, if the first finished before the others committed) for the rest.
    expect(db.commitStats.walSyncs - before).toBeGreaterThanOrEqual(2);
    expect(db.commitStats.walSyncs - before).toBeLessThanOrEqual(3);
  });

  it('rejects only the write that failed, and still syncs the others', async () => {
    const ok = db.commit(insert(1), { durable: true });
    const bad = db.commit(() => db.prepare('INSERT INTO missing_table VALUES (1)').run(), { durable: true });
    const [okResult, badResult] = await Promise.allSettled([ok, bad]);
    expect(okResult).toEqual({ status: 'fulfilled', value: 1 });
    expect(badResult.status === 'rejected' && String(badResult.reason)).toMatch(/missing_table/);
  });

  it('settles durable writes still waiting when the database closes (synced on close)', async () => {
    const pending = db.commit(insert(1), { durable: true });
    db.close();
    await expect(pending).resolves.toBe(1);
    db = StoreDatabase.open(join(dir, 'store.db'));
    expect(db.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n).toBe(1);
  });

  it('checkpoints off the event loop after enough batches, holding the writes that come meanwhile, and loses none', async () => {
    const before = db.commitStats.checkpoints;
    // 200 batches (one per tick) make a checkpoint due; the writes of the next ticks wait for it.
    for (let i = 0; i < 200; i++) await db.commit(insert(i));
    const during = Array.from({ length: 5 }, (_, i) => db.commit(insert(1000 + i), { durable: i % 2 === 0 }));
    await Promise.all(during);
    expect(db.commitStats.checkpoints).toBe(before + 1);
    // Every frame was copied into store.db: a passive checkpoint now finds nothing left but what came after.
    expect(db.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n).toBe(205);
    db.close();
    db = StoreDatabase.open(join(dir, 'store.db'));
    expect(db.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n).toBe(205);
  });

  it('checkpoints a quiet database after a pause in writes, without another write', async () => {
    const before = db.commitStats.checkpoints;
    await db.commit(insert(1));
    await expect.poll(() => db.commitStats.checkpoints, { timeout: 10_000, interval: 100 }).toBe(before + 1);
  });
});
