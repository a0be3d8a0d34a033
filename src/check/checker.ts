/**
 * Offline interrupt-lifecycle checker (DESIGN §6). Input: a merged history (record/history.ts),
 * sorted by seq. Output: violations, each with the slice of events that shows it.
 *
 * Interrupt identity: INTIDs >= 32 are one interrupt VM-wide; INTIDs < 32 are banked, one per
 * (intid, vCPU). Edge counting for GICv2 SGIs is per source vCPU (each source is its own pending
 * bit, spec §5.4). Events after the first QUIESCE are post-mortem state (LEVEL_END); the lifecycle
 * rules only read what precedes it, and the end-of-run rules (lost, level-not-represented,
 * resample-missing at the end) only run when QUIESCE is present.
 *
 * Trigger mode comes from the history itself: PEND.a and DEACT.a announce edge (0) or level (1);
 * an interrupt with neither (driven only through its line) is level. If a run reconfigures an
 * interrupt, the latest announcement wins.
 *
 * Every acknowledgement, EOI, deactivation and active-state change is also judged by the
 * reference-model oracle (check/oracle/), which replays the history against the architectural
 * state: edge `spurious`/`duplicate`, and the ack-*, eoi-not-active, deactivate-inactive and
 * active-changed-in-lr kinds are its. The rules kept here give clearer messages for what they see:
 *
 * Rules (spec §3.4 pending semantics, §4.4 LR population, §5.1 IAR, §8.5 resampling):
 * - edge: at quiescence a PEND later than the last ACK is `lost`, unless LEVEL_END reports the
 *   interrupt disabled (a disabled interrupt is not delivered).
 * - level: an ACK needs evidence of pending state since the last DEACT: the line was high at some
 *   point, or a soft PEND (ISPENDR). Not the line level at the ACK itself: a guest may legally ack
 *   an LR that was populated just before the device lowered the line (the host never edits a
 *   running vCPU's LRs, §4.5). At quiescence, a line that is still high and enabled must have been
 *   ACKed after the last DEACT (`level-not-represented`).
 * - priority: ACK.a greater than ACK.b (a numerically lower, i.e. higher, deliverable priority was
 *   in that vCPU's LRs).
 * - resample (SPIs in opts.resampleSpis): each level DEACT is followed by exactly one RESAMPLE
 *   before the next ACK of that SPI (spec §8.5: once per EOI).
 * Not modelled by `lost`: ICPENDR clearing state (UNPEND, which the oracle follows), so scenarios
 * checked for `lost` must not clear pending interrupts.
 */
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../uapi/kvm.js';
import {
  EventKind,
  TRIGGER_LEVEL,
  formatEvent,
  guestIntid,
  guestSgiSource,
  type HistoryEvent,
} from '../record/events.js';
import { describeIntid, type Violation, type ViolationKind } from './violation.js';
import { runOracle } from './oracle/index.js';

export type { Violation, ViolationKind } from './violation.js';
export { describeIntid } from './violation.js';

export interface CheckOptions {
  /** SPIs driven through an irqfd with a resamplefd: their deactivations must resample. */
  resampleSpis?: Iterable<number>;
  /** GIC model, used to decode GICv2 SGI sources. Default: v2 if any SGI PEND names a source. */
  gicVersion?: 2 | 3;
  /** Maximum events in a violation's slice (default 24). */
  sliceLimit?: number;
  /**
   * Interrupts whose pending state the run may legally discard without an event (an ITS DISCARD
   * of a pending LPI): never reported `lost`.
   */
  discardable?: (intid: number) => boolean;
}

interface EdgeCount {
  lastAck: number;
  /** First PEND after the last ACK, and how many there are. */
  firstUnacked: HistoryEvent | null;
  unacked: number;
}

/** The checker's state for one interrupt (one banked copy for INTIDs < 32). */
interface Track {
  intid: number;
  /** Owner for INTIDs < 32, else -1. */
  owner: number;
  events: HistoryEvent[];
  level: boolean;
  /** Edge counters per source (-1 when sources are not distinguished). */
  edge: Map<number, EdgeCount>;
  line: number;
  lastLine: HistoryEvent | null;
  highSinceDeact: boolean;
  softSinceDeact: boolean;
  lastAck: number;
  lastDeact: HistoryEvent | null;
  resample: boolean;
  awaitingResample: HistoryEvent | null;
  resamples: number;
}

const LIFECYCLE = new Set<number>([
  EventKind.LINE, EventKind.PEND, EventKind.QUEUE, EventKind.MIGRATE, EventKind.LR, EventKind.ACK,
  EventKind.EOI, EventKind.DEACT, EventKind.RESAMPLE,
]);
const GUEST_VALUE = new Set<number>([EventKind.ACK, EventKind.EOI, EventKind.DEACT]);

function plainIntid(e: HistoryEvent): number {
  return GUEST_VALUE.has(e.kind) ? guestIntid(e.intid) : e.intid;
}

