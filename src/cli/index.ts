#!/usr/bin/env node
/**
 * Entry of the `scanrelay` command (bin). src/cli is the admin's command line: run.ts dispatches, one file
 * per command group (devices, messages, upstreams, system, watch), client.ts speaks HTTP and server-sent
 * events to the admin API. It reaches the gateway only through that API (so it works remotely) and imports
 * no gateway part except the config loader, for check-config and to find the local API and token.
 */
import { runCli } from './run.js';
import { SCANRELAY_VERSION } from '../shared/version.js';

if (['--version', '-V'].includes(process.argv[2] ?? '')) {
  process.stdout.write(`scanrelay ${SCANRELAY_VERSION}\n`);
  process.exit(0);
}

// Ctrl-C ends `watch` quietly (exit 0); any other command still stops at once.
const stop = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stop.abort();
    setTimeout(() => process.exit(130), 1000).unref();
  });
}

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  signal: stop.signal,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`scanrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
