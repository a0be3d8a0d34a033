/**
 * Bounded delivery (a liveness detector that knows no bug). In controlled stress runs, where guest
 * steps are the schedule's, each vCPU checks at every guest instruction boundary at which it could
 * take an interrupt (in guest mode, IRQs unmasked, not inside its handler: an "eligible step")
 * which interrupt it should take now:
 *  - one pending in an LR (state exactly Pending), its group enabled, priority below PMR and its
 *    group priority above the running priority: what the CPU interface signals; or
 *  - one on its ap_list and in no LR whose oracle is this vCPU (distributor and interrupt enabled,
 *    pending, not active, target this vCPU), its group enabled, below PMR, preempting the running
 *    priority: the run loop owes it an LR at the next entry, and its injector a kick.
 * The highest priority of these (ties: the LR first, as the CPU takes it) is the candidate. It must
 * be acknowledged within DELIVERY_BOUND eligible steps at which it was the candidate; if not,
 * something left it "until some other event" (a queue without a kick, a kick lost, a flush that
 * skips it, a CPU interface that does not signal it) and the run fails right there, with the
 * interrupt, the vCPU, the event since which it waited and the vCPU's state.
 *
 * Steps at which the vCPU is descheduled, masked or in a handler do not count and do not restart
 * the wait (a lost kick is found even if the guest masks IRQs now and then); any acknowledgement by
 * the vCPU restarts it (the CPU made progress, maybe on this very interrupt), as does a different
 * candidate. Interrupts pending but on no ap_list are not this detector's: the kernel leaves them
 * there by design (spec §3.8) and the history checker judges them at the end.
 *
 * Chaos mode is not checked: its real delays can hold a correct kicker back for any number of
 * guest steps. Only vCPU v's own thread writes its LRs and VMCR, and in controlled mode nobody
 * else runs while it checks, so the reads below see a consistent state; they bypass the lockset
 * view (a detector's sample, not the model's access).
 */
import { LR, LR_PENDING, IRQ, VCPU, CTR } from '../shm/layouts.js';
import { irqOff, vcpuOff, type VmGeometry } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { irqIsPending } from '../vgic/irq.js';
import { runningPriority } from '../vgic/cpu-interface.js';
import { EventKind, formatEvent } from '../record/events.js';
import { vmcrWord } from '../vgic/trace.js';
import { readHistory } from '../record/history.js';
import { groupPriority, vmcrGroupEnabled } from './oracle/cpuif.js';
import { scheduleStepHook } from '../sync/wait-hooks.js';
import { unchecked } from './lockset/view.js';

/**
 * Eligible steps a candidate may wait. The correct model's longest wait, over a 300-run campaign
 * of every scenario in controlled mode (random walk and PCT depth 1-4), was under 64 steps (a
 * kicker descheduled between its queue and its kick: the waiting guest's relax() yields to it);
 * the bound stays far above it, and above what a PCT time slice (2000 steps) could add.
 */
export const DELIVERY_BOUND = 20_000;

/** The candidate of vCPU v now: a record index (-1: none), and its LR if it is in one. */
export interface Candidate {
  rec: number;
  /** Its LR index, -1 when it waits on the ap_list. */
  lr: number;
}

/** Can vCPU v take an interrupt of this priority and group now (PMR, group enable, preemption)? */
function takeable(prio: number, group: number, vmcr: number, rpr: number): boolean {
  return vmcrGroupEnabled(vmcr, group) && prio < (vmcr & 0xff) && groupPriority(prio, group, vmcr) < rpr;
}

/** The interrupt vCPU v should take now (module comment), written into `out`. */
export function deliveryCandidate(m: Int32Array, g: VmGeometry, v: number, out: Candidate): Candidate {
  const vb = vcpuOff(g, v);
  out.rec = -1;
  out.lr = -1;
  const used = m[vb + VCPU.off.usedLrs]!;
  if (used === 0 && m[vb + VCPU.off.apHead]! < 0) return out; // the common case: nothing queued
  const vmcr = vmcrWord(m, vb);
  const rpr = runningPriority(m, vb);
  let bestPrio = 0x100;
  for (let i = 0; i < used; i++) {
    const lb = vb + VCPU.off.lr + i * LR.size;
    if (m[lb + LR.off.state] !== LR_PENDING) continue;
    const prio = m[lb + LR.off.priority]!;
    if (prio >= bestPrio || !takeable(prio, m[lb + LR.off.group]!, vmcr, rpr)) continue;
    bestPrio = prio;
    out.lr = i;
  }
  if (out.lr >= 0) {
    // The LR names an INTID; its record is the ap_list entry that populated it.
    const intid = m[vb + VCPU.off.lr + out.lr * LR.size + LR.off.intid]!;
    for (let r = m[vb + VCPU.off.apHead]!, n = 0; r >= 0 && n++ < g.nrRecords; r = m[irqOff(g, r) + IRQ.off.next]!) {
      if (m[irqOff(g, r) + IRQ.off.intid] === intid) out.rec = r;
    }
  }
  if (m[D.enabled] === 0) return out;
  for (let r = m[vb + VCPU.off.apHead]!, n = 0; r >= 0 && n++ < g.nrRecords; r = m[irqOff(g, r) + IRQ.off.next]!) {
    const b = irqOff(g, r);
    if (m[b + IRQ.off.onLr] || m[b + IRQ.off.active] || !m[b + IRQ.off.enabled] || m[b + IRQ.off.target] !== v || !irqIsPending(m, b)) continue;
    const prio = m[b + IRQ.off.priority]!;
    if (prio >= bestPrio || !takeable(prio, m[b + IRQ.off.group]!, vmcr, rpr)) continue;
    bestPrio = prio;
    out.rec = r;
    out.lr = -1;
  }
  return out;
}

