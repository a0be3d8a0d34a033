/**
 * lr-overflow(-v2): more SPIs pending and active than LRs. The correct model gives zero findings
 * on both GIC versions in both modes; a queue without a kick is found (a burst that never drains, or
 * bounded delivery); an ap_list unlink that takes record 0 (vCPU 0's SGI 0) for
 * "no previous entry" (a mutant every other scenario lets through) breaks the list; the
 * accounting check names each error.
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
import { check, info } from '../../src/stress/scenarios/lr-overflow.js';

const SEEDS = [1, 0x5eed];
const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-lro-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));
const cases = (['lr-overflow', 'lr-overflow-v2'] as const).flatMap((s) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [s, mode] as const));

describe('lr-overflow', () => {
  it.each(cases)('%s, %s mode: no findings', async (scenario, mode) => {
    for (const seed of SEEDS) {
      const r = await runStress({ scenario, mode, seed, iterations: 12, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${scenario} ${mode} seed ${seed}`).toEqual([]);
      expect(r.events).toBeGreaterThan(0);
    }
  });

  // (noRequestRecheck is found too, e.g. `stress --scenario lr-overflow-v2 --strategy random --seed 1
  // --size 12 --bug noRequestRecheck`, but its first failing seed passed once in a loaded full
  // run: not pinned here until that is understood.)
  it.each([
    ['queueNoKick', 'lr-overflow-v2', [1, 2, 3, 4, 5, 6], ['lost-wakeup', 'stall', 'bounded-delivery', 'lost-kick']],
  ] as const)('finds %s on %s (controlled)', async (bug, scenario, seeds, kinds) => {
    let found: string[] = [];
    for (const seed of seeds) {
      if (found.length) break;
      const r = await runStress({ scenario, mode: 'controlled', strategy: 'random', seed, iterations: 12, timeoutMs: 30_000, bugs: [bug] });
      found = r.findings.map((f) => f.kind);
    }
    expect(found.some((k) => (kinds as readonly string[]).includes(k)), `found ${found.join(', ')}`).toBe(true);
  });

  it('kills the mutant of apListUnlink that treats record 0 as no previous entry', async () => {
    const [m] = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), 'src/vgic/queue.ts', ['cond-flip']).filter((x) => x.source.includes('if (prev >= 0)'));
    expect(m).toBeDefined();
    const o: RunOptions = { root: PACKAGE_ROOT, workDir, jobs: 1, probe: { scenarios: ['lr-overflow-v2', 'lr-overflow'], modes: ['controlled'], runs: { controlled: 4 }, seed: 1, runTimeoutMs: 20_000 }, timeoutMs: 90_000 };
    const r = await runMutant(o, makeSlot(PACKAGE_ROOT, join(workDir, 'unlink')), { ...m!, id: 'm0' });
    expect(r?.status).toBe('killed');
    expect(['invariant', 'stall']).toContain(r?.detector);
  });

  it('its accounting names each vCPU that did not finish or saw an error', () => {
    const a = { iterations: info.iterations!, spis: [32, 33, 34, 35, 36, 37, 38, 39], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const W = SRAM.SCRATCH;
    Atomics.store(ram, SRAM.READY, 2);
    Atomics.store(ram, W + 112, 1); // ROUNDS_DONE[0]
    Atomics.store(ram, W + 112 + 1, 1);
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, W + 112 + 1, 0);
    Atomics.store(ram, W + 64, 2); // ERRORS[0]
    Atomics.store(ram, W + 80, 4); // FIRST_ERROR[0]: E_ORDER
    expect(check(ram, a)).toEqual([
      'vCPU 0: 2 errors, the first: an SPI was taken while a higher-priority one of the burst was pending',
      `vCPU 1: did not finish its ${info.iterations! + 1} rounds`,
    ]);
  });
});
