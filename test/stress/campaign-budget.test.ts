/**
 * A campaign over several scenarios spreads its runs by what each finds and covers (issue 10): a
 * deterministic bandit, allocated per epoch from earlier results in run-index order, so --jobs
 * does not change which scenario a run index gets.
 */
import { describe, expect, it } from 'vitest';
import { Budget, EPOCH_RUNS } from '../../src/stress/campaign-budget.js';
import { runCampaign } from '../../src/stress/campaign.js';
import type { Finding } from '../../src/stress/findings.js';

describe('budget spreading', () => {
  it('the first epoch tries every scenario; then runs go to the one that keeps covering new transitions', () => {
    const b = new Budget(['rich', 'flat', 'finder']);
    const first = b.allocate(EPOCH_RUNS);
    expect(first.slice(0, 3)).toEqual([0, 1, 2]);
    let fresh = 1000;
    const none: Finding[] = [];
    for (let epoch = 0; epoch < 6; epoch++) {
      const alloc = epoch === 0 ? first : b.allocate(EPOCH_RUNS);
      for (const s of alloc) {
        // 'rich' shows new transitions every run; 'flat' always the same; 'finder' the same, plus one finding once.
        const signature = s === 0 ? [fresh++, fresh++, fresh++, fresh++] : [1, 2, 3];
        b.add(s, { signature, findings: s === 2 ? [{ kind: 'lost', message: 'x' }] : none });
      }
    }
    const [rich, flat, finder] = b.summary();
    expect(rich!.runs).toBeGreaterThan(flat!.runs);
    expect(rich!.runs).toBeGreaterThan(finder!.runs);
    expect(finder!.findings).toEqual(['lost']);
    // Nobody is starved: exploration keeps giving the others runs.
    expect(flat!.runs).toBeGreaterThan(1);
  });

  it('is deterministic: the same results give the same allocation', () => {
    const mk = (): number[] => {
      const b = new Budget(['a', 'b']);
      const out: number[] = [];
      for (let e = 0; e < 4; e++) {
        const alloc = b.allocate(EPOCH_RUNS);
        out.push(...alloc);
        alloc.forEach((s, i) => b.add(s, { signature: [e * 100 + i * (s + 1)], findings: [] }));
      }
      return out;
    };
    expect(mk()).toEqual(mk());
  });

  it('a campaign over several scenarios gives each run index the same scenario with --jobs 1 and 2', async () => {
    const o = { base: { scenario: 'spi-storm', mode: 'controlled' as const, strategy: 'mix' as const, iterations: 10, timeoutMs: 20_000 }, seed: 9, runs: EPOCH_RUNS + 2, scenarios: ['spi-storm', 'early-inject', 'retarget'] };
    const one = await runCampaign(o);
    const two = await runCampaign({ ...o, jobs: 2 });
    expect(one.failures).toEqual([]);
    expect(two.results.map((r) => [r.index, r.scenario, r.seed])).toEqual(one.results.map((r) => [r.index, r.scenario, r.seed]));
    expect(new Set(one.results.map((r) => r.scenario)).size).toBe(3);
    expect(one.budget!.reduce((a, b) => a + b.runs, 0)).toBe(o.runs);
  }, 180_000);
});
