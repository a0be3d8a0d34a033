/**
 * GuestCpu: what a guest program drives. Every method is an instruction boundary: there the CPU
 * exits to the host if it was kicked (mode flipped to EXITING) or a maintenance interrupt is due,
 * and, with interrupts unmasked, takes the highest-priority deliverable LR by calling the guest's
 * IRQ handler (with interrupts masked, as taking an exception does).
 *
 * The guest never takes a lock. Operations that trap in KVM (distributor/redistributor MMIO, SGI
 * generation system registers, WFI, MMIO outside the GIC) exit to host code on this same thread;
 * the CPU interface (ICC_* system registers on v3, the GICV frame on v2) is "hardware" and runs
 * directly on the list registers.
 */
import { KVM_VGIC_V2_CPU_SIZE, KVM_VGIC_V2_DIST_SIZE, KVM_VGIC_V3_DIST_SIZE, IN_GUEST_MODE } from '../kvm/uapi.js';
import type { VcpuRunner } from '../kvm/vcpu-runner.js';
import { VCPU, CTR, EXIT, IRQ } from '../shm/layouts.js';
import { EventKind } from '../check/events.js';
import { irqRecord } from '../vgic/irq.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import { ackTraceInfo, cpuDir, cpuEoir, cpuHppir, cpuIar, Deact, deliverableLr, runningPriority, validLrCount, readBpr0, readBpr1, MIN_BPR0, MIN_BPR1 } from '../vgic/cpu-interface.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { vgicMmioRead, vgicMmioWrite } from '../vgic/mmio/dispatch.js';
import { vgicDeactivate } from '../vgic/dir-trap.js';
import { giccRead, giccWrite } from '../vgic/mmio/gicc.js';
import { SYSREGS_BY_NAME, type SysregName } from '../vgic/sysregs.js';
import { dispatchSgiWords } from '../vgic/sgi-v3.js';
import { GicDriver } from './gic-driver.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { yieldHook } from '../sync/wait-hooks.js';

export type IrqHandler = (cpu: GuestCpu) => void;

/** KVM_EXIT_MMIO handler supplied by the VMM; runs on the vCPU thread after KVM_RUN returns. */
export interface UserMmioHandler {
  read(gpa: number, len: number, vcpu: number): number;
  write(gpa: number, len: number, value: number, vcpu: number): void;
}

export type SgiTargets = readonly number[] | 'others' | 'self';

export class GuestCpu {
  /** vCPU id. */
  readonly id: number;
  /** 2 or 3 (0 without an in-kernel GIC). */
  readonly gic: number;
  /** Number of vCPUs of the VM. */
  readonly nrVcpus: number;
  /** Guest RAM as 32-bit words, shared by all vCPUs. Use load/store/add for cross-vCPU flags. */
  readonly ram: Int32Array;
  /** Guest-physical base of the distributor, CPU interface (v2) and this vCPU's redistributor (v3). */
  readonly gicdBase: number;
  readonly giccBase: number;
  readonly gicrBase: number;

  private readonly r: VcpuRunner;
  private readonly h: Host;
  private readonly m: Int32Array;
  private readonly modeIdx: number;
  private readonly vb: number;
  /** Index of this vCPU's counters (own thread: plain increments). */
  private readonly ctr: number;
  private irqOn = false;
  private inHandler = false;
  private handler: IrqHandler | null = null;
  private readonly userMmio: UserMmioHandler;
  /** Guest-side GIC driver helpers (trapped MMIO writes). */
  readonly driver: GicDriver;

  constructor(r: VcpuRunner, nrVcpus: number, userMmio: UserMmioHandler) {
    this.r = r;
    this.h = r.h;
    this.m = r.h.m;
    this.id = r.v;
    this.nrVcpus = nrVcpus;
    this.gic = this.m[D.model]!;
    this.ram = new Int32Array(r.h.buf.ram);
    this.modeIdx = r.modeIdx;
    this.vb = vcpuOff(r.h.g, r.v);
    this.ctr = this.vb + VCPU.off.counters;
    this.gicdBase = r.h.f[D.distBase / 2]!;
    this.giccBase = r.h.f[D.cpuBase / 2]!;
    this.gicrBase = r.h.f[(this.vb + VCPU.off.rdBase) / 2]!;
    this.userMmio = userMmio;
    this.driver = new GicDriver(this);
  }

  // ---- the instruction boundary -------------------------------------------------------------

  /** Exit if kicked or maintenance is due; take an interrupt if one is deliverable. */
  private b(): void {
    schedPoint(SchedPoint.GuestBoundary, this.id);
    if (this.r.maint || Atomics.load(this.m, this.modeIdx) !== IN_GUEST_MODE) this.r.exitForInterrupt();
    if (this.irqOn && this.r.pendHint > 0) this.takeIrq();
  }

