import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { SCAVENGE_BUFFERS_NEW_SPACE_MB, SCAVENGER_FLAG as FLAG, tuneYoungGeneration } from '../../../src/shared/heap-tuning.js';

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
