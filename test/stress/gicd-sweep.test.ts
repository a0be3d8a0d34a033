/**
 * gicd-sweep(-v2): the distributor's registers against a reference model while SPIs storm. The
 * correct model reads back what the reference says on both GIC versions in both modes; two
 * mutants of the register tables that every other scenario lets through are killed by it, each
 * applied to a private copy of the compiled package (bench/mutants): private ITARGETSR bytes made
 * writable on GICv2, and a GICD_TYPER2 that reads 1 on GICv3.
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
import { SRAM } from '../../src/stress/ram.js';
import { check, info } from '../../src/stress/scenarios/gicd-sweep.js';

const SEEDS = [1, 0x5eed];
const cases = (['gicd-sweep', 'gicd-sweep-v2'] as const).flatMap((s) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [s, mode] as const));
const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-sweep-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('gicd-sweep', () => {
  it.each(cases)('%s, %s mode: no findings', async (scenario, mode) => {
    for (const seed of SEEDS) {
      const r = await runStress({ scenario, mode, seed, iterations: 30, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${scenario} ${mode} seed ${seed}`).toEqual([]);
      expect(r.events).toBeGreaterThan(0);
    }
  });

  it.each([
    ['src/vgic/mmio/gicd-v2.ts', 'drop-recheck', /intid < VGIC_NR_PRIVATE_IRQS/, 'gicd-sweep-v2'],
    ['src/vgic/mmio/gicd-v3.ts', 'return-value', /^return 0 -> return 1$/, 'gicd-sweep'],
  ] as const)('kills a mutant of %s (%s) on %s', async (file, operator, what, scenario) => {
    const sites = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), file, [operator]).filter((m) => what.test(m.description));
    expect(sites.length).toBeGreaterThan(0);
    // GICD_TYPER2 is the first `return 0` of the v3 misc read.
    const m = { ...sites.sort((a, b) => a.line - b.line)[0]!, id: 'm0' };
    const o: RunOptions = { root: PACKAGE_ROOT, workDir, jobs: 1, probe: { scenarios: [scenario], modes: ['controlled'], runs: { controlled: 1 }, seed: 1, runTimeoutMs: 20_000 }, timeoutMs: 60_000 };
    const r = await runMutant(o, makeSlot(PACKAGE_ROOT, join(workDir, scenario)), m);
    expect({ status: r?.status, detector: r?.detector }).toEqual({ status: 'killed', detector: 'accounting' });
  });

  it('its accounting names the first register that differed', () => {
    const a = { iterations: info.iterations!, spis: [32, 33, 34, 35], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const W = SRAM.SCRATCH;
    Atomics.store(ram, SRAM.READY, 2);
    Atomics.store(ram, W, 1);
    Atomics.store(ram, W + 1, 1);
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, W + 1, 0);
    Atomics.store(ram, W + 16, 3); // ERRORS[0]
    Atomics.store(ram, W + 32, 5); // FIRST[0]: ITARGETSR, INTID 31, expected 0x1, read 0
    Atomics.store(ram, W + 33, 31);
    Atomics.store(ram, W + 34, 1);
    expect(check(ram, a)).toEqual([
      'vCPU 0: 3 register read-backs differed from the reference; the first: ITARGETSR INTID 31 read 0x0, expected 0x1',
      'vCPU 1: did not finish its 300 register accesses',
    ]);
  });
});
