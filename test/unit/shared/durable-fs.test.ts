import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileDurable } from '../../../src/shared/durable-fs.js';
import { isQueueId, newQueueId, newSessionId } from '../../../src/shared/ids.js';

describe('writeFileDurable', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-durable-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces the file atomically and leaves no temp file', async () => {
    const path = join(dir, 'record.json');
    await writeFileDurable(path, 'one');
    await writeFileDurable(path, 'two', { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['record.json']);
  });

  it('creates new files with the given mode', async () => {
    const path = join(dir, 'secret.key');
    await writeFileDurable(path, 'k', { mode: 0o600 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('fails without leaving a temp file when the target directory does not exist', async () => {
    await expect(writeFileDurable(join(dir, 'missing', 'x.json'), 'x', { tmpDir: dir })).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('ids', () => {
  it('queue ids sort by time and are recognised', () => {
    const a = newQueueId(1_700_000_000_000);
    const b = newQueueId(1_700_000_000_001);
    expect(a < b).toBe(true);
    expect(isQueueId(a)).toBe(true);
    expect(isQueueId('../etc/passwd')).toBe(false);
    expect(newSessionId()).toMatch(/^[0-9a-f]{12}$/);
  });
});
