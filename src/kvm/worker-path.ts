/**
 * Where the compiled worker entry points live. From the compiled package (dist/src/kvm/*.js) they
 * are siblings under dist/workers; when this module runs from TypeScript sources (tests), the
 * workers still come from dist/ (built by `npm test`'s pretest), because Node 20 cannot start a
 * .ts worker entry.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Repository/package root: the folder holding package.json. */
export const PACKAGE_ROOT = (() => {
  let d = here;
  for (let i = 0; i < 6; i++) {
    if (existsSync(resolve(d, 'package.json'))) return d;
    d = dirname(d);
  }
  throw new Error(`vgic-emu: cannot find package root from ${here}`);
})();

/** Absolute path of dist/<rel> (rel like 'workers/vcpu.js'). */
export function distPath(rel: string): string {
  const p = resolve(PACKAGE_ROOT, 'dist', rel);
  if (!existsSync(p)) throw new Error(`vgic-emu: ${p} is missing; run \`npm run build\` first`);
  return p;
}