  private takeIrq(): void {
    if (deliverableLr(this.h, this.id) < 0) return;
    if (!this.handler) throw new Error(`vCPU ${this.id}: IRQ taken with no handler installed (cpu.onIrq)`);
    this.m[this.ctr + CTR.irqsTaken]!++;
    this.irqOn = false;
    this.inHandler = true;
    try {
      this.handler(this);
    } finally {
      this.inHandler = false;
      this.irqOn = true;
    }
  }

  // ---- PSTATE and handlers ------------------------------------------------------------------

  /** Install the IRQ exception handler. */
  onIrq(handler: IrqHandler): void {
    this.handler = handler;
  }
  /** Unmask IRQs (msr daifclr, #2). Inside a handler, takes effect when the handler returns. */
  enableIrqs(): void {
    if (!this.inHandler) this.irqOn = true;
    this.b();
  }
  /** Mask IRQs (msr daifset, #2). */
  disableIrqs(): void {
    this.irqOn = false;
    this.b();
  }
  get irqsEnabled(): boolean {
    return this.irqOn;
  }

  /** A no-op instruction boundary, for spin loops (yield/nop). */
  relax(): void {
    this.b();
    // A spin-wait hint (cpu_relax/yield): under a controlled scheduler, let other threads run.
    if (yieldHook) yieldHook();
  }

  /** Wait for interrupt: exits to the host, which blocks until this vCPU is runnable. */
  wfi(): void {
    this.b();
    this.r.wfi();
    this.b();
  }

  // ---- CPU interface ------------------------------------------------------------------------

  private traceEoi(value: number, d: Deact): void {
    const id = value & 0xffffff;
    if (id >= 1020 && id <= 1023) return;
    this.h.hist!.record(EventKind.EOI, value, this.id, 0, 0);
    if (d === Deact.Done || d === Deact.Maintenance) this.traceDeact(value);
  }

  private traceDeact(value: number): void {
    const r = irqRecord(this.h, this.id, this.gic === 2 ? value & 0x3ff : value & 0xffffff);
    const level = r >= 0 ? this.m[irqOff(this.h.g, r) + IRQ.off.config]! : 0;
    this.h.hist!.record(EventKind.DEACT, value, this.id, level, 0);
  }

  private afterDeact(d: Deact): void {
    if (d === Deact.Maintenance) this.r.maint = true;
    else if (d === Deact.Counted) {
      // LRENPIE: EOIcount moved while actives live outside the LRs.
      if (this.m[this.vb + VCPU.off.lrenpie]) this.r.maint = true;
      return;
    } else if (d === Deact.None) return;
    // Underflow maintenance: at most one valid LR left while entries wait on the ap_list.
    if (this.m[this.vb + VCPU.off.uie] && validLrCount(this.h, this.id) <= 1) this.r.maint = true;
  }

