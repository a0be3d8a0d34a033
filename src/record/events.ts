/**
 * Interrupt-lifecycle history events (DESIGN §6), declared as data. Every thread appends events to
 * its own ring (record/history.ts); the offline checker (check/checker.ts) merges them by `seq`.
 *
 * A record is 6 Int32 words (EVENT layout). `seq` comes from one Atomics.add on a VM-wide counter,
 * so it is a total order consistent with each thread's program order and with every
 * synchronisation between threads (an event recorded under a lock is ordered against the next
 * holder's events).
 *
 * Conventions shared by all kinds:
 * - `vcpu` is -1 when not applicable (NO_VCPU). For INTIDs < 32 (SGIs/PPIs, banked per vCPU) the
 *   `vcpu` of LINE/PEND/LEVEL_END names the vCPU whose private copy it is.
 * - ACK/EOI/DEACT record the value the guest read from IAR or wrote to EOIR/DIR. With a GICv2 model
 *   an SGI's value carries the source CPU in bits [12:10], exactly as GICC_IAR does; use
 *   guestIntid()/guestSgiSource() to split it. GICv3 values are plain INTIDs.
 */
import { defineLayout } from '../shm/layout.js';

export const EVENT = defineLayout('history_event', [
  { name: 'seq', doc: 'global order (Atomics.add on the shared counter)' },
  { name: 'kind', doc: 'EventKind' },
  { name: 'intid', doc: 'INTID (ACK/EOI/DEACT: IAR/EOIR/DIR value, see guestIntid)' },
  { name: 'vcpu', doc: 'vCPU id, -1 if none' },
  { name: 'a', doc: 'kind-specific (EVENT_KINDS)' },
  { name: 'b', doc: 'kind-specific (EVENT_KINDS)' },
]);
if (EVENT.size !== 6) throw new Error('history_event must stay 6 words');

export const enum EventKind {
  LINE = 1,
  PEND = 2,
  QUEUE = 3,
  MIGRATE = 4,
  LR = 5,
  ACK = 6,
  EOI = 7,
  DEACT = 8,
  RESAMPLE = 9,
  KICK = 10,
  WAKE = 11,
  LEVEL_END = 12,
  QUIESCE = 13,
  // Configuration and state changes the reference-model oracle (check/oracle/) replays. Each is
  // recorded where the vgic applies the change, under the same lock as the change.
  ENABLE = 14,
  PRIO = 15,
  CFG = 16,
  GROUP = 17,
  TARGET = 18,
  UNPEND = 19,
  ACTIVE = 20,
  DIST = 21,
  VMCR = 22,
  FOLD = 23,
  MAP = 24,
  DISCARD = 25,
}

export interface HistoryEvent {
  seq: number;
  kind: number;
  intid: number;
  vcpu: number;
  a: number;
  b: number;
}
/** Short name used by the checker's API. */
export type Event = HistoryEvent;

export const NO_VCPU = -1;
/** ACK.b when no other deliverable LR competed. */
export const ACK_NO_COMPETITOR = 256;
/** PEND.a / DEACT.a values. */
export const TRIGGER_EDGE = 0;
export const TRIGGER_LEVEL = 1;
/** LR.b / FOLD.b state bits (same encoding as the LR layout's `state`). */
export const LR_STATE_PENDING = 1;
export const LR_STATE_ACTIVE = 2;
/** LR.b / FOLD.b: a GICv2 SGI's source CPU (the LR's CPUID field) sits above the state bits. */
export const LR_CPUID_SHIFT = 8;
/** FOLD.b when the LR was dropped without folding (its LPI was unmapped and freed meanwhile). */
export const FOLD_DROPPED = -1;
/** DEACT.b: what deactivated. */
export const DEACT_BY_EOI = 0;
export const DEACT_BY_DIR = 1;
/** The host, at fold, for an EOI (or DIR) of an interrupt that was in no LR (mainline EOIcount walk). */
export const DEACT_BY_EOICOUNT = 2;

/**
 * VMCR.a: one vCPU's CPU-interface controls packed in one word (a snapshot after every change).
 * Raw register fields; the reader applies the architectural minimum binary points.
 */
export const VMCR_BPR0_SHIFT = 8;
export const VMCR_BPR1_SHIFT = 11;
export const VMCR_CBPR = 1 << 14;
export const VMCR_EOIMODE = 1 << 15;
export const VMCR_ENG0 = 1 << 16;
export const VMCR_ENG1 = 1 << 17;

