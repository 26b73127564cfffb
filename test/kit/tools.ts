/**
 * Tests that need an outside tool (podman, promtool, chromium, strace, systemd-analyze...) ask here
 * whether it is installed. Missing, the test is skipped with the reason in its name and on stderr;
 * with SCANRELAY_REQUIRE_ALL=1 (set by .ci/run) a missing tool is a failure instead, so CI cannot
 * pass by skipping.
 *
 *   const promtool = outsideTool('promtool', 'apt-get install --no-install-recommends prometheus');
 *   describeWithTool(promtool, 'promtool', () => { it(...) });
 */
import { spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';

export interface OutsideTool {
  command: string;
  available: boolean;
  /** Why it is not available, and how to install it. */
  reason?: string;
}

export const REQUIRE_ALL = process.env.SCANRELAY_REQUIRE_ALL === '1';

/** Looks the command up on PATH (or takes an absolute path). */
export function outsideTool(command: string, install: string): OutsideTool {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return { command: found.stdout.trim(), available: true };
  return { command, available: false, reason: `${command} is not installed (${install})` };
}

/** describe() when the tool is there; otherwise a skipped block saying why, or a failing test under SCANRELAY_REQUIRE_ALL=1. */
export function describeWithTool(tool: OutsideTool, name: string, body: () => void): void {
  if (tool.available) {
    describe(name, body);
    return;
  }
  if (REQUIRE_ALL) {
    describe(name, () => {
      it(`needs ${tool.command}`, () => {
        throw new Error(`${tool.reason}; SCANRELAY_REQUIRE_ALL=1 makes a missing tool a failure`);
      });
    });
    return;
  }
  process.stderr.write(`skipped "${name}": ${tool.reason}\n`);
  describe.skip(`${name} (skipped: ${tool.reason})`, body);
}