  /** Acknowledge: ICC_IAR1_EL1 (v3) / GICC_IAR (v2). Returns the INTID or 1023. */
  iar(group = 1): number {
    this.b();
    const id = cpuIar(this.h, this.id, this.gic === 2 ? -1 : group);
    if (id !== 1023) {
      // NPIE: more pending interrupts than LRs, and none of the LRs is pending any more.
      if (--this.r.pendHint <= 0 && this.m[this.vb + VCPU.off.npie]) this.r.maint = true;
      this.m[this.ctr + CTR.acks]!++;
      if (this.h.hist) {
        const [prio, best] = ackTraceInfo(this.h, this.id, this.gic === 2 ? id & 0x3ff : id);
        this.h.hist.record(EventKind.ACK, id, this.id, prio, best);
      }
    } else this.m[this.ctr + CTR.spuriousAcks]!++;
    return id;
  }
  /** End of interrupt: ICC_EOIR1_EL1 / GICC_EOIR. */
  eoi(intid: number, group = 1): void {
    this.b();
    // Writes of the special INTIDs 1020-1023 are ignored by the CPU interface: not an EOI.
    const id = intid & 0xffffff;
    if (id < 1020 || id > 1023) this.m[this.ctr + CTR.eois]!++;
    const d = cpuEoir(this.h, this.id, intid, this.gic === 2 ? -1 : group);
    if (this.h.hist) this.traceEoi(intid, d);
    this.afterDeact(d);
  }
  /** Deactivate: ICC_DIR_EL1 / GICC_DIR (EOImode = 1). */
  dir(intid: number): void {
    this.b();
    // Mainline never maps the GICV page holding GICC_DIR into the guest: every write traps.
    const d = this.gic === 2 && !this.h.classicLr ? Deact.Trap : cpuDir(this.h, this.id, intid);
    let done = d === Deact.Done || d === Deact.Maintenance;
    if (d === Deact.Trap) {
      this.r.exit(this.gic === 2 ? EXIT.mmio_kernel : EXIT.sysreg);
      done = vgicDeactivate(this.h, this.id, intid);
      this.r.enter();
    }
    if (done) this.m[this.ctr + CTR.deactivations]!++;
    if (this.h.hist && done) this.traceDeact(intid);
    if (d === Deact.Trap) return;
    this.afterDeact(d);
  }
  hppir(group = 1): number {
    this.b();
    return cpuHppir(this.h, this.id, this.gic === 2 ? -1 : group);
  }
  rpr(): number {
    this.b();
    return runningPriority(this.m, this.vb);
  }
  get pmr(): number {
    this.b();
    return this.m[this.vb + VCPU.off.pmr]!;
  }
  set pmr(v: number) {
    this.b();
    this.m[this.vb + VCPU.off.pmr] = v & 0xf8;
  }
  get bpr0(): number {
    this.b();
    return readBpr0(this.m, this.vb);
  }
  set bpr0(v: number) {
    this.b();
    this.m[this.vb + VCPU.off.bpr0] = Math.max(v & 7, MIN_BPR0);
  }
  get bpr1(): number {
    this.b();
    return readBpr1(this.m, this.vb);
  }
  set bpr1(v: number) {
    this.b();
    if (!this.m[this.vb + VCPU.off.cbpr]) this.m[this.vb + VCPU.off.bpr1] = Math.max(v & 7, MIN_BPR1);
  }
  /** EOImode: false = EOI drops priority and deactivates; true = EOI drops, DIR deactivates. */
  setEoiMode(split: boolean): void {
    this.b();
    this.m[this.vb + VCPU.off.eoiMode] = split ? 1 : 0;
  }
  /** Group enables (ICC_IGRPEN0/1_EL1, GICC_CTLR.EnableGrp0/1). */
  enableGroup(group: number, on = true): void {
    this.b();
    this.m[this.vb + (group ? VCPU.off.eng1 : VCPU.off.eng0)] = on ? 1 : 0;
  }
  /**
   * The usual CPU-interface bring-up of a guest kernel: PMR = 0xFF, enable group 1 on v3 (group 0
   * and 1 on v2, whose interrupts default to group 0).
   */
  initCpuInterface(): void {
    this.pmr = 0xff;
    this.enableGroup(1);
    if (this.gic === 2) this.enableGroup(0);
  }

  // ---- system registers (v3) ----------------------------------------------------------------

  /** Read a GICv3 CPU-interface system register by name. */
  sysregRead(name: SysregName): bigint {
    this.b();
    const reg = SYSREGS_BY_NAME.get(name);
    if (!reg?.read) throw new Error(`vCPU ${this.id}: ${name} is not readable`);
    return reg.read(this);
  }
  /** Write a GICv3 CPU-interface system register; SGI generation registers trap to the host. */
  sysregWrite(name: SysregName, value: bigint | number): void {
    this.b();
    const reg = SYSREGS_BY_NAME.get(name);
    if (!reg?.write) throw new Error(`vCPU ${this.id}: ${name} is not writable`);
    const val = BigInt.asUintN(64, BigInt(value));
    if (reg.trap) {
      this.r.exit(EXIT.sysreg);
      reg.write(this, val);
      this.r.enter();
    } else reg.write(this, val);
    this.b();
  }

  /** @internal host side of trapped sysregs and GICC: run with the runner's Host. */
  get host(): Host {
    return this.h;
  }

  /**
   * Send SGI `intid` (0-15) to `targets`: a list of vCPU ids, 'others' (all but me) or 'self'.
   * v3: composes ICC_SGI1R_EL1 (affinity routing); v2: writes GICD_SGIR (target list filter).
   */
  sendSgi(intid: number, targets: SgiTargets): void {
    if (this.gic === 3) {
      // ICC_SGI1R_EL1 write: a trapped sysreg access. Compose its two 32-bit halves directly (the
      // generic sysregWrite path works on a u64 BigInt, which costs more than the whole IPI).
      const sgi = (intid & 15) << 24;
      this.b();
      this.r.exit(EXIT.sysreg);
      if (targets === 'others') dispatchSgiWords(this.h, this.id, sgi, 1 << 8, true);
      else if (targets === 'self') dispatchSgiWords(this.h, this.id, sgi | ((this.id >> 4) << 16) | (1 << (this.id & 15)), 0, true);
      else {
        // One write per Aff1 cluster; vCPU i has Aff0 = i & 15, Aff1 = i >> 4 (KVM's reset MPIDR).
        let done = 0;
        for (let k = 0; k < targets.length; k++) {
          const aff1 = targets[k]! >> 4;
          if (done & (1 << (aff1 & 31))) continue;
          done |= 1 << (aff1 & 31);
          let list = 0;
          for (let j = k; j < targets.length; j++) if (targets[j]! >> 4 === aff1) list |= 1 << (targets[j]! & 15);
          dispatchSgiWords(this.h, this.id, sgi | (aff1 << 16) | list, 0, true);
        }
      }
      this.r.enter();
      return;
    }
    let v: number;
    if (targets === 'others') v = (1 << 24) | (intid & 15);
    else if (targets === 'self') v = (2 << 24) | (intid & 15);
    else {
      let list = 0;
      for (const t of targets) list |= 1 << t;
      v = ((list & 0xff) << 16) | (intid & 15);
    }
    this.mmioWrite(this.gicdBase + 0xf00, v, 4);
  }

