/**
 * Delta-debugging a failing controlled schedule (ddmin over its switches): a candidate keeps a
 * subset of the recorded switches; replay follows them and otherwise lets the running thread
 * continue (or, when it blocks, runs the lowest-numbered enabled thread). A candidate "still
 * fails" when its run reports a finding of the same kind as the original's first finding. The
 * result is the schedule the last failing replay actually recorded, so it replays exactly.
 */
import type { Switch } from '../sched/controlled.js';
import { runStress, type StressRunOptions, type StressRunReport } from './runner.js';

export interface MinimiseResult {
  report: StressRunReport;
  switches: Switch[];
  preemptionsBefore: number;
  preemptions: number;
  trials: number;
}

export interface MinimiseOptions {
  maxTrials?: number;
  maxMs?: number;
  onTrial?: (trial: number, size: number, failed: boolean) => void;
}

export async function minimiseSchedule(base: StressRunOptions, failing: StressRunReport, o: MinimiseOptions = {}): Promise<MinimiseResult> {
  if (!failing.schedule) throw new Error('only controlled-mode runs have a schedule to minimise');
  if (failing.ok) throw new Error('the run to minimise did not fail');
  const kind = failing.findings[0]!.kind;
  const maxTrials = o.maxTrials ?? 80;
  const deadline = performance.now() + (o.maxMs ?? 120_000);
  let trials = 0;
  let best = failing;
  let c: Switch[] = failing.schedule.switches;

  const fails = async (cand: Switch[]): Promise<StressRunReport | null> => {
    trials++;
    const r = await runStress({ ...base, mode: 'controlled', replay: cand, keepHistory: false });
    const bad = !r.ok && r.findings.some((f) => f.kind === kind);
    o.onTrial?.(trials, cand.length, bad);
    return bad ? r : null;
  };
  const budgetLeft = (): boolean => trials < maxTrials && performance.now() < deadline;

  // Cheap first tries: no preemptions at all; no switches at all.
  for (const cand of [c.filter((s) => s.forced), []]) {
    if (!budgetLeft() || cand.length >= c.length) continue;
    const r = await fails(cand);
    if (r) {
      best = r;
      c = cand;
      break;
    }
  }
  let n = 2;
  while (c.length >= 2 && budgetLeft()) {
    const size = Math.ceil(c.length / n);
    let reduced = false;
    for (let i = 0; i < c.length && budgetLeft(); i += size) {
      const complement = [...c.slice(0, i), ...c.slice(i + size)];
      const r = await fails(complement);
      if (r) {
        best = r;
        c = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= c.length) break;
      n = Math.min(n * 2, c.length);
    }
  }
  const sw = best.schedule!.switches;
  return { report: best, switches: sw, preemptionsBefore: failing.schedule.preemptions, preemptions: best.schedule!.preemptions, trials };
}
