/**
 * vgic-emu/scenario, as the README's "Writing your own scenario" uses it: every name the example
 * imports is exported by the subpath (resolved through package.json "exports", as a user's module
 * resolves it), every type its JSDoc names is declared there, and the helpers are the ones the
 * built-in scenarios use (one module instance: a scenario loaded by path shares the runner's).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readmeBlocks } from '../readme/readme-blocks.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const example = readmeBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8')).find((b) => b.mode === 'file' && b.name === 'my-scenario.mjs');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };

describe('vgic-emu/scenario', () => {
  it('is in package.json exports, with types', () => {
    expect(pkg.exports['./scenario']).toEqual({ types: './dist/src/scenario/index.d.ts', default: './dist/src/scenario/index.js' });
  });

  it("exports every value and type the README's example scenario uses", async () => {
    expect(example, 'the README has the my-scenario.mjs block').toBeDefined();
    const code = example!.code;
    const values = [...code.matchAll(/import \{([^}]+)\} from 'vgic-emu\/scenario'/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
    const types = [...new Set([...code.matchAll(/import\('vgic-emu\/scenario'\)\.(\w+)/g)].map((m) => m[1]!))];
    expect(values).toEqual(expect.arrayContaining(['SRAM', 'guestPrologue', 'spiStormDriver', 'checkSpiAccounting']));
    expect(types).toEqual(expect.arrayContaining(['ScenarioInfo', 'GuestCpu', 'DriverCtx', 'ScenarioArgs']));
    // Resolved as the package resolves for its users (self-reference through "exports").
    const req = createRequire(join(ROOT, 'package.json'));
    const entry = req.resolve('vgic-emu/scenario');
    expect(entry).toBe(join(ROOT, 'dist/src/scenario/index.js'));
    const mod = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
    for (const v of values) expect(mod[v], `vgic-emu/scenario exports ${v}`).toBeDefined();
    const dts = readFileSync(join(ROOT, 'dist/src/scenario/index.d.ts'), 'utf8');
    for (const t of types) expect(dts, `vgic-emu/scenario declares ${t}`).toMatch(new RegExp(`\\b${t}\\b`));
  });

  it('hands out the same helpers the built-in scenarios use', async () => {
    const sub = (await import(pathToFileURL(join(ROOT, 'dist/src/scenario/index.js')).href)) as Record<string, unknown>;
    const common = (await import(pathToFileURL(join(ROOT, 'dist/src/stress/scenarios/common.js')).href)) as Record<string, unknown>;
    for (const k of ['guestPrologue', 'idleForever', 'spinForever', 'waitReady', 'checkSpiAccounting', 'spiStormDriver', 'wireResampleIrqfds', 'resampleIrqfds']) {
      expect(sub[k], k).toBe(common[k]);
    }
    expect((sub.SRAM as { SCRATCH: number }).SCRATCH).toBeGreaterThan(0);
  });
});
