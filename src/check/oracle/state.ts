/**
 * The reference model's state (check/oracle/): the architectural interrupt state the history
 * replays, per interrupt (one banked copy per vCPU for INTIDs < 32) and per vCPU. Every field that
 * no event has set yet is UNKNOWN, and a rule that needs an unknown field does not judge: the
 * history may start after the configuration (a ring that wrapped, a VM configured before it was
 * recorded), and the model must never invent a state it has not seen.
 */
import { VGIC_MIN_LPI, VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../../uapi/kvm.js';
import type { HistoryEvent } from '../../record/events.js';
import type { ViolationKind } from '../violation.js';

export const UNKNOWN = -2;

/** One pending latch: an edge interrupt's, or one GICv2 SGI source's (spec §3.4, §5.4). */
export interface Latch {
  set: boolean;
  /** The PEND (or FOLD that put an unacknowledged LR back) that set it last. */
  setBy: HistoryEvent | null;
  /** The LR population (or acknowledgement) that took it last. */
  takenBy: HistoryEvent | null;
  /** The UNPEND that cleared it last. */
  clearedBy: HistoryEvent | null;
}

/** One interrupt's architectural state. */
export interface IrqModel {
  readonly intid: number;
  /** Owning vCPU for INTIDs < 32, else -1. */
  readonly owner: number;
  /** Every live event about it: the material of a violation's slice. */
  readonly events: HistoryEvent[];
  /** 0 edge, 1 level, UNKNOWN. SGIs and LPIs are edge by architecture. */
  trigger: number;
  /** 0/1/UNKNOWN, and the event that set it. */
  enabled: number;
  enabledBy: HistoryEvent | null;
  group: number;
  /** Resolved target vCPU for SPIs and LPIs, -1 none, UNKNOWN. */
  target: number;
  targetBy: HistoryEvent | null;
  /** Edge pending latches by source (-1 when the interrupt has no sources). */
  readonly latches: Map<number, Latch>;
  /** Active instances by source (-1 as above): the ACK or ISACTIVER that activated each. */
  readonly active: Map<number, HistoryEvent>;
  /** ISACTIVER on a GICv2 SGI: active from a source the history does not name. */
  activeUnsourced: boolean;
  /** ICACTIVER since the last activation: a deactivation may still follow (the DIR trap's hammer). */
  clearedBy: HistoryEvent | null;
  lastDeact: HistoryEvent | null;
  lastEoi: HistoryEvent | null;
}

/** What the model holds against an LR's pending state, decided when the LR was populated. */
export interface Problem {
  readonly kind: ViolationKind;
  /** "the model has it ..." clause. */
  readonly why: string;
  /** Seq from which the slice starts. */
  readonly from: number;
}

/** One populated list register as the model sees it (spec §4.4: a snapshot the host never edits while the vCPU runs). */
export interface LrModel {
  readonly irq: IrqModel;
  readonly src: number;
  pending: boolean;
  active: boolean;
  /** The interrupt's group when populated (UNKNOWN if the model did not know it). */
  readonly group: number;
  readonly populatedBy: HistoryEvent;
  /** Set when the pending state was not the model's to give: reported if the guest acknowledges it. */
  readonly problem: Problem | null;
}

/** An acknowledged interrupt awaiting its priority drop. */
export interface AckEntry {
  readonly irq: IrqModel;
  readonly src: number;
  readonly prio: number;
  /** Group priority under the BPR at the time of the ACK (spec §5.1). */
  readonly pre: number;
  readonly ack: HistoryEvent;
}

export interface CpuModel {
  readonly v: number;
  /** Packed VMCR (events.ts), UNKNOWN until the first VMCR event. */
  vmcr: number;
  vmcrBy: HistoryEvent | null;
  /** LRs by index, from population to fold. */
  readonly lrs: Map<number, LrModel>;
  /** The active-priority stack: acknowledged, not yet priority-dropped. */
  readonly acks: AckEntry[];
  /** This vCPU's CPU-interface events (LR, ACK, EOI, DEACT, FOLD, VMCR): slice material. */
  readonly events: HistoryEvent[];
}

/** Map key of an interrupt: INTIDs >= 32 are one per VM, lower ones one per vCPU. */
export function irqKey(intid: number, vcpu: number): number {
  return intid < VGIC_NR_PRIVATE_IRQS ? -(vcpu * VGIC_NR_PRIVATE_IRQS + intid) - 1 : intid;
}

export function isLpi(intid: number): boolean {
  return intid >= VGIC_MIN_LPI;
}

export function newIrq(intid: number, vcpu: number): IrqModel {
  return {
    intid,
    owner: intid < VGIC_NR_PRIVATE_IRQS ? vcpu : -1,
    events: [],
    trigger: intid < VGIC_NR_SGIS || isLpi(intid) ? 0 : UNKNOWN,
    enabled: UNKNOWN,
    enabledBy: null,
    group: isLpi(intid) ? 1 : UNKNOWN,
    target: UNKNOWN,
    targetBy: null,
    latches: new Map(),
    active: new Map(),
    activeUnsourced: false,
    clearedBy: null,
    lastDeact: null,
    lastEoi: null,
  };
}

export function newCpu(v: number): CpuModel {
  return { v, vmcr: UNKNOWN, vmcrBy: null, lrs: new Map(), acks: [], events: [] };
}

export function latchOf(irq: IrqModel, src: number): Latch {
  let l = irq.latches.get(src);
  if (l === undefined) irq.latches.set(src, (l = { set: false, setBy: null, takenBy: null, clearedBy: null }));
  return l;
}

/** Active for this source, or from a source the history does not name. */
export function isActive(irq: IrqModel, src: number): boolean {
  return irq.active.has(src) || irq.activeUnsourced;
}
