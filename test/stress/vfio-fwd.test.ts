/**
 * vfio-fwd: a VFIO platform device wired as QEMU wires it (resampled level line, forwarded level
 * line, edge line) under an SPI storm. The correct model gives zero findings on both GIC
 * versions and in both modes (controlled: replayable, the same seed gives the same history); the
 * accounting is exact for the level lines.
 */
import { describe, expect, it } from 'vitest';
import type { StressMode, runStress as RunStress } from '../../src/stress/runner.js';
import { SRAM } from '../../src/stress/ram.js';
import { check } from '../../src/stress/scenarios/vfio-fwd.js';

// The runner from the build, like the scenario module: setup() hands the VM a VfioPlatformDevice
// of the build, which the VM's KVM_DEV_TYPE_VFIO device recognises only if it is of the same
// copy of the package (a VM from the TypeScript sources would call it "not a VFIO device").
const { runStress } = (await import(new URL('../../dist/src/stress/runner.js', import.meta.url).href)) as { runStress: typeof RunStress };

const cases = (['v2', 'v3'] as const).flatMap((gic) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [gic, mode] as const));

describe('vfio-fwd', () => {
  it.each(cases)('GIC%s, %s mode: no findings', async (gic, mode) => {
    for (const seed of [1, 0x5eed]) {
      const r = await runStress({ scenario: 'vfio-fwd', mode, gic, seed, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${gic} ${mode} seed ${seed}`).toEqual([]);
    }
  });

  it('controlled mode replays: the same seed gives the same history', async () => {
    const a = await runStress({ scenario: 'vfio-fwd', mode: 'controlled', seed: 7 });
    const b = await runStress({ scenario: 'vfio-fwd', mode: 'controlled', seed: 7 });
    expect(a.ok && b.ok).toBe(true);
    expect(b.historyHash).toBe(a.historyHash);
  });

  it('its accounting: each level event taken exactly once, the edge line at most once per event', () => {
    const a = { iterations: 60, spis: [32, 33], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const W = SRAM.SCRATCH;
    for (const i of [0, 1, 2]) Atomics.store(ram, W + i, 20);
    Atomics.store(ram, W + 8, 20);
    Atomics.store(ram, W + 9, 20);
    Atomics.store(ram, W + 10, 15);
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, W + 9, 19);
    Atomics.store(ram, W + 10, 21);
    expect(check(ram, a)).toEqual(['VFIO line 1 (level, forwarded): 20 events raised, 19 taken', 'VFIO line 2 (edge): 20 events raised, 21 taken']);
  });
});
