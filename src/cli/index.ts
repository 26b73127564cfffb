#!/usr/bin/env node
/** Entry of the `scanrelay` command (bin); the commands live in run.ts. */
import { runCli } from './run.js';
import { SCANRELAY_VERSION } from '../shared/version.js';

if (['--version', '-V'].includes(process.argv[2] ?? '')) {
  process.stdout.write(`scanrelay ${SCANRELAY_VERSION}\n`);
  process.exit(0);
}

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`scanrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
