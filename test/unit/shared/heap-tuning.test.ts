import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  HEAP_GROWING_FLAG,
  INITIAL_OLD_SPACE_FLAG,
  MAGLEV_OFF_FLAG,
  MAIN_HEAP_GROWING_PERCENT,
  SCAVENGE_BUFFERS_NEW_SPACE_MB,
  SCAVENGER_FLAG as FLAG,
  THREAD_INITIAL_OLD_SPACE_MB,
  tuneCompilers,
  tuneHeapGrowth,
  tuneThreadHeap,
  tuneYoungGeneration,
  v8Major,
} from '../../../src/shared/heap-tuning.js';

const MODULE = fileURLToPath(new URL('../../../src/shared/heap-tuning.ts', import.meta.url));
const THIS_V8 = v8Major(process.versions.v8);

/** Runs an ES module script in a child process (the flags are process-wide), heap-tuning.ts importable as MODULE; its stdout. */
function runChild(script: string, nodeFlags: string[] = []): string {
  return execFileSync(process.execPath, [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

describe('tuneYoungGeneration (when V8 scavenges to free dead ArrayBuffers)', () => {
  it('leaves a V8 without the flag alone (Node 20 ships V8 11.3)', () => {
    expect(tuneYoungGeneration('11.3.244.8-node.33', [])).toBe('not available in V8 11.3.244.8-node.33');
  });

  it('keeps a value given on the command line', () => {
    expect(tuneYoungGeneration('13.6.233.17-node.37', [`${FLAG}=8`])).toBe('set on the command line');
  });

  it('sets the flag on the V8 that has it, and this Node accepts it', () => {
    const major = THIS_V8;
    const result = tuneYoungGeneration();
    if (major >= 12) expect(result).toBe(`${FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`);
    else expect(result).toMatch(/^not available in V8 /);
    // The flag exists exactly where the function sets it: `node --v8-options` lists it from V8 12 (Node 22) on.
    const listed = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }).includes(`${FLAG} `);
    expect(listed).toBe(major >= 12);
  });
});

describe.each([
  { remedy: tuneThreadHeap, flag: INITIAL_OLD_SPACE_FLAG },
  { remedy: tuneHeapGrowth, flag: HEAP_GROWING_FLAG },
])("Node 20's remedy $remedy.name", ({ remedy, flag }) => {
  it('is not needed on a V8 that frees dead reads early (V8 12+)', () => {
    expect(remedy('13.6.233.17-node.37', [])).toBe('not needed on V8 13.6.233.17-node.37');
  });

  it('keeps a value given on the command line', () => {
    expect(remedy('11.3.244.8-node.33', [`${flag}=64`])).toBe('set on the command line');
  });
});

describe("tuneThreadHeap (Node 20: a floor for the SMTP thread's heap)", () => {
  it('on V8 11 sets the flag, which this Node accepts, and a thread started after it runs', () => {
    // In a child process: the flag is process-wide and would reach this test runner's own threads.
    const script = `
      const { tuneThreadHeap } = await import(${JSON.stringify(MODULE)});
      const { Worker } = await import('node:worker_threads');
      const said = tuneThreadHeap('11.3.244.8-node.33', []);
      const worker = new Worker("import('node:worker_threads').then((t) => t.parentPort.postMessage(Buffer.alloc(65536).length))", { eval: true });
      worker.once('message', (length) => { console.log(JSON.stringify({ said, length })); process.exit(0); });
      worker.once('error', (err) => { console.error(err); process.exit(1); });`;
    expect(JSON.parse(runChild(script))).toEqual({ said: `${INITIAL_OLD_SPACE_FLAG}=${THREAD_INITIAL_OLD_SPACE_MB} for the SMTP thread`, length: 65536 });
    expect(execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })).toContain(`${INITIAL_OLD_SPACE_FLAG} `);
  });
});

