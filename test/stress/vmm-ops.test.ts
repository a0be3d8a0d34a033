/**
 * vmm-ops: the VMM's ioctls while interrupts are in flight (register groups saved and restored in
 * a pause, ITS save/restore into a second ITS, GSI routing changes, irqfds, level PPIs, timer
 * registers). The correct model gives zero findings on both GIC versions and in both modes, and
 * the scenario's accounting is exact: it fails when pauses, routing changes or ITS restores are
 * missing, or a register did not read back.
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressMode } from '../../src/stress/runner.js';
import { SRAM } from '../../src/stress/ram.js';
import { check, info } from '../../src/stress/scenarios/vmm-ops.js';

const SEEDS = [1, 0x5eed];
const cases = (['v2', 'v3'] as const).flatMap((gic) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [gic, mode] as const));

describe('vmm-ops', () => {
  it.each(cases)('GIC%s, %s mode: no findings', async (gic, mode) => {
    for (const seed of SEEDS) {
      const r = await runStress({ scenario: 'vmm-ops', mode, gic, seed, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${gic} ${mode} seed ${seed}`).toEqual([]);
      expect(r.events).toBeGreaterThan(0);
    }
  });

  it('its accounting counts pauses, routing changes, ITS restores and register mismatches exactly', () => {
    const a = { iterations: info.iterations!, spis: [32, 33, 34, 35], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const msgs = check(ram, a);
    expect(msgs).toContain('0 of 4 pauses done');
    expect(msgs).toContain('0 routing changes, expected 5');
    const w = SRAM.SCRATCH;
    Atomics.store(ram, w + 130, 4); // PAUSES
    Atomics.store(ram, w + 132, 5); // ROUTE_FLIPS
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, w + 133, 3); // ITS restores, one short
    Atomics.store(ram, w + 131, 2); // MISMATCHES
    Atomics.store(ram, w + 134, 8);
    expect(check(ram, a)).toEqual(['2 registers did not read back what was restored (first: register #7)', '3 ITS restores for 4 pauses']);
    Atomics.store(ram, w + 133, 4);
    Atomics.store(ram, w + 131, 0);
    Atomics.store(ram, w + 129, 3); // LPI_SENT with no acknowledgement
    Atomics.store(ram, SRAM.ACCEPTED + 33, 2); // an SPI injected, never acknowledged
    expect(check(ram, a)).toEqual(['SPI 33: 2 accepted injections, never acknowledged (lost)', '3 MSIs, no LPI acknowledged']);
  });
});
