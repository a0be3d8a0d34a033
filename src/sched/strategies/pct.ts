/**
 * PCT (Burckhardt et al., "A randomized scheduler with probabilistic guarantees of finding bugs"):
 * distinct random priorities, the highest-priority enabled thread runs; at d-1 random steps in
 * [1, k] the running thread is demoted below every other. A bug of depth d is found with
 * probability at least 1/(n k^(d-1)).
 */
import { decide } from '../hash.js';
import { MAX_PCT_DEPTH, MAX_SCHED_THREADS, SCHED } from '../sched-layout.js';
import type { Decision, Strategy } from './strategy.js';

/**
 * A time slice: PCT assumes every thread terminates, but a vCPU in an interrupt storm (a level line
 * held high by a lower-priority device thread) never would. The OS would preempt it; so do we, by
 * demoting a thread that ran PCT_SLICE steps in a row.
 */
const PCT_SLICE = 2_000;

/** Initial priorities (distinct, above every demotion) and the d-1 change points, from the seed. */
export function initPct(s: Int32Array, seed: number, depth: number, steps: number): void {
  const o = SCHED.off;
  s[o.pctDepth] = Math.min(MAX_PCT_DEPTH, Math.max(1, depth));
  s[o.pctSteps] = steps;
  for (let t = 0; t < MAX_SCHED_THREADS; t++) s[o.prio + t] = s[o.pctDepth]! + 1 + (decide(seed, -1 - t, 7) % 1_000_000);
  for (let i = 0; i < s[o.pctDepth]! - 1; i++) s[o.changeAt + i] = 1 + (decide(seed, -100 - i, 11) % s[o.pctSteps]!);
  s[o.lowPrio] = s[o.pctDepth]!;
}

export const pct: Strategy = {
  name: 'pct',
  next(d: Decision): number {
    const s = d.s;
    const o = d.o;
    for (let i = 0; i < s[o.pctDepth]! - 1; i++) {
      if (s[o.changeAt + i] === d.step && d.cur >= 0) s[o.prio + d.cur] = --s[o.lowPrio]!;
    }
    if (d.cur >= 0 && s[o.runLen]! > PCT_SLICE) s[o.prio + d.cur] = --s[o.lowPrio]!;
    let next = d.lowest;
    for (let t = 0; t < d.n; t++) if (d.candidate(t) && s[o.prio + t]! > s[o.prio + next]!) next = t;
    return next;
  },
};
