import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  INITIAL_OLD_SPACE_FLAG,
  SCAVENGE_BUFFERS_NEW_SPACE_MB,
  SCAVENGER_FLAG as FLAG,
  THREAD_INITIAL_OLD_SPACE_MB,
  tuneThreadHeap,
  tuneYoungGeneration,
} from '../../../src/shared/heap-tuning.js';

describe('tuneYoungGeneration (when V8 scavenges to free dead ArrayBuffers)', () => {
  it('leaves a V8 without the flag alone (Node 20 ships V8 11.3)', () => {
    expect(tuneYoungGeneration('11.3.244.8-node.33', [])).toBe('not available in V8 11.3.244.8-node.33');
  });

  it('keeps a value given on the command line', () => {
    expect(tuneYoungGeneration('13.6.233.17-node.37', [`${FLAG}=8`])).toBe('set on the command line');
  });

  it('sets the flag on the V8 that has it, and this Node accepts it', () => {
    const major = Number(process.versions.v8.split('.')[0]);
    const result = tuneYoungGeneration();
    if (major >= 12) expect(result).toBe(`${FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`);
    else expect(result).toMatch(/^not available in V8 /);
    // The flag exists exactly where the function sets it: `node --v8-options` lists it from V8 12 (Node 22) on.
    const listed = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }).includes(`${FLAG} `);
    expect(listed).toBe(major >= 12);
  });
});

describe("tuneThreadHeap (Node 20: a floor for the SMTP thread's heap)", () => {
  it('is not needed on a V8 that frees dead reads early (V8 12+)', () => {
    expect(tuneThreadHeap('13.6.233.17-node.37', [])).toBe('not needed on V8 13.6.233.17-node.37');
  });

  it('keeps a value given on the command line', () => {
    expect(tuneThreadHeap('11.3.244.8-node.33', [`${INITIAL_OLD_SPACE_FLAG}=64`])).toBe('set on the command line');
  });

  it('on V8 11 sets the flag, which this Node accepts, and a thread started after it runs', () => {
    // In a child process: the flag is process-wide and would reach this test runner's own threads.
    const module = fileURLToPath(new URL('../../../src/shared/heap-tuning.ts', import.meta.url));
    const script = `
      const { tuneThreadHeap } = await import(${JSON.stringify(module)});
      const { Worker } = await import('node:worker_threads');
      const said = tuneThreadHeap('11.3.244.8-node.33', []);
      const worker = new Worker("import('node:worker_threads').then((t) => t.parentPort.postMessage(Buffer.alloc(65536).length))", { eval: true });
      worker.once('message', (length) => { console.log(JSON.stringify({ said, length })); process.exit(0); });
      worker.once('error', (err) => { console.error(err); process.exit(1); });`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(out)).toEqual({ said: `${INITIAL_OLD_SPACE_FLAG}=${THREAD_INITIAL_OLD_SPACE_MB} for the SMTP thread`, length: 65536 });
    expect(execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })).toContain(`${INITIAL_OLD_SPACE_FLAG} `);
  });
});
