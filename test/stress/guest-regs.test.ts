/**
 * guest-regs: the guest's GICD/GICR/GICC/ICC registers worked through while SPIs are in flight.
 * The correct model gives zero findings on both GIC versions and in both modes, and the
 * scenario's accounting is exact: every own SPI set pending is taken exactly once, every round
 * is done, no register read back differently.
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressMode } from '../../src/stress/runner.js';
import { SRAM } from '../../src/stress/ram.js';
import { check, info } from '../../src/stress/scenarios/guest-regs.js';

const SEEDS = [1, 0x5eed];
const cases = (['v2', 'v3'] as const).flatMap((gic) => (['controlled', 'chaos'] as StressMode[]).map((mode) => [gic, mode] as const));

describe('guest-regs', () => {
  it.each(cases)('GIC%s, %s mode: no findings', async (gic, mode) => {
    for (const seed of SEEDS) {
      const r = await runStress({ scenario: 'guest-regs', mode, gic, seed, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${gic} ${mode} seed ${seed}`).toEqual([]);
      expect(r.events).toBeGreaterThan(0);
    }
  });

  it('its accounting: own SPIs taken exactly as often as set pending, all rounds, no read-back error', () => {
    const a = { iterations: info.iterations!, spis: [32, 33, 34, 35], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const W = SRAM.SCRATCH;
    Atomics.store(ram, SRAM.READY, 2);
    for (const v of [0, 1]) {
      Atomics.store(ram, W + v, 6); // OWN_PENDS
      Atomics.store(ram, W + 64 + v, 6); // OWN_ACKS
      Atomics.store(ram, W + 128 + v, 6); // ROUNDS_DONE
    }
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, W + 64 + 1, 7);
    Atomics.store(ram, W + 128, 5);
    Atomics.store(ram, W + 192 + 1, 1);
    Atomics.store(ram, W + 256 + 1, 6);
    expect(check(ram, a)).toEqual([
      'vCPU 0: 5 of 6 register rounds done',
      'vCPU 1: own SPI 49 set pending 6 times, taken 7 times',
      'vCPU 1: 1 register read-backs differed (first: check 6)',
    ]);
  });
});