export function packVmcr(pmr: number, bpr0: number, bpr1: number, cbpr: number, eoiMode: number, eng0: number, eng1: number): number {
  return (pmr & 0xff) | ((bpr0 & 7) << VMCR_BPR0_SHIFT) | ((bpr1 & 7) << VMCR_BPR1_SHIFT) |
    (cbpr ? VMCR_CBPR : 0) | (eoiMode ? VMCR_EOIMODE : 0) | (eng0 ? VMCR_ENG0 : 0) | (eng1 ? VMCR_ENG1 : 0);
}

export interface EventKindDecl {
  readonly kind: EventKind;
  readonly name: string;
  readonly doc: string;
  /** Labels for the `a` and `b` words when printed; null = unused. */
  readonly a: string | null;
  readonly b: string | null;
}

/** One row per kind, indexed by kind number (index 0 is unused). */
export const EVENT_KINDS: readonly (EventKindDecl | undefined)[] = [
  undefined,
  { kind: EventKind.LINE, name: 'LINE', a: 'level', b: null,
    doc: 'input line changed (KVM_IRQ_LINE, irqfd, device); vcpu = target for private IRQs else -1' },
  { kind: EventKind.PEND, name: 'PEND', a: 'trigger', b: 'src',
    doc: 'pending latch set by an accepted injection/ISPENDR/SGI/MSI; a = 0 edge / 1 level; b = v2 SGI source vCPU or -1' },
  { kind: EventKind.QUEUE, name: 'QUEUE', a: null, b: null, doc: "inserted into vCPU `vcpu`'s ap_list" },
  { kind: EventKind.MIGRATE, name: 'MIGRATE', a: 'from', b: null, doc: 'moved to vCPU `vcpu` by prune; a = from vCPU' },
  { kind: EventKind.LR, name: 'LR', a: 'lr', b: 'state',
    doc: 'populated into LR `a` of `vcpu`; b = LR state bits 1 pending | 2 active, | v2 SGI source << 8' },
  { kind: EventKind.ACK, name: 'ACK', a: 'prio', b: 'best',
    doc: 'guest IAR returned intid; a = its priority; b = lowest priority among the other Pending, group-enabled, below-PMR LRs, 256 if none' },
  { kind: EventKind.EOI, name: 'EOI', a: 'prio', b: null, doc: 'priority drop; a = dropped priority' },
  { kind: EventKind.DEACT, name: 'DEACT', a: 'trigger', b: 'by',
    doc: 'deactivation on vcpu; a = 0 edge / 1 level; b = 0 EOI in an LR, 1 DIR, 2 host EOIcount walk at fold' },
  { kind: EventKind.RESAMPLE, name: 'RESAMPLE', a: null, b: null, doc: 'resamplefd signalled for SPI intid' },
  { kind: EventKind.KICK, name: 'KICK', a: 'by', b: null, doc: 'vcpu kicked; a = kicker thread slot' },
  { kind: EventKind.WAKE, name: 'WAKE', a: null, b: null, doc: 'vcpu woken from WFI' },
  { kind: EventKind.LEVEL_END, name: 'LEVEL_END', a: 'level', b: 'enabled',
    doc: 'post-mortem at quiescence: line level of intid is a, enabled b' },
  { kind: EventKind.QUIESCE, name: 'QUIESCE', a: null, b: null,
    doc: 'the run is quiescent; everything after it is post-mortem state' },
  { kind: EventKind.ENABLE, name: 'ENABLE', a: 'enabled', b: null,
    doc: 'ISENABLER/ICENABLER, or an LPI enable bit taken from the property table; vcpu = owner for private IRQs' },
  { kind: EventKind.PRIO, name: 'PRIO', a: 'prio', b: null, doc: 'IPRIORITYR, or an LPI priority from the property table' },
  { kind: EventKind.CFG, name: 'CFG', a: 'trigger', b: null, doc: 'ICFGR: a = 0 edge / 1 level' },
  { kind: EventKind.GROUP, name: 'GROUP', a: 'group', b: null, doc: 'IGROUPR' },
  { kind: EventKind.TARGET, name: 'TARGET', a: 'target', b: null,
    doc: 'ITARGETSR/IROUTER/MOVI/MAPC: a = the resolved target vCPU, -1 none' },
  { kind: EventKind.UNPEND, name: 'UNPEND', a: null, b: 'sources',
    doc: 'pending latch cleared (ICPENDR, CPENDSGIR, ITS CLEAR, userspace restore); b = v2 SGI sources cleared, -1 all' },
  { kind: EventKind.ACTIVE, name: 'ACTIVE', a: 'active', b: null, doc: 'ISACTIVER (a = 1) / ICACTIVER (a = 0)' },
  { kind: EventKind.DIST, name: 'DIST', a: 'enabled', b: null, doc: 'GICD_CTLR: distributor enable' },
  { kind: EventKind.VMCR, name: 'VMCR', a: 'vmcr', b: null,
    doc: "vcpu's CPU-interface controls after a change: a = PMR | BPR0 << 8 | BPR1 << 11 | CBPR << 14 | EOImode << 15 | grp0 en << 16 | grp1 en << 17" },
  { kind: EventKind.FOLD, name: 'FOLD', a: 'lr', b: 'state',
    doc: 'LR `a` of `vcpu` folded back at exit; b = its state bits as in LR, -1 if dropped (its LPI was freed)' },
  { kind: EventKind.MAP, name: 'MAP', a: 'target', b: null, doc: 'a free LPI record mapped afresh (MAPTI/MAPI): inactive, not pending, disabled; a = target vCPU' },
  { kind: EventKind.DISCARD, name: 'DISCARD', a: null, b: null, doc: 'ITS DISCARD of the LPI: its pending state may go without delivery' },
];
EVENT_KINDS.forEach((d, i) => {
  if (d !== undefined && d.kind !== i) throw new Error(`EVENT_KINDS[${i}] declares kind ${d.kind}`);
});

