/**
 * The package version the daemons print with `--version`. A bundle built by scripts/build.mjs has
 * it written in (esbuild `define`), since a single executable has no package.json beside it; run
 * from source, it is read from the repository's package.json.
 */
import { readFileSync } from 'node:fs';

declare const SNAP_PACKAGE_VERSION: string | undefined;

function fromPackageJson(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

export const VERSION: string = typeof SNAP_PACKAGE_VERSION === 'string' ? SNAP_PACKAGE_VERSION : fromPackageJson();
