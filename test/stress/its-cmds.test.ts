/**
 * its-cmds: every ITS command run by the guest on events a device keeps firing MSIs at (GICv3).
 * The correct model gives zero findings in both modes; the accounting is exact about rounds and
 * the final MSIs and never allows more LPI acknowledgements than MSIs and INTs.
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressMode } from '../../src/stress/runner.js';
import { SRAM } from '../../src/stress/ram.js';
import { check, info } from '../../src/stress/scenarios/its-cmds.js';

describe('its-cmds', () => {
  it.each(['controlled', 'chaos'] as StressMode[])('%s mode: no findings', async (mode) => {
    for (const seed of [1, 0x5eed, 0xc0de]) {
      const r = await runStress({ scenario: 'its-cmds', mode, seed, timeoutMs: 30_000, watchdogMs: 2_000 });
      expect(r.gic).toBe('v3');
      expect(r.findings.map((f) => `${f.kind}: ${f.message}`), `${mode} seed ${seed}`).toEqual([]);
    }
  });

  it('its accounting', () => {
    const a = { iterations: info.iterations!, spis: [], seed: 1 };
    const ram = new Int32Array(new SharedArrayBuffer(1 << 16));
    const W = SRAM.SCRATCH;
    Atomics.store(ram, W + 2, info.iterations!);
    for (let ev = 0; ev < 4; ev++) Atomics.store(ram, W + 8 + ev, 1);
    Atomics.store(ram, W, 10);
    Atomics.store(ram, W + 1, 12);
    expect(check(ram, a)).toEqual([]);
    Atomics.store(ram, W, 13);
    Atomics.store(ram, W + 2, 29);
    Atomics.store(ram, W + 8 + 2, 0);
    expect(check(ram, a)).toEqual([
      `29 of ${info.iterations} command rounds done`,
      '13 LPI acknowledgements for 12 MSIs and INTs (duplicate delivery)',
      'event 2: its final MSI was not acknowledged',
    ]);
  });
});
