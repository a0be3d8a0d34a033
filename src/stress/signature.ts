/**
 * A run's coverage signature, for spreading a campaign's budget (campaign-budget.ts): the set of
 * interrupt lifecycle transitions its history shows. For every INTID, each pair of consecutive
 * events (previous kind -> kind), whether the second happened on another vCPU than the first, and
 * the INTID's class (SGI, PPI, SPI, LPI). A run that shows a transition no earlier run of its
 * scenario showed has covered something new.
 */
import type { HistoryEvent } from '../record/events.js';

const KINDS = 16;

function intidClass(intid: number): number {
  return intid < 16 ? 0 : intid < 32 ? 1 : intid < 1020 ? 2 : 3;
}

/** The transition ids present in `events` (sorted, distinct). */
export function historySignature(events: readonly HistoryEvent[]): number[] {
  const last = new Map<number, HistoryEvent>();
  const ids = new Set<number>();
  for (const e of events) {
    if (e.intid < 0) continue;
    const p = last.get(e.intid);
    const prevKind = p ? p.kind & (KINDS - 1) : 0;
    const cross = p && p.vcpu >= 0 && e.vcpu >= 0 && p.vcpu !== e.vcpu ? 1 : 0;
    ids.add(((intidClass(e.intid) * KINDS + prevKind) * KINDS + (e.kind & (KINDS - 1))) * 2 + cross);
    last.set(e.intid, e);
  }
  return [...ids].sort((a, b) => a - b);
}
