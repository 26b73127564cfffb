import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreDatabase, isCorruptionError } from '../../../src/store/database.js';
import { checkIntegrityInBackground } from '../../../src/store/integrity.js';
import { damageLeafPage } from '../../kit/store-damage.js';

describe('the background integrity check', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-integrity-'));
    path = join(dir, 'store.db');
    const db = StoreDatabase.open(path);
    db.exec('CREATE TABLE history (id INTEGER PRIMARY KEY, subject TEXT)');
    db.exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO history SELECT i, 'scan ' || i || printf('%.200c', 'x') FROM n",
    );
    db.close();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes a sound database, read while the gateway writes to it', async () => {
    const db = StoreDatabase.open(path);
    const check = checkIntegrityInBackground(path);
    await db.commit(() => db.prepare("INSERT INTO history (subject) VALUES ('written during the check')").run(), { durable: true });
    expect(await check.done).toMatchObject({ kind: 'ok' });
    db.close();
  });

  it('finds a damaged page that opening the file does not notice', async () => {
    await damageLeafPage(path, 'history');
    const db = StoreDatabase.open(path);
    const outcome = await checkIntegrityInBackground(path).done;
    db.close();
    expect(outcome.kind).toBe('corrupt');
    expect(outcome.kind === 'corrupt' && outcome.problems.join(' ')).toMatch(/malformed|page/i);
  });

  it('says unchecked, not corrupt, when it cannot run (no such file)', async () => {
    const outcome = await checkIntegrityInBackground(join(dir, 'missing.db')).done;
    expect(outcome).toMatchObject({ kind: 'unchecked', error: expect.stringMatching(/unable to open/) });
  });

  it('stops when cancelled (the gateway stops first)', async () => {
    // Cancelled in the same tick: the process has not even started, so no answer can come first.
    const db = StoreDatabase.open(path);
    const check = checkIntegrityInBackground(path);
    await check.cancel();
    expect(await check.done).toMatchObject({ kind: 'cancelled' });
    db.close();
  });

  it('a write that meets a damaged page is refused, and the database says so to onCorruption', async () => {
    await damageLeafPage(path, 'history');
    const db = StoreDatabase.open(path);
    const seen: unknown[] = [];
    db.onCorruption = (err) => seen.push(err);
    const write = db.commit(() => db.prepare("UPDATE history SET subject = 'x' WHERE id = 1").run(), { durable: true });
    await expect(write).rejects.toMatchObject({ code: expect.stringMatching(/^SQLITE_CORRUPT/) });
    expect(seen).toHaveLength(1);
    expect(isCorruptionError(seen[0])).toBe(true);
    // A sound write after it goes through, and is not reported.
    await db.commit(() => db.prepare("INSERT INTO history (subject) VALUES ('fine')").run(), { durable: true });
    expect(seen).toHaveLength(1);
    db.close();
  });

  it('tells corruption errors from others by their SQLite code', () => {
    expect(isCorruptionError(Object.assign(new Error('database disk image is malformed'), { code: 'SQLITE_CORRUPT' }))).toBe(true);
    expect(isCorruptionError(Object.assign(new Error('file is not a database'), { code: 'SQLITE_NOTADB' }))).toBe(true);
    expect(isCorruptionError(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))).toBe(false);
    expect(isCorruptionError(undefined)).toBe(false);
  });
});
