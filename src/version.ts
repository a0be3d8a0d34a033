/** This package's version (package.json), for --version and for the files runs write. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached) return cached;
  // The nearest package.json above this module: dist/src/version.js and src/version.ts (under a
  // test runner) sit at different depths.
  for (let d = dirname(fileURLToPath(import.meta.url)); ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) return (cached = (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version);
    if (dirname(d) === d) return (cached = '0.0.0');
  }
}