export function eventKindName(kind: number): string {
  return EVENT_KINDS[kind]?.name ?? `KIND_${kind}`;
}

/*
 * GICv2 SGI source encoding (GICC_IAR bits [12:10]). Only values in [1024, 8192) whose low 10 bits
 * are an SGI number can be such values: plain INTIDs are < 1020 (SPIs) or >= 8192 (LPIs); the
 * GICv3.1 extended ranges in between are not modelled by KVM's vgic.
 */
function isV2SgiValue(v: number): boolean {
  return v >= 1024 && v < 8192 && (v & 0x3ff) < 16;
}

/** The INTID in an IAR/EOIR/DIR value. */
export function guestIntid(value: number): number {
  return isV2SgiValue(value) ? value & 0x3ff : value;
}

/**
 * GICv2 SGI source CPU in an IAR/EOIR/DIR value, or -1 when the value carries none. Note that CPU 0
 * encodes as a plain SGI number, so for a v2 SGI value < 16 the source is 0 on GICv2 and "none" on
 * GICv3: callers that know the model pass `v2Sgi`.
 */
export function guestSgiSource(value: number, v2Sgi = false): number {
  if (isV2SgiValue(value)) return (value >> 10) & 7;
  return v2Sgi && value < 16 ? 0 : NO_VCPU;
}

/** One line, e.g. `#12 ACK intid=40 vcpu=1 prio=0xa0 best=256`. */
export function formatEvent(e: HistoryEvent): string {
  const d = EVENT_KINDS[e.kind];
  const parts = [`#${e.seq}`, eventKindName(e.kind)];
  if (e.kind !== EventKind.QUIESCE) parts.push(`intid=${e.intid}`, `vcpu=${e.vcpu}`);
  const word = (label: string | null | undefined, v: number, raw: string): void => {
    if (label === null) return;
    if (label === undefined) parts.push(`${raw}=${v}`);
    else if (label === 'prio' || (label === 'best' && v !== ACK_NO_COMPETITOR)) parts.push(`${label}=0x${v.toString(16)}`);
    else if (label === 'trigger') parts.push(v === TRIGGER_LEVEL ? 'level' : 'edge');
    else if (label === 'vmcr') parts.push(`pmr=0x${(v & 0xff).toString(16)} vmcr=0x${v.toString(16)}`);
    else parts.push(`${label}=${v}`);
  };
  word(d === undefined ? undefined : d.a, e.a, 'a');
  word(d === undefined ? undefined : d.b, e.b, 'b');
  return parts.join(' ');
}
