/**
 * Damage a closed store database the way a bad disk does: one page of one table overwritten with
 * garbage, the rest intact (the file still opens; `PRAGMA quick_check` finds it). And the state a crash
 * leaves: a WAL file next to the database.
 */
import { open, writeFile } from 'node:fs/promises';
import { StoreDatabase } from '../../src/store/database.js';

/**
 * Overwrites the first `count` leaf pages of `table` (a table or index name in sqlite_master) in the file at
 * `path`. Also while the gateway runs: pages it has not read yet are read from the file when first asked for.
 */
export async function damageLeafPage(path: string, table: string, count = 1): Promise<number[]> {
  const db = StoreDatabase.open(path);
  const pageSize = db.get<{ page_size: number }>('PRAGMA page_size')?.page_size ?? 4096;
  const pages = db
    .prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno LIMIT ?")
    .all(table, count)
    .map((row) => (row as { pageno: number }).pageno);
  db.close();
  if (pages.length === 0) throw new Error(`no leaf page of ${table} in ${path}`);
  const file = await open(path, 'r+');
  for (const page of pages) await file.write(Buffer.alloc(pageSize, 0x5a), 0, pageSize, (page - 1) * pageSize);
  await file.close();
  return pages;
}

/** What kill -9 leaves: the WAL file a clean close removes (empty here: nothing was lost in it). */
export async function leaveUncleanStop(path: string): Promise<void> {
  await writeFile(`${path}-wal`, '', { mode: 0o600 });
}
