/**
 * The release this copy of scanrelay is: package.json's `version`, read once. package.json sits at the
 * application root both in the repository (src/shared/ -> ../../) and in the build (dist/src/shared/ ->
 * ../../../), so the first package.json named "scanrelay" above this file is the one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'scanrelay' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export const SCANRELAY_VERSION = readVersion();
