/**
 * Order replay: run a recorded total order of schedule points (a chaos run's, recorded with
 * `--record`: each point took a ticket, sched/chaos-record.ts). Each thread runs from one of its
 * points to the next, and passes its points in the recorded order: at every decision the
 * candidate whose next recorded point comes first runs. A chaos run's threads ran truly in
 * parallel between their points; the replay runs each stretch whole, just before the point that
 * ends it, which is one serialisation of what happened, and exactly the same one every time.
 *
 * A thread that must wait (a lock, a doorbell) where the chaos run's thread did not can force a
 * later point to be passed first: counted in SCHED.reordered. Where a thread's path differs from
 * the recorded one (an interrupt coalesced differently, so one exit more), it passes a point the
 * recording does not have: SCHED.orderLeft notes the first such step, and from there the thread
 * runs after every thread that still has recorded points. The replay is approximate from there,
 * but still deterministic: the same recording replays to the same history every time.
 */
import { MAX_SCHED_THREADS, SCHED } from '../sched-layout.js';
import type { Decision, Strategy } from './strategy.js';

/** Lay out `order` (thread per point) and each point's next point of the same thread at `base`. */
export function initOrder(s: Int32Array, base: number, order: readonly number[]): void {
  const o = SCHED.off;
  const n = order.length;
  s[o.orderCount] = n;
  s[o.orderBase] = base;
  const last = new Map<number, number>();
  for (let t = 0; t < MAX_SCHED_THREADS; t++) s[o.cursor + t] = -1;
  for (let i = n - 1; i >= 0; i--) {
    const t = order[i]!;
    s[base + i] = t;
    s[base + n + i] = last.get(t) ?? -1;
    last.set(t, i);
  }
  for (const [t, i] of last) if (t >= 0 && t < MAX_SCHED_THREADS) s[o.cursor + t] = i;
}

/** Words initOrder needs for `n` points. */
export function orderWords(n: number): number {
  return 2 * n;
}

/** Candidate with the earliest next recorded point; threads with none left come last (lowest slot). */
function earliest(d: Decision): number {
  const s = d.s;
  let best = -1;
  let bestAt = 0;
  for (let t = 0; t < d.n; t++) {
    if (!d.candidate(t)) continue;
    const at = s[d.o.cursor + t]!;
    if (at < 0) {
      if (best < 0) best = t;
      continue;
    }
    if (best < 0 || s[d.o.cursor + best]! < 0 || at < bestAt) {
      best = t;
      bestAt = at;
    }
  }
  return best;
}

export const order: Strategy = {
  name: 'order',
  next(d: Decision): number {
    const s = d.s;
    const o = d.o;
    if (d.stopped) return d.dflt;
    if (d.kind > 0 && d.cur >= 0 && !d.polling) {
      // cur passes a schedule point: its next recorded one.
      const at = s[o.cursor + d.cur]!;
      if (at < 0) {
        if (s[o.orderLeft] === 0) s[o.orderLeft] = d.step + 1;
      } else {
        for (let t = 0; t < d.n; t++) {
          const other = s[o.cursor + t]!;
          if (t !== d.cur && other >= 0 && other < at) {
            s[o.reordered]!++;
            break;
          }
        }
        s[o.cursor + d.cur] = s[s[o.orderBase]! + s[o.orderCount]! + at]!;
      }
    }
    const next = earliest(d);
    return next < 0 ? d.dflt : next;
  },
};
