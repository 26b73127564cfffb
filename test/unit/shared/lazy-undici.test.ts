import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const MODULE = new URL('../../../src/shared/lazy-undici.ts', import.meta.url).href;
const ROOT = new URL('../../..', import.meta.url).pathname;
/** Node 22.4+ has undici behind getters on node:http (WebSocket, CloseEvent, MessageEvent); Node 20 does not. */
const HAS_GETTERS = (() => {
  const http = (process as unknown as { getBuiltinModule?: (id: string) => Record<string, unknown> }).getBuiltinModule?.('node:http');
  return http !== undefined && typeof Object.getOwnPropertyDescriptor(http, 'WebSocket')?.get === 'function';
})();

/** A fresh process (undici is loaded at most once per process): what it printed as JSON. */
function inChild(script: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
}

const UNDICI_LOADED = `process.moduleLoadList.some((entry) => entry.includes('internal/deps/undici'))`;

describe('importHttpWithoutUndici (node:http as ESM without loading undici)', () => {
  it('as stock Node does it, the ESM import of node:http loads undici where the getters exist', () => {
    const seen = inChild(`await import('node:http'); console.log(JSON.stringify({ undici: ${UNDICI_LOADED} }));`);
    expect(seen.undici).toBe(HAS_GETTERS);
  });

  it('done first, smtp-server and nodemailer load without undici, and node:http still gives WebSocket on use', () => {
    const seen = inChild(`
      const { importHttpWithoutUndici } = await import(${JSON.stringify(MODULE)});
      const said = await importHttpWithoutUndici();
      await import('smtp-server');
      await import('nodemailer');
      const undici = ${UNDICI_LOADED};
      const { createRequire } = await import('node:module');
      const webSocket = typeof createRequire(import.meta.url)('node:http').WebSocket;
      console.log(JSON.stringify({ said, undici, webSocket, undiciAfterUse: ${UNDICI_LOADED} }));
    `);
    expect(seen.undici).toBe(false);
    if (HAS_GETTERS) {
      expect(seen).toMatchObject({
        said: expect.stringMatching(/without its undici getters \(WebSocket, CloseEvent, MessageEvent\)/),
        webSocket: 'function',
        undiciAfterUse: true,
      });
    } else {
      expect(seen).toMatchObject({ said: 'no undici getters in node:http', webSocket: 'undefined' });
    }
  });
});
