/**
 * Random walk: at each schedule point, switch with a small probability (a larger one at the points
 * that open race windows: publications, kicks, wakes, blocking, RCU read sides), to a seeded random
 * enabled thread. Also serves every yield under every strategy but replay: a seeded random other
 * thread, so two threads polling each other cannot starve a third (PCT would keep picking the
 * same pair).
 */
import { decide } from '../hash.js';
import { SchedPoint } from '../../sync/sched.js';
import type { Decision, Strategy } from './strategy.js';

export const randomWalk: Strategy = {
  name: 'random',
  next(d: Decision): number {
    const s = d.s;
    const seed = s[d.o.seed]!;
    const hot = (d.kind >= SchedPoint.PublishMode && d.kind <= SchedPoint.Block) || d.kind === SchedPoint.RcuRead;
    const p = hot ? s[d.o.pHotMicro]! : s[d.o.pMicro]!;
    if (d.curCan && !d.excludeCur && decide(seed, d.step, 1) >= p * 4294.967296) return d.cur;
    let k = decide(seed, d.step, 2) % d.count;
    let next = d.lowest;
    for (let t = 0; t < d.n; t++) if (d.candidate(t) && k-- === 0) next = t;
    return next;
  },
};