  // ---- MMIO ---------------------------------------------------------------------------------
  // After a trapped access, enter() has just published IN_GUEST_MODE and re-checked requests, so
  // there is no second boundary here: the next call's boundary takes anything that arrived since.

  private inGicc(gpa: number): boolean {
    return this.gic === 2 && gpa >= this.giccBase && gpa < this.giccBase + KVM_VGIC_V2_CPU_SIZE;
  }
  private inGicFrame(gpa: number): boolean {
    if (this.gic === 2) return gpa >= this.gicdBase && gpa < this.gicdBase + KVM_VGIC_V2_DIST_SIZE;
    if (this.gic === 3) {
      if (gpa >= this.gicdBase && gpa < this.gicdBase + KVM_VGIC_V3_DIST_SIZE) return true;
      // Most non-distributor accesses are device MMIO far from every redistributor: test the
      // regions' bounding box first. Regions are only ever appended, so their count tells when
      // the box must be recomputed.
      const n = this.m[D.nrRdistRegions]!;
      if (n !== this.rdRegionsSeen) this.rdBox(n);
      if (gpa >= this.rdLo && gpa < this.rdHi && vgicRedistOwner(this.h, gpa) >= 0) return true;
      return this.m[D.nrIts]! > 0 && itsByFrame(this.h, gpa) >= 0;
    }
    return false;
  }

  private rdRegionsSeen = -1;
  private rdLo = 0;
  private rdHi = 0;
  private rdBox(n: number): void {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const r = readRegion(this.h, i);
      lo = Math.min(lo, r.base);
      hi = Math.max(hi, r.base + regionSize(this.h, r));
    }
    this.rdLo = lo;
    this.rdHi = hi;
    this.rdRegionsSeen = n;
  }

  /** MMIO read of `len` bytes (1, 2, 4 or 8; 8 returns up to 2^53 exactly). */
  mmioRead(gpa: number, len = 4): number {
    this.b();
    if (this.inGicc(gpa)) return giccRead(this, gpa - this.giccBase, len);
    if (this.inGicFrame(gpa)) {
      this.r.exit(EXIT.mmio_kernel);
      const v = vgicMmioRead(this.h, this.id, gpa, len);
      this.r.enter();
      return v;
    }
    // KVM_EXIT_MMIO: KVM_RUN returns to the VMM on this thread, which emulates and re-enters.
    this.r.exit(EXIT.mmio_user);
    this.r.kvmRunReturn();
    const v = this.userMmio.read(gpa, len, this.id);
    this.r.kvmRunEnter();
    return v;
  }

  mmioWrite(gpa: number, value: number, len = 4): void {
    this.b();
    if (this.inGicc(gpa)) {
      giccWrite(this, gpa - this.giccBase, len, value);
      this.b();
      return;
    }
    if (this.inGicFrame(gpa)) {
      this.r.exit(EXIT.mmio_kernel);
      vgicMmioWrite(this.h, this.id, gpa, len, value);
      this.r.enter();
      return;
    }
    this.r.exit(EXIT.mmio_user);
    this.r.kvmRunReturn();
    this.userMmio.write(gpa, len, value, this.id);
    this.r.kvmRunEnter();
  }

  // ---- guest RAM ----------------------------------------------------------------------------

  /** Atomic 32-bit load of RAM word `i` (an instruction boundary). */
  load(i: number): number {
    this.b();
    return Atomics.load(this.ram, i);
  }
  store(i: number, v: number): void {
    this.b();
    Atomics.store(this.ram, i, v);
  }
  add(i: number, v: number): number {
    this.b();
    return Atomics.add(this.ram, i, v);
  }

  /** @internal for the GICC/sysreg tables */
  get runner(): VcpuRunner {
    return this.r;
  }
  /** @internal */
  noteDeactivation(d: Deact): void {
    this.afterDeact(d);
  }
}

import { itsByFrame } from '../vgic/its/translate.js';
import { vgicRedistOwner } from '../vgic/mmio/dispatch.js';
import { readRegion, regionSize } from '../vgic/rdist.js';
export { MIN_BPR0, MIN_BPR1 };
