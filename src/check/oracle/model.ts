/**
 * The reference model (issue 10 item 2): a sequential replay of the history in seq order over the
 * architectural interrupt state (state.ts), in the way Elle or Porcupine check a history against a
 * model. Transitions live here; the judgements of acknowledgements, EOIs, deactivations and active
 * changes live in rules.ts.
 *
 * The seq order is exact for what the model compares: every state change of an interrupt is
 * recorded under its irq_lock (PEND, LR, FOLD, ENABLE, TARGET, ...), and a vCPU's CPU-interface
 * events (LR, ACK, EOI, DEACT, FOLD, VMCR) come from its own thread in program order.
 */
import { VGIC_NR_SGIS } from '../../uapi/kvm.js';
import {
  EventKind, FOLD_DROPPED, guestIntid, guestSgiSource, LR_CPUID_SHIFT, LR_STATE_ACTIVE, LR_STATE_PENDING, TRIGGER_EDGE,
  type HistoryEvent,
} from '../../record/events.js';
import type { Violation } from '../violation.js';
import { judgeAck, judgeActiveChange, judgeDeact, judgeEoi, takePending, type RuleCtx } from './rules.js';
import { irqKey, isLpi, latchOf, newCpu, newIrq, UNKNOWN, type CpuModel, type IrqModel, type LrModel } from './state.js';

function isSpecial(intid: number): boolean {
  return intid >= 1020 && intid <= 1023;
}

export class OracleModel implements RuleCtx {
  readonly out: Violation[] = [];
  readonly cpus = new Map<number, CpuModel>();
  private readonly irqs = new Map<number, IrqModel>();

  /**
   * `firstTrigger`: per interrupt key, the trigger its first PEND, DEACT or CFG announces. An
   * interrupt's trigger mode is configuration the history may not show before its first
   * acknowledgement (set before recording began); the first announcement stands for it.
   */
  constructor(private readonly v2: boolean, readonly limit: number, private readonly firstTrigger: ReadonlyMap<number, number>) {}

  private irq(intid: number, vcpu: number): IrqModel {
    const k = irqKey(intid, vcpu);
    let s = this.irqs.get(k);
    if (s === undefined) {
      this.irqs.set(k, (s = newIrq(intid, vcpu)));
      if (s.trigger === UNKNOWN) s.trigger = this.firstTrigger.get(k) ?? UNKNOWN;
    }
    return s;
  }

  private cpu(v: number): CpuModel {
    let c = this.cpus.get(v);
    if (c === undefined) this.cpus.set(v, (c = newCpu(v)));
    return c;
  }

  /** A GICv2 SGI's source in a guest value (IAR/EOIR/DIR), -1 for everything else. */
  private valueSource(value: number): number {
    return this.v2 && guestIntid(value) < VGIC_NR_SGIS ? guestSgiSource(value, true) : -1;
  }

  apply(e: HistoryEvent): void {
    switch (e.kind) {
      case EventKind.PEND: return this.pend(e);
      case EventKind.UNPEND: return this.unpend(e);
      case EventKind.LR: return this.lr(e);
      case EventKind.FOLD: return this.fold(e);
      case EventKind.ACK: return this.ack(e);
      case EventKind.EOI: return this.eoi(e);
      case EventKind.DEACT: return this.deact(e);
      case EventKind.VMCR: return this.vmcr(e);
      case EventKind.ACTIVE: return this.active(e);
      case EventKind.MAP: return this.map(e);
      case EventKind.ENABLE:
      case EventKind.GROUP:
      case EventKind.CFG:
      case EventKind.TARGET:
      case EventKind.LINE:
      case EventKind.PRIO:
      case EventKind.DISCARD:
        return this.config(e);
      default:
        return; // QUEUE, MIGRATE, KICK, WAKE, RESAMPLE, DIST: nothing architectural to replay
    }
  }

  private config(e: HistoryEvent): void {
    const s = this.irq(e.intid, e.vcpu);
    s.events.push(e);
    switch (e.kind) {
      case EventKind.ENABLE:
        s.enabled = e.a ? 1 : 0;
        s.enabledBy = e;
        break;
      case EventKind.GROUP:
        s.group = e.a ? 1 : 0;
        break;
      case EventKind.CFG:
        if (e.intid >= VGIC_NR_SGIS && !isLpi(e.intid)) s.trigger = e.a ? 1 : 0;
        break;
      case EventKind.TARGET:
        s.target = e.a;
        s.targetBy = e;
        break;
      case EventKind.LINE:
        // Only level interrupts have a line the vgic records.
        if (s.trigger === UNKNOWN) s.trigger = 1;
        break;
      default:
        break; // PRIO (the LR snapshot's priority is what the ACK carries), DISCARD (pending may stay)
    }
  }

