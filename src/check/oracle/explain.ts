/** Wording and slices for the oracle's violations: what the model's state was, and the events that show it. */
import { eventKindName, type HistoryEvent } from '../../record/events.js';
import { describeIntid, type Violation, type ViolationKind } from '../violation.js';
import type { CpuModel, IrqModel, Latch } from './state.js';

/** `LR #125 on vcpu0`, `PEND #120`. */
export function ref(e: HistoryEvent | null): string {
  if (e === null) return 'nothing';
  return `${eventKindName(e.kind)} #${e.seq}${e.vcpu >= 0 ? ` on vcpu${e.vcpu}` : ''}`;
}

export function what(irq: IrqModel, src: number): string {
  return `${describeIntid(irq.intid, irq.owner)}${src >= 0 ? ` from vCPU ${src}` : ''}`;
}

/** Why a latch is not set: never set, taken, or cleared, whichever happened last. */
export function latchHistory(l: Latch | undefined): string {
  if (l === undefined || l.setBy === null) return 'it was never made pending';
  const taken = l.takenBy !== null && l.takenBy.seq > l.setBy.seq ? l.takenBy : null;
  const cleared = l.clearedBy !== null && l.clearedBy.seq > l.setBy.seq ? l.clearedBy : null;
  if (cleared !== null && (taken === null || cleared.seq > taken.seq)) return `its last ${ref(l.setBy)} was cleared by ${ref(cleared)}`;
  if (taken !== null) return `its last ${ref(l.setBy)} was consumed by ${ref(taken)}`;
  return `its last ${ref(l.setBy)} is not followed by anything that leaves it pending`;
}

export function activeHistory(irq: IrqModel): string {
  const last = irq.lastDeact;
  const cleared = irq.clearedBy;
  if (last === null && cleared === null) return 'it was never acknowledged or activated';
  if (cleared !== null && (last === null || cleared.seq > last.seq)) return `it was made inactive by ${ref(cleared)}`;
  return `it was last deactivated by ${ref(last)}`;
}

/**
 * The slice: the interrupt's events from `from` on, plus (for CPU-interface rules) the vCPU's,
 * up to the violating event, the last `limit` of them.
 */
export function violation(kind: ViolationKind, at: HistoryEvent, irq: IrqModel, message: string, from: number, limit: number, cpu: CpuModel | null = null): Violation {
  const pick = (evs: readonly HistoryEvent[]): HistoryEvent[] => {
    const out: HistoryEvent[] = [];
    for (let i = evs.length - 1; i >= 0 && out.length < limit; i--) {
      const e = evs[i]!;
      if (e.seq > at.seq) continue;
      if (e.seq < from) break;
      out.push(e);
    }
    return out;
  };
  const merged = new Map<number, HistoryEvent>();
  for (const e of pick(irq.events)) merged.set(e.seq, e);
  if (cpu !== null) for (const e of pick(cpu.events)) merged.set(e.seq, e);
  merged.set(at.seq, at);
  const events = [...merged.values()].sort((x, y) => x.seq - y.seq);
  return {
    kind,
    intid: irq.intid,
    vcpu: at.vcpu >= 0 ? at.vcpu : irq.owner,
    seq: at.seq,
    message,
    events: events.length > limit ? events.slice(events.length - limit) : events,
  };
}
