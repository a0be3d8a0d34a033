/** Stable hex digests of a schedule and of a history, for "same seed, same run" checks. */
import { fmix32 } from '../sched/hash.js';
import type { Switch } from '../sched/controlled.js';
import type { HistoryEvent } from '../record/events.js';

function digest(words: Iterable<number>): string {
  let a = 0x811c9dc5;
  let b = 0x1b873593;
  for (const w of words) {
    a = fmix32((a ^ (w | 0)) >>> 0);
    b = fmix32((b + a + (w | 0)) >>> 0);
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

export function scheduleHash(sw: readonly Switch[]): string {
  return digest((function* () {
    for (const s of sw) yield* [s.step, s.to, s.forced ? 1 : 0];
  })());
}

export function historyHash(ev: readonly HistoryEvent[]): string {
  return digest((function* () {
    for (const e of ev) yield* [e.seq, e.kind, e.intid, e.vcpu, e.a, e.b];
  })());
}