describe("tuneHeapGrowth (Node 20: when the main thread's heap is collected in full)", () => {
  it('set at run time, it reaches the heap that is already running: fewer full collections of the same work', () => {
    // Two child processes with production's V8 flags, the same work: 60 MB that stays, then 400 MB that lives
    // long enough to reach the old generation and dies there. Only the second one is tuned, after its start.
    const run = (tune: boolean) => {
      const script = `
        const { tuneHeapGrowth } = await import(${JSON.stringify(MODULE)});
        const { PerformanceObserver, constants } = await import('node:perf_hooks');
        const said = ${tune} ? tuneHeapGrowth('11.3.244.8-node.33', []) : 'untouched';
        let full = 0;
        const observer = new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++;
        });
        observer.observe({ entryTypes: ['gc'] });
        const live = [];
        for (let i = 0; i < 120 * 1024; i++) live.push(new Array(126).fill(i));
        const before = full;
        const ring = new Array(4096);
        for (let i = 0; i < 800 * 1024; i++) ring[i % 4096] = new Array(126).fill(i);
        setTimeout(() => { observer.disconnect(); console.log(JSON.stringify({ said, full: full - before, live: live.length })); }, 50);`;
      return JSON.parse(runChild(script, ['--max-semi-space-size=1', '--max-old-space-size=512'])) as { said: string; full: number };
    };
    const stock = run(false);
    const tuned = run(true);
    expect(tuned.said).toBe(`${HEAP_GROWING_FLAG}=${MAIN_HEAP_GROWING_PERCENT}`);
    // Measured: 14-15 full collections stock, 8-9 tuned on Node 20's V8 11 (the one it is set on); 6 and 5 on
    // Node 24's V8 13, whose controller sizes the limit otherwise (and where tuneHeapGrowth sets nothing).
    expect(stock.full).toBeGreaterThan(0);
    const onV8Eleven = THIS_V8 < 12;
    expect(tuned.full).toBeLessThanOrEqual(onV8Eleven ? Math.floor(stock.full * 0.75) : stock.full);
  }, 60_000);
});

describe('tuneCompilers (Maglev off where it is on)', () => {
  it('leaves V8 11 alone, whose Maglev is off (Node 20)', () => {
    expect(tuneCompilers('11.3.244.8-node.33', [])).toBe('Maglev is off in V8 11.3.244.8-node.33');
  });

  it('keeps a choice made on the command line, either way', () => {
    expect(tuneCompilers('13.6.233.17-node.37', ['--maglev'])).toBe('set on the command line');
    expect(tuneCompilers('13.6.233.17-node.37', [MAGLEV_OFF_FLAG])).toBe('set on the command line');
  });

  it('set at start, no function is compiled by Maglev afterwards (V8 traces which compiler takes a hot function)', () => {
    // Child processes: the flag is process-wide. The same hot function, with and without the setting.
    const run = (tune: boolean) => {
      const script = `
        const { tuneCompilers } = await import(${JSON.stringify(MODULE)});
        const v8 = (await import('node:v8')).default;
        const said = ${tune} ? tuneCompilers() : 'untouched';
        v8.setFlagsFromString('--trace-opt');
        function hot(values) { let sum = 0; for (let i = 0; i < values.length; i++) sum += values[i] * 2; return sum; }
        const values = Array.from({ length: 1000 }, (_, i) => i);
        let total = 0;
        for (let i = 0; i < 20000; i++) total += hot(values);
        console.log(JSON.stringify({ said, total }));`;
      const out = runChild(script);
      // V8's trace lines come from its compiler threads too, before and after this line: find it by its start.
      const lines = out.split('\n');
      const result = JSON.parse(lines.find((line) => line.startsWith('{"said"')) ?? '{}') as { said: string; total: number };
      return { ...result, maglevCompiles: lines.filter((line) => line.includes('(target MAGLEV)')).length };
    };
    const stock = run(false);
    const tuned = run(true);
    const maglevByDefault = THIS_V8 >= 12;
    expect(tuned.said).toBe(maglevByDefault ? MAGLEV_OFF_FLAG : `Maglev is off in V8 ${process.versions.v8}`);
    expect(tuned.total).toBe(stock.total);
    // Measured: Node 24 compiles `hot` (and the loop around it) with Maglev unless told not to; Node 20 never does.
    if (maglevByDefault) expect(stock.maglevCompiles).toBeGreaterThan(0);
    expect(tuned.maglevCompiles).toBe(0);
  }, 60_000);
});
