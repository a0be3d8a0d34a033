/**
 * The reference-model oracle: replay a live history (everything before QUIESCE, sorted by seq)
 * against the architectural model and return what it rejects.
 */
import { EventKind, guestIntid, type HistoryEvent } from '../../record/events.js';
import type { Violation } from '../violation.js';
import { OracleModel } from './model.js';
import { irqKey } from './state.js';

/** Each interrupt's trigger as first announced (PEND.a, DEACT.a, CFG.a: 0 edge, 1 level). */
function firstTriggers(live: readonly HistoryEvent[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of live) {
    if (e.kind !== EventKind.PEND && e.kind !== EventKind.DEACT && e.kind !== EventKind.CFG) continue;
    const k = irqKey(e.kind === EventKind.DEACT ? guestIntid(e.intid) : e.intid, e.vcpu);
    if (!out.has(k)) out.set(k, e.a ? 1 : 0);
  }
  return out;
}

export function runOracle(live: readonly HistoryEvent[], v2: boolean, sliceLimit: number): Violation[] {
  const m = new OracleModel(v2, sliceLimit, firstTriggers(live));
  for (const e of live) m.apply(e);
  return m.out;
}
