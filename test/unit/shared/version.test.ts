/** The release an admin pins: package.json's version, printed by `scanrelay --version`. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SCANRELAY_VERSION } from '../../../src/shared/version.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

describe('scanrelay --version', () => {
  it('is the version in package.json', () => {
    expect(SCANRELAY_VERSION).toBe(pkg.version);
    expect(SCANRELAY_VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('prints it from the CLI entry and exits 0', () => {
    const tsx = new URL('../../../node_modules/.bin/tsx', import.meta.url).pathname;
    const cli = new URL('../../../src/cli/index.ts', import.meta.url).pathname;
    const result = spawnSync(tsx, [cli, '--version'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.stdout).toBe(`scanrelay ${pkg.version}\n`);
    expect(result.status).toBe(0);
  });
});
