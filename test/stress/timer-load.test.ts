/**
 * timer: rounds with an MMIO exit to the VMM after the timer fired and was disabled (KVM_RUN
 * re-entered, the timer state loaded afresh). The mutant of kvm_timer_should_fire that fires a
 * disabled timer whose deadline passed ('&&' -> '||'), which every other scenario lets through,
 * is killed on a private copy of the compiled package (bench/mutants): the guest counts more
 * timer interrupts than rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSlot } from '../../bench/mutants/apply.js';
import { runMutant, type RunOptions } from '../../bench/mutants/runner.js';
import { enumerateMutants } from '../../bench/mutants/sampler.js';
import { PACKAGE_ROOT } from '../../src/kvm/worker-path.js';

const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-timer-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('timer', () => {
  it('kills the mutant that fires a disabled timer once its deadline passed', async () => {
    const [m] = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), 'src/kvm/timer/arch-timer.ts', ['logic-swap']).filter((x) => x.source.includes('return canFire(h.m, c) && physCounter(h)'));
    expect(m).toBeDefined();
    const o: RunOptions = { root: PACKAGE_ROOT, workDir, jobs: 1, probe: { scenarios: ['timer'], modes: ['controlled'], runs: { controlled: 1 }, seed: 1, runTimeoutMs: 20_000 }, timeoutMs: 60_000 };
    const r = await runMutant(o, makeSlot(PACKAGE_ROOT, join(workDir, 'fire')), { ...m!, id: 'm0' });
    expect({ status: r?.status, detector: r?.detector }).toEqual({ status: 'killed', detector: 'accounting' });
  });
});
