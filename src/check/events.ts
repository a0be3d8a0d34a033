/**
 * Interrupt-lifecycle history events (DESIGN §6), declared as data. Every thread appends events to
 * its own ring (check/history.ts); the offline checker (check/checker.ts) merges them by `seq`.
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
/** LR.b state bits (same encoding as the LR layout's `state`). */
export const LR_STATE_PENDING = 1;
export const LR_STATE_ACTIVE = 2;

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
    doc: 'populated into LR `a` of `vcpu`; b = LR state bits 1 pending | 2 active' },
  { kind: EventKind.ACK, name: 'ACK', a: 'prio', b: 'best',
    doc: 'guest IAR returned intid; a = its priority; b = lowest priority among the other Pending, group-enabled, below-PMR LRs, 256 if none' },
  { kind: EventKind.EOI, name: 'EOI', a: 'prio', b: null, doc: 'priority drop; a = dropped priority' },
  { kind: EventKind.DEACT, name: 'DEACT', a: 'trigger', b: null, doc: 'deactivation on vcpu; a = 0 edge / 1 level' },
  { kind: EventKind.RESAMPLE, name: 'RESAMPLE', a: null, b: null, doc: 'resamplefd signalled for SPI intid' },
  { kind: EventKind.KICK, name: 'KICK', a: 'by', b: null, doc: 'vcpu kicked; a = kicker thread slot' },
  { kind: EventKind.WAKE, name: 'WAKE', a: null, b: null, doc: 'vcpu woken from WFI' },
  { kind: EventKind.LEVEL_END, name: 'LEVEL_END', a: 'level', b: 'enabled',
    doc: 'post-mortem at quiescence: line level of intid is a, enabled b' },
  { kind: EventKind.QUIESCE, name: 'QUIESCE', a: null, b: null,
    doc: 'the run is quiescent; everything after it is post-mortem state' },
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
    else parts.push(`${label}=${v}`);
  };
  word(d === undefined ? undefined : d.a, e.a, 'a');
  word(d === undefined ? undefined : d.b, e.b, 'b');
  return parts.join(' ');
}