function keyOf(intid: number, vcpu: number): string {
  return intid < VGIC_NR_PRIVATE_IRQS ? `${intid}/${vcpu}` : String(intid);
}

export function checkHistory(input: readonly HistoryEvent[], opts: CheckOptions = {}): Violation[] {
  const limit = opts.sliceLimit ?? 24;
  const resampleSpis = new Set(opts.resampleSpis ?? []);
  const all = isSorted(input) ? input : [...input].sort((x, y) => x.seq - y.seq);
  const qi = all.findIndex((e) => e.kind === EventKind.QUIESCE);
  const quiesce = qi >= 0 ? all[qi]! : null;
  const live = qi >= 0 ? all.slice(0, qi) : all;
  const post = qi >= 0 ? all.slice(qi + 1) : [];
  const v2 = opts.gicVersion !== undefined
    ? opts.gicVersion === 2
    : live.some((e) => e.kind === EventKind.PEND && e.intid < VGIC_NR_SGIS && e.b >= 0);
  const out: Violation[] = [];
  const slice = (events: readonly HistoryEvent[], from: number, to: number): HistoryEvent[] => {
    const s = events.filter((e) => e.seq >= from && e.seq <= to);
    return s.length > limit ? s.slice(s.length - limit) : s;
  };

  // Priority is per ACK and needs the vCPU's recent LR history rather than the interrupt's.
  live.forEach((e, i) => {
    if (e.kind !== EventKind.ACK || e.a <= e.b) return;
    const around: HistoryEvent[] = [];
    for (let j = i; j >= 0 && around.length < limit; j--) if (live[j]!.vcpu === e.vcpu) around.unshift(live[j]!);
    out.push({
      kind: 'priority', intid: guestIntid(e.intid), vcpu: e.vcpu, seq: e.seq, events: around,
      message: `vCPU ${e.vcpu} acknowledged ${describeIntid(guestIntid(e.intid), e.vcpu)} at priority 0x${e.a.toString(16)} while an LR held a deliverable interrupt at priority 0x${e.b.toString(16)}`,
    });
  });

  // Group lifecycle events per interrupt.
  const tracks = new Map<string, Track>();
  for (const e of live) {
    if (!LIFECYCLE.has(e.kind)) continue;
    const intid = plainIntid(e);
    if (intid >= 1020 && intid <= 1023) continue; // a spurious IAR read or an ignored EOIR write
    const k = keyOf(intid, e.vcpu);
    let t = tracks.get(k);
    if (t === undefined) {
      t = {
        intid, owner: intid < VGIC_NR_PRIVATE_IRQS ? e.vcpu : -1, events: [], level: true, edge: new Map(), line: 0, lastLine: null,
        highSinceDeact: false, softSinceDeact: false, lastAck: -1, lastDeact: null,
        resample: intid >= VGIC_NR_PRIVATE_IRQS && resampleSpis.has(intid), awaitingResample: null, resamples: 0,
      };
      tracks.set(k, t);
    }
    t.events.push(e);
  }
  const levelEnd = new Map<string, HistoryEvent>();
  for (const e of post) if (e.kind === EventKind.LEVEL_END) levelEnd.set(keyOf(e.intid, e.vcpu), e);

  for (const [k, t] of tracks) {
    const first = t.events.find((e) => e.kind === EventKind.PEND || e.kind === EventKind.DEACT);
    t.level = first === undefined || first.a === TRIGGER_LEVEL;
    const what = describeIntid(t.intid, t.owner);
    const report = (kind: ViolationKind, at: HistoryEvent, message: string, from = -1): void => {
      out.push({ kind, intid: t.intid, vcpu: at.vcpu >= 0 ? at.vcpu : t.owner, seq: at.seq, message, events: slice(t.events, from, at.seq) });
    };
    const sourceOf = (e: HistoryEvent): number => {
      if (t.intid >= VGIC_NR_SGIS || !v2) return -1;
      return e.kind === EventKind.PEND ? e.b : guestSgiSource(e.intid, true);
    };
    const counter = (src: number): EdgeCount => {
      let c = t.edge.get(src);
      if (c === undefined) t.edge.set(src, (c = { lastAck: -1, firstUnacked: null, unacked: 0 }));
      return c;
    };
    const fromSrc = (src: number): string => (src >= 0 ? ` from vCPU ${src}` : '');

    for (const e of t.events) {
      switch (e.kind) {
        case EventKind.LINE:
          t.line = e.a;
          t.lastLine = e;
          if (e.a !== 0) t.highSinceDeact = true;
          break;
        case EventKind.PEND:
          t.level = e.a === TRIGGER_LEVEL;
          if (t.level) {
            t.softSinceDeact = true;
          } else {
            const c = counter(sourceOf(e));
            if (c.unacked++ === 0) c.firstUnacked = e;
          }
          break;
        case EventKind.ACK: {
          if (t.level) {
            if (!t.highSinceDeact && !t.softSinceDeact) {
              report('spurious', e, `vCPU ${e.vcpu} acknowledged level ${what} although its line was never high and no PEND was made since ${t.lastDeact ? `its deactivation at #${t.lastDeact.seq}` : 'the start'}`, t.lastDeact?.seq ?? -1);
            }
          } else {
            // Whether an edge ACK had a pending state to take is the oracle's to judge (it
            // follows the latch through LRs, folds and ICPENDR); here only `lost` is counted.
            const c = counter(sourceOf(e));
            c.lastAck = e.seq;
            c.firstUnacked = null;
            c.unacked = 0;
          }
          t.lastAck = e.seq;
          if (t.awaitingResample !== null && t.resamples === 0) {
            report('resample-missing', e, `${what} was deactivated at #${t.awaitingResample.seq} and acknowledged again at #${e.seq} without a RESAMPLE in between`, t.awaitingResample.seq);
          }
          t.awaitingResample = null;
          break;
        }
        case EventKind.DEACT:
          t.level = e.a === TRIGGER_LEVEL;
          t.lastDeact = e;
          t.highSinceDeact = t.line !== 0;
          t.softSinceDeact = false;
          if (t.resample && t.level) {
            if (t.awaitingResample !== null && t.resamples === 0) {
              report('resample-missing', e, `${what} was deactivated at #${t.awaitingResample.seq} and again at #${e.seq} without a RESAMPLE in between`, t.awaitingResample.seq);
            }
            t.awaitingResample = e;
            t.resamples = 0;
          }
          break;
        case EventKind.RESAMPLE:
          if (!t.resample) break;
          if (t.awaitingResample === null) {
            report('resample-doubled', e, `RESAMPLE for ${what} with no deactivation since its last ACK`, t.lastAck);
          } else if (++t.resamples === 2) {
            report('resample-doubled', e, `${what} deactivated at #${t.awaitingResample.seq} was resampled more than once`, t.awaitingResample.seq);
          }
          break;
        default:
          break;
      }
    }

    if (quiesce === null) continue;
    const end = levelEnd.get(k);
    if (!t.level) {
      if (end !== undefined && end.b === 0) continue;
      if (opts.discardable?.(t.intid)) continue;
      for (const [src, c] of t.edge) {
        if (c.firstUnacked === null) continue;
        out.push({
          kind: 'lost', intid: t.intid, vcpu: t.owner, seq: c.firstUnacked.seq,
          events: [...slice(t.events, Math.max(c.lastAck, 0), Infinity), quiesce],
          message: `edge ${what}${fromSrc(src)}: ${c.unacked} PEND(s) from #${c.firstUnacked.seq} on were never acknowledged before quiescence (${c.lastAck >= 0 ? `last ACK #${c.lastAck}` : 'never acknowledged'})`,
        });
      }
      continue;
    }
    if (end !== undefined && end.a !== 0 && end.b !== 0 && t.lastLine !== null && t.lastLine.a !== 0) {
      const deact = t.lastDeact;
      if (deact === null ? t.lastAck < 0 : t.lastAck < deact.seq) {
        out.push({
          kind: 'level-not-represented', intid: t.intid, vcpu: deact?.vcpu ?? t.owner, seq: deact?.seq ?? t.lastLine.seq,
          events: [...slice(t.events, deact?.seq ?? -1, Infinity), quiesce, end],
          message: deact !== null
            ? `level ${what} was deactivated at #${deact.seq} while its line stayed high and enabled, but was never presented again before quiescence`
            : `level ${what} has its line high and enabled at quiescence but was never acknowledged`,
        });
      }
    }
    if (t.awaitingResample !== null && t.resamples === 0) {
      const d = t.awaitingResample;
      out.push({
        kind: 'resample-missing', intid: t.intid, vcpu: d.vcpu, seq: d.seq,
        events: [...slice(t.events, d.seq, Infinity), quiesce],
        message: `${what} was deactivated at #${d.seq} but no RESAMPLE followed before quiescence`,
      });
    }
  }

  out.push(...runOracle(live, v2, limit));
  return out.sort((x, y) => x.seq - y.seq || x.kind.localeCompare(y.kind));
}

function isSorted(events: readonly HistoryEvent[]): boolean {
  for (let i = 1; i < events.length; i++) if (events[i - 1]!.seq > events[i]!.seq) return false;
  return true;
}

/** Human-readable, multi-line: headline, then the event slice with names. */
export function formatViolation(v: Violation): string {
  const head = `[${v.kind}] ${describeIntid(v.intid, v.vcpu)}${v.vcpu >= 0 && v.intid >= VGIC_NR_PRIVATE_IRQS ? ` (vCPU ${v.vcpu})` : ''} at #${v.seq}: ${v.message}`;
  const lines = v.events.map((e) => `${e.seq === v.seq ? '  > ' : '    '}${formatEvent(e)}`);
  return [head, ...lines].join('\n');
}
