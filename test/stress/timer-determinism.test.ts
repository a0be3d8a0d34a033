/**
 * The arch timer under the stress runner: the `timer` scenario is clean in controlled and chaos
 * mode, and in controlled mode virtual time is a function of the schedule, so the same seed
 * replays the identical schedule (the guests' counter-watching loops included) and history.
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressRunOptions, type StressRunReport } from '../../src/stress/runner.js';

async function run(o: Partial<StressRunOptions>): Promise<StressRunReport> {
  const r = await runStress({ scenario: 'timer', timeoutMs: 30_000, iterations: 8, ...o } as StressRunOptions);
  expect(r.findings, `${o.mode} seed ${o.seed}`).toEqual([]);
  return r;
}

describe('timer scenario', () => {
  it('controlled: the same seed twice gives the identical schedule and history', async () => {
    const a = await run({ mode: 'controlled', strategy: 'random', seed: 0x71e });
    const b = await run({ mode: 'controlled', strategy: 'random', seed: 0x71e });
    expect(a.schedule!.preemptions).toBeGreaterThan(0);
    expect(b.schedule!.steps).toBe(a.schedule!.steps);
    expect(b.schedule!.hash).toBe(a.schedule!.hash);
    expect(b.historyHash).toBe(a.historyHash);
    expect(b.events).toBe(a.events);
  });

  it('chaos: every vCPU is woken by its timer each round', async () => {
    await run({ mode: 'chaos', seed: 7 });
  });
});
