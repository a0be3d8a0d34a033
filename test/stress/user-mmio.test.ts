/**
 * user-mmio: KVM_EXIT_MMIO round trips (below and above 4 GiB, widths 1, 2, 4) while SPIs are in
 * flight. The correct model reads back what was written on both GIC versions in both modes; the
 * default handler's mutant that forgets an address's high word (every other scenario stays below
 * 4 GiB) is killed, applied to a private copy of the compiled package (bench/mutants).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSlot } from '../../bench/mutants/apply.js';
import { runMutant, type RunOptions } from '../../bench/mutants/runner.js';
import { enumerateMutants } from '../../bench/mutants/sampler.js';
import { PACKAGE_ROOT } from '../../src/kvm/worker-path.js';
import { runStress, type StressMode } from '../../src/stress/runner.js';

const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-ummio-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));
const cases = (['v2', 'v3'] as const).flatMap((gic) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [gic, mode] as const));

describe('user-mmio', () => {
  it.each(cases)('GIC%s, %s mode: no findings', async (gic, mode) => {
    for (const seed of [1, 0x5eed]) {
      const r = await runStress({ scenario: 'user-mmio', mode, gic, seed, iterations: 40, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${gic} ${mode} seed ${seed}`).toEqual([]);
    }
  });

  it('kills the default handler mutant that drops an address high word', async () => {
    const [m] = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), 'src/kvm/user-mmio.ts', ['drop-store']).filter((x) => x.description === 'drop t[b + 2] = hi');
    expect(m).toBeDefined();
    const o: RunOptions = { root: PACKAGE_ROOT, workDir, jobs: 1, probe: { scenarios: ['user-mmio'], modes: ['controlled'], runs: { controlled: 1 }, seed: 1, runTimeoutMs: 20_000 }, timeoutMs: 60_000 };
    const r = await runMutant(o, makeSlot(PACKAGE_ROOT, join(workDir, 'hi')), { ...m!, id: 'm0' });
    expect({ status: r?.status, detector: r?.detector }).toEqual({ status: 'killed', detector: 'accounting' });
  });
});