/** vCPU v's CPU-interface state and ap_list, for a report. */
export function describeVcpuIrqState(m: Int32Array, g: VmGeometry, v: number): string {
  const vb = vcpuOff(g, v);
  const hex = (x: number) => `0x${x.toString(16)}`;
  const lines = [`vcpu${v}: PMR ${hex(m[vb + VCPU.off.pmr]!)}, running priority ${hex(runningPriority(m, vb))}, group enables ${m[vb + VCPU.off.eng0]}/${m[vb + VCPU.off.eng1]}, mode ${m[vb + VCPU.off.mode]}, requests ${hex(m[vb + VCPU.off.requests]!)}`];
  const used = m[vb + VCPU.off.usedLrs]!;
  const lrs: string[] = [];
  for (let i = 0; i < used; i++) {
    const lb = vb + VCPU.off.lr + i * LR.size;
    const st = m[lb + LR.off.state]!;
    lrs.push(`LR${i} INTID ${m[lb + LR.off.intid]} ${st === 0 ? 'invalid' : `${st & 1 ? 'P' : ''}${st & 2 ? 'A' : ''}`} prio ${hex(m[lb + LR.off.priority]!)} group ${m[lb + LR.off.group]}`);
  }
  lines.push(`  LRs (${used} of ${m[vb + VCPU.off.nrLr]} in use): ${lrs.length ? lrs.join('; ') : 'none'}`);
  const list: string[] = [];
  for (let r = m[vb + VCPU.off.apHead]!, n = 0; r >= 0 && n++ < 64; r = m[irqOff(g, r) + IRQ.off.next]!) {
    const b = irqOff(g, r);
    const flags = `${irqIsPending(m, b) ? 'P' : ''}${m[b + IRQ.off.active] ? 'A' : ''}${m[b + IRQ.off.enabled] ? '' : ' disabled'}${m[b + IRQ.off.onLr] ? ' onLr' : ''}`;
    list.push(`INTID ${m[b + IRQ.off.intid]} ${flags} prio ${hex(m[b + IRQ.off.priority]!)} group ${m[b + IRQ.off.group]} target ${m[b + IRQ.off.target]}`);
  }
  lines.push(`  ap_list: ${list.length ? list.join('; ') : 'empty'}`);
  return lines.join('\n');
}

/** Per vCPU thread: the candidate and how many eligible steps it has waited. */
export class DeliveryWatch {
  private readonly m: Int32Array;
  private readonly acksIdx: number;
  private readonly now: Candidate = { rec: -1, lr: -1 };
  private rec = -1;
  private waited = 0;
  private acks = -1;
  /** History seq and schedule step when the current candidate was first seen. */
  private sinceSeq = 0;
  private sinceStep = -1;

  constructor(private readonly h: Host, private readonly v: number, private readonly bound = DELIVERY_BOUND) {
    this.m = unchecked(h.m);
    this.acksIdx = vcpuOff(h.g, v) + VCPU.off.counters + CTR.acks;
  }

  /** One eligible step. The message of a violation, or null. */
  step(): string | null {
    const acks = this.m[this.acksIdx]!;
    if (acks !== this.acks) {
      this.acks = acks;
      this.rec = -1;
    }
    const c = deliveryCandidate(this.m, this.h.g, this.v, this.now);
    // Nothing it can take now (PMR, running priority, group): the wait pauses, it does not restart.
    if (c.rec < 0) return null;
    if (c.rec !== this.rec) {
      this.rec = c.rec;
      this.waited = 0;
      this.sinceSeq = this.h.hist?.nextSeq() ?? 0;
      this.sinceStep = scheduleStepHook?.() ?? -1;
    }
    if (++this.waited <= this.bound) return null;
    return this.report();
  }

  private report(): string {
    const { m, h, v } = this;
    const g = h.g;
    const b = irqOff(g, this.rec);
    const intid = m[b + IRQ.off.intid]!;
    const where = this.now.lr >= 0 ? `pending in LR${this.now.lr}` : 'queued on its ap_list, in no LR';
    const at = scheduleStepHook?.() ?? -1;
    return `bounded delivery: INTID ${intid} (priority 0x${m[b + IRQ.off.priority]!.toString(16)}, ${where}) has been deliverable to vcpu${v} for ${this.waited} of its eligible guest steps (in guest mode, IRQs unmasked, nothing better to take) without being acknowledged, since ${this.sinceEvent(intid)} (schedule step ${this.sinceStep}); now schedule step ${at}: a queue without a kick, a lost kick, a flush that skips it, or a CPU interface that does not signal it\n${describeVcpuIrqState(m, g, v)}`;
  }

  /** The last event about the interrupt (or this vCPU's VMCR) before it became the candidate. */
  private sinceEvent(intid: number): string {
    const hist = this.h.hist;
    if (!hist) return 'an unrecorded event';
    const { events } = readHistory(hist.buffers);
    let last = null;
    for (const e of events) {
      if (e.seq >= this.sinceSeq) break;
      const mine = e.intid === intid && (intid >= 32 || e.vcpu === this.v);
      if (mine || (e.vcpu === this.v && e.kind === EventKind.VMCR)) last = e;
    }
    return last ? `event ${formatEvent(last)}` : 'before the recorded history';
  }
}