  private pend(e: HistoryEvent): void {
    const s = this.irq(e.intid, e.vcpu);
    s.events.push(e);
    if (e.intid >= VGIC_NR_SGIS && !isLpi(e.intid)) s.trigger = e.a === TRIGGER_EDGE ? 0 : 1;
    if (s.trigger !== 0) return; // a level soft-pend: see rules.ts (level is checker.ts's)
    const l = latchOf(s, this.v2 && e.intid < VGIC_NR_SGIS ? e.b : -1);
    l.set = true;
    l.setBy = e;
  }

  private unpend(e: HistoryEvent): void {
    const s = this.irq(e.intid, e.vcpu);
    s.events.push(e);
    for (const [src, l] of s.latches) {
      if (e.b !== -1 && src >= 0 && !(e.b & (1 << src))) continue;
      l.set = false;
      l.clearedBy = e;
    }
  }

  private map(e: HistoryEvent): void {
    // A fresh record: the previous incarnation's pending and active state went with it.
    const s = this.irq(e.intid, -1);
    s.events.push(e);
    for (const l of s.latches.values()) {
      l.set = false;
      l.clearedBy = e;
    }
    s.active.clear();
    s.enabled = 0;
    s.enabledBy = e;
    s.target = e.a;
    s.targetBy = e;
  }

  private active(e: HistoryEvent): void {
    const s = this.irq(e.intid, e.vcpu);
    s.events.push(e);
    judgeActiveChange(this, s, e);
    if (isLpi(e.intid)) return;
    if (e.a) {
      if (this.v2 && e.intid < VGIC_NR_SGIS) s.activeUnsourced = true;
      else s.active.set(-1, e);
    } else {
      s.active.clear();
      s.activeUnsourced = false;
      s.clearedBy = e;
    }
  }

  private lr(e: HistoryEvent): void {
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    const s = this.irq(e.intid, e.vcpu);
    s.events.push(e);
    const old = c.lrs.get(e.a);
    if (old !== undefined) this.foldLr(old, null); // not folded in the history (a ring that wrapped)
    const src = this.v2 && e.intid < VGIC_NR_SGIS ? e.b >> LR_CPUID_SHIFT : -1;
    const pending = (e.b & LR_STATE_PENDING) !== 0;
    c.lrs.set(e.a, {
      irq: s,
      src,
      pending,
      active: (e.b & LR_STATE_ACTIVE) !== 0,
      group: s.group,
      populatedBy: e,
      problem: pending ? takePending(s, src, e.vcpu, e, (e.b & LR_STATE_ACTIVE) !== 0) : null,
    });
  }

  /** An LR's state back in the distributor: an unacknowledged edge is pending again (spec §4.6). */
  private foldLr(lr: LrModel, e: HistoryEvent | null): void {
    if (lr.pending && lr.problem === null && lr.irq.trigger === 0) {
      const l = latchOf(lr.irq, lr.src);
      l.set = true;
      l.setBy = e ?? lr.populatedBy;
    }
  }

  private fold(e: HistoryEvent): void {
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    const lr = c.lrs.get(e.a);
    if (lr === undefined) return;
    lr.irq.events.push(e);
    c.lrs.delete(e.a);
    if (e.b !== FOLD_DROPPED) this.foldLr(lr, e);
  }

  private ack(e: HistoryEvent): void {
    // A spurious read (1023, or the 1020-1022 specials) acknowledges nothing and is always legal.
    if (isSpecial(guestIntid(e.intid))) return;
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    const intid = guestIntid(e.intid);
    const src = this.valueSource(e.intid);
    const s = this.irq(intid, e.vcpu);
    s.events.push(e);
    let lr: LrModel | null = null;
    for (const l of c.lrs.values()) {
      if (l.irq === s && l.src === src && l.pending && !l.active) {
        lr = l;
        break;
      }
    }
    if (lr !== null) {
      lr.pending = false;
      lr.active = true;
    }
    judgeAck(this, c, s, src, lr, e);
  }

  private eoi(e: HistoryEvent): void {
    if (isSpecial(guestIntid(e.intid))) return; // writes of the special INTIDs are ignored
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    const s = this.irq(guestIntid(e.intid), e.vcpu);
    s.events.push(e);
    judgeEoi(this, c, s, this.valueSource(e.intid), e);
  }

  private deact(e: HistoryEvent): void {
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    const src = this.valueSource(e.intid);
    const s = this.irq(guestIntid(e.intid), e.vcpu);
    s.events.push(e);
    for (const l of c.lrs.values()) {
      if (l.irq === s && l.src === src && l.active) {
        l.active = false;
        break;
      }
    }
    judgeDeact(this, s, src, e);
  }

  private vmcr(e: HistoryEvent): void {
    const c = this.cpu(e.vcpu);
    c.events.push(e);
    c.vmcr = e.a;
    c.vmcrBy = e;
  }
}
