/**
 * One vCPU's virtual CPU interface as a guest drives it: the single implementation behind
 * GuestCpu's methods, the GICv2 GICC register rows and the GICv3 ICC_* system register rows.
 * It owns what an access changes besides the list registers: the statistics counters, the
 * pending hint the instruction boundary looks at, the maintenance flag (an EOI-bit LR went
 * invalid; UIE, NPIE, LRENPIE conditions), the history records and the DIR trap.
 *
 * Runs only on the vCPU's own thread, between entry and exit, so its words are touched plainly.
 * Group arguments: 0 or 1 for a register of that group, -1 for GICv2's GICC_IAR/EOIR/HPPIR,
 * which serve either group.
 */
import { unchecked } from '../check/lockset/view.js';
import { VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { DEACT_BY_DIR, DEACT_BY_EOI, EventKind } from '../record/events.js';
import { traceVmcr } from './trace.js';
import { CTR, EXIT, IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import { ackTraceInfo, cpuDir, cpuEoir, cpuHppir, cpuIar, Deact, MIN_BPR0, MIN_BPR1, readBpr0, readBpr1, runningPriority, validLrCount } from './cpu-interface.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { irqRecord } from './irq.js';
import { vgicDeactivate } from './dir-trap.js';

const isSpecial = (intid: number) => intid >= 1020 && intid <= 1023;

/**
 * What the CPU interface needs of its vCPU's run loop (kvm/vcpu-runner.ts implements it): a trapped
 * access is a world switch out and back in. An interface here, so the vgic does not import kvm/.
 */
export interface WorldSwitch {
  readonly h: Host;
  /** vCPU index (creation order). */
  readonly v: number;
  /** Leave guest mode for `reason` (an EXIT index): fold and prune. */
  exit(reason: number): void;
  /** Back into the guest: requests, flush, publish IN_GUEST_MODE. */
  enter(): void;
}

export class VcpuCpuIf {
  readonly h: Host;
  /** vCPU index (creation order). */
  readonly v: number;
  /** LRs with the pending bit since the last entry (set by the run loop, lowered by acks). */
  pendHint = 0;
  /** A maintenance interrupt is due: the guest exits at its next instruction boundary. */
  maint = false;
  private readonly m: Int32Array;
  private readonly vb: number;
  private readonly ctr: number;
  private readonly r: WorldSwitch;

  constructor(r: WorldSwitch) {
    this.r = r;
    this.h = r.h;
    this.v = r.v;
    this.m = r.h.m;
    this.vb = vcpuOff(r.h.g, r.v);
    this.ctr = this.vb + VCPU.off.counters;
  }

  private get v2(): boolean {
    return this.m[D.model] === VGIC_MODEL_V2;
  }

  /** Acknowledge (ICC_IAR0/1_EL1, GICC_IAR, GICC_AIAR). Returns the INTID or 1023. */
  iar(grp: number): number {
    const id = cpuIar(this.h, this.v, grp);
    if (id === 1023) {
      this.m[this.ctr + CTR.spuriousAcks]!++;
      return id;
    }
    // NPIE: more pending interrupts than LRs, and none of the LRs is pending any more.
    if (--this.pendHint <= 0 && this.m[this.vb + VCPU.off.npie]) this.maint = true;
    this.m[this.ctr + CTR.acks]!++;
    if (this.h.hist) {
      const [prio, best] = ackTraceInfo(this.h, this.v, this.v2 ? id & 0x3ff : id);
      this.h.hist.record(EventKind.ACK, id, this.v, prio, best);
    }
    return id;
  }

  /** End of interrupt (ICC_EOIR0/1_EL1, GICC_EOIR, GICC_AEOIR). */
  eoi(value: number, grp: number): void {
    // Writes of the special INTIDs 1020-1023 are ignored by the CPU interface: not an EOI.
    const special = isSpecial(value & 0xffffff);
    if (!special) this.m[this.ctr + CTR.eois]!++;
    const d = cpuEoir(this.h, this.v, value, grp);
    if (this.h.hist && !special) {
      this.h.hist.record(EventKind.EOI, value, this.v, 0, 0);
      if (d === Deact.Done || d === Deact.Maintenance) this.traceDeact(value, DEACT_BY_EOI);
    }
    this.afterDeact(d);
  }

  /** Deactivate (ICC_DIR_EL1, GICC_DIR; EOImode = 1). */
  dir(value: number): void {
    // Mainline never maps the GICV page holding GICC_DIR into the guest: every write traps.
    const d = this.v2 && !this.h.classicLr ? Deact.Trap : cpuDir(this.h, this.v, value);
    let done = d === Deact.Done || d === Deact.Maintenance;
    if (d === Deact.Trap) {
      this.r.exit(this.v2 ? EXIT.mmio_kernel : EXIT.sysreg);
      done = vgicDeactivate(this.h, this.v, value);
      this.r.enter();
    }
    if (done) this.m[this.ctr + CTR.deactivations]!++;
    // A trapped DIR is recorded where it deactivates, under the irq_lock (dir-trap.ts); the
    // ICACTIVER fallback as the ACTIVE change it is.
    if (this.h.hist && done && d !== Deact.Trap) this.traceDeact(value, DEACT_BY_DIR);
    if (d !== Deact.Trap) this.afterDeact(d);
  }

  /** Highest priority pending interrupt (ICC_HPPIR0/1_EL1, GICC_HPPIR, GICC_AHPPIR). */
  hppir(grp: number): number {
    return cpuHppir(this.h, this.v, grp);
  }
  /** Running priority (ICC_RPR_EL1, GICC_RPR). */
  rpr(): number {
    return runningPriority(this.m, this.vb);
  }
  get pmr(): number {
    return this.m[this.vb + VCPU.off.pmr]!;
  }
  set pmr(v: number) {
    this.m[this.vb + VCPU.off.pmr] = v & 0xf8;
    if (this.h.hist) traceVmcr(this.h, this.v);
  }
  get bpr0(): number {
    return readBpr0(this.m, this.vb);
  }
  set bpr0(v: number) {
    this.m[this.vb + VCPU.off.bpr0] = Math.max(v & 7, MIN_BPR0);
    if (this.h.hist) traceVmcr(this.h, this.v);
  }
  get bpr1(): number {
    return readBpr1(this.m, this.vb);
  }
  /** While CBPR=1, BPR1 is an alias of BPR0 + 1 and writes are ignored (spec §5.1). */
  set bpr1(v: number) {
    if (!this.m[this.vb + VCPU.off.cbpr]) this.m[this.vb + VCPU.off.bpr1] = Math.max(v & 7, MIN_BPR1);
    if (this.h.hist) traceVmcr(this.h, this.v);
  }
  /** EOImode: false = EOI drops priority and deactivates; true = EOI drops, DIR deactivates. */
  setEoiMode(split: boolean): void {
    this.m[this.vb + VCPU.off.eoiMode] = split ? 1 : 0;
    if (this.h.hist) traceVmcr(this.h, this.v);
  }
  /** Group enables (ICC_IGRPEN0/1_EL1, GICC_CTLR.EnableGrp0/1). */
  enableGroup(group: number, on: boolean): void {
    this.m[this.vb + (group ? VCPU.off.eng1 : VCPU.off.eng0)] = on ? 1 : 0;
    if (this.h.hist) traceVmcr(this.h, this.v);
  }

  /** What a deactivation (or its absence) means for maintenance. */
  private afterDeact(d: Deact): void {
    if (d === Deact.Maintenance) this.maint = true;
    else if (d === Deact.Counted) {
      // LRENPIE: EOIcount moved while actives live outside the LRs.
      if (this.m[this.vb + VCPU.off.lrenpie]) this.maint = true;
      return;
    } else if (d === Deact.None) return;
    // Underflow maintenance: at most one valid LR left while entries wait on the ap_list.
    if (this.m[this.vb + VCPU.off.uie] && validLrCount(this.h, this.v) <= 1) this.maint = true;
  }

  private traceDeact(value: number, by: number): void {
    const r = irqRecord(this.h, this.v, this.v2 ? value & 0x3ff : value & 0xffffff);
    // data_race(): the tracer's peek at the trigger mode, not the model's (no irq_lock taken).
    const level = r >= 0 ? unchecked(this.m)[irqOff(this.h.g, r) + IRQ.off.config]! : 0;
    this.h.hist!.record(EventKind.DEACT, value, this.v, level, by);
  }
}
