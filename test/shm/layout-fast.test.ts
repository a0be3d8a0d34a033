/**
 * Every layout's offset table is read on the hot paths (m[b + IRQ.off.pendingLatch]); in V8
 * dictionary mode each such read is a hash lookup, which once made the host side of an interrupt
 * twice as slow (layout.ts). V8 says which mode an object is in only through a natives-syntax
 * intrinsic, so a child Node process with --allow-natives-syntax looks at every exported layout
 * of the compiled module (dist/, built by `pretest`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const LAYOUTS = new URL('../../dist/src/shm/layouts.js', import.meta.url);
const HOST = new URL('../../dist/src/vgic/host.js', import.meta.url);

const probe = `
const L = await import(${JSON.stringify(LAYOUTS.href)});
const H = await import(${JSON.stringify(HOST.href)});
const out = {};
for (const [k, v] of Object.entries(L)) if (v && typeof v === 'object' && v.off) out[k] = { fields: Object.keys(v.off).length, fast: %HasFastProperties(v.off) };
out.D = { fields: Object.keys(H.D).length, fast: %HasFastProperties(H.D) };
process.stdout.write(JSON.stringify(out));
`;

it('every layout offset table (and D) has fast properties, however many fields it has', () => {
  if (!existsSync(fileURLToPath(LAYOUTS))) throw new Error(`${fileURLToPath(LAYOUTS)} is missing: run \`npm run build\``);
  const res = JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 30_000 })) as Record<string, { fields: number; fast: boolean }>;
  // The big ones are the point: V8 leaves an object built by keyed stores in dictionary mode past ~12.
  for (const k of ['IRQ', 'VCPU', 'DIST', 'ITS', 'D']) expect(res[k]?.fields, k).toBeGreaterThan(16);
  const slow = Object.entries(res).filter(([, v]) => !v.fast).map(([k, v]) => `${k} (${v.fields} fields)`);
  expect(slow).toEqual([]);
});
