/**
 * Every documented bug seed is found in controlled mode on its own scenario with a small
 * configuration, with a finding of the kind the reintroduced race must produce; and the same
 * configuration without the seed is clean on the seed that failed (so this test can fail).
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressRunOptions, type StressRunReport } from '../../src/stress/runner.js';
import { BUG, BUG_INFO, type BugName } from '../../src/vgic/bugs.js';
import type { FindingKind } from '../../src/stress/findings.js';

const MAX_SEEDS = 10;
const SIZE = 40;

/**
 * What each race must look like. `must`: at least one finding of one of these kinds. The families
 * follow from the race: a lost kick leaves a request unserved in guest mode; a lost wake-up leaves
 * a deliverable IRQ under a sleeping vCPU; a lock inversion is lockdep's to report; a double link
 * breaks the ap_list structure; a dropped interrupt never reaches the guest.
 */
const EXPECT: Record<BugName, readonly FindingKind[]> = {
  // A lost kick: the bounded-delivery detector sees the queued interrupt wait without reaching an LR.
  noRequestRecheck: ['lost-kick', 'livelock', 'bounded-delivery'],
  queueNoRevalidate: ['invariant', 'duplicate'],
  noKickWhenQueued: ['lost', 'stall', 'lost-kick', 'livelock'],
  pruneSingleLock: ['lock-order', 'deadlock'],
  wfiNoRecheck: ['lost-wakeup'],
  apListInsideIrqLock: ['lock-order'],
  foldDropsEdgePending: ['lost', 'stall', 'accounting'],
  earlyInjectDropped: ['accounting', 'lost'],
  // A freed LPI made pending, or a refcount driven below zero: both are invariant failures.
  cacheNoRef: ['invariant'],
  lpiGetOnZero: ['invariant'],
  // A device's re-assertion lowered again: its work is never serviced.
  resampleLowerPerIrqfd: ['accounting', 'stall', 'level-not-represented'],
  // Every vCPU asleep on an expired timer: nothing can run (or the driver waits in vain).
  timerWfiUnbounded: ['deadlock', 'lost-wakeup', 'stall'],
  // No kick after queueing: the interrupt waits on the ap_list (bounded delivery), or for ever.
  queueNoKick: ['bounded-delivery', 'stall', 'lost-kick', 'livelock'],
  // The SPI stays active after its deactivation: its next edges are never acknowledged.
  haltIgnoresEntry: ['stall', 'lost'],
  // A store without its lock: the lockset checker (on in every stress run) reports it.
  unlockedPendingWrite: ['lockset'],
  // A doorbell rung without the notify its parked sleeper needs: the scheduler's lost wake-up.
  kickNoNotify: ['lost-wakeup'],
};

describe('the bug seeds', () => {
  it('BUG_INFO documents every seed, each with a built-in scenario', () => {
    expect(BUG_INFO.map((b) => b.name).sort()).toEqual(Object.keys(BUG).sort());
    expect(BUG_INFO.length).toBeGreaterThanOrEqual(8);
    for (const b of BUG_INFO) {
      expect(b.what.length, b.name).toBeGreaterThan(20);
      expect(b.history.length, b.name).toBeGreaterThan(20);
    }
  });

  it.each(BUG_INFO.map((b) => [b.name, b.scenario] as const))('%s is detected on %s in controlled mode, and the model without it is clean', async (name, scenario) => {
    const base: Omit<StressRunOptions, 'seed'> = { scenario, mode: 'controlled', iterations: SIZE, timeoutMs: 30_000 };
    let failed: StressRunReport | null = null;
    for (let seed = 1; seed <= MAX_SEEDS && !failed; seed++) {
      const r = await runStress({ ...base, seed, bugs: [name] });
      if (!r.ok) failed = r;
    }
    expect(failed, `${name} was not detected in ${MAX_SEEDS} seeds`).not.toBeNull();
    const kinds = failed!.findings.map((f) => f.kind);
    expect(kinds.some((k) => EXPECT[name].includes(k)), `${name} on seed ${failed!.seed} found ${kinds.join(', ')}; expected one of ${EXPECT[name].join(', ')}`).toBe(true);
    // Never a harness failure: the run ended by finding the race, not by running out of time.
    expect(kinds).not.toContain('timeout');

    const clean = await runStress({ ...base, seed: failed!.seed, bugs: [] });
    expect(clean.findings, `${scenario} seed ${failed!.seed} without ${name}`).toEqual([]);
  });
});
