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
import { IN_GUEST_MODE } from '../uapi/kvm.js';
import type { VcpuRunner } from '../kvm/vcpu-runner.js';
import { VCPU, CTR, EXIT } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import { deliverableLr, MIN_BPR0, MIN_BPR1 } from '../vgic/cpu-interface.js';
import type { VcpuCpuIf } from '../vgic/vcpu-cpuif.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { route, ROUTE_GICV, routedRead, routedWrite } from '../vgic/mmio/dispatch.js';
import { giccRead, giccWrite } from '../vgic/mmio/gicc.js';
import { SYSREGS_BY_NAME, type SysregName } from '../kvm/sys-regs.js';
import { dispatchSgiWords } from '../vgic/sgi-v3.js';
import { GicDriver } from './gic-driver.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { wordWaitHook, yieldHook } from '../sync/wait-hooks.js';
import { DeliveryWatch } from '../check/delivery.js';
import { InvariantError } from '../check/invariants.js';
import { stopVmNow } from '../vgic/halt.js';
import { deadlineIdx } from '../kvm/timer/arch-timer.js';
import { physCounter } from '../kvm/timer/counter.js';

export type IrqHandler = (cpu: GuestCpu) => void;

/** KVM_EXIT_MMIO handler supplied by the VMM; runs on the vCPU thread after KVM_RUN returns. */
export interface UserMmioHandler {
  read(gpa: number, len: number, vcpu: number): number;
  write(gpa: number, len: number, value: number, vcpu: number): void;
}

export type SgiTargets = readonly number[] | 'others' | 'self';

export class GuestCpu {
  /** vcpu_idx: this vCPU's creation index (equal to vcpuId when the VMM creates ids in order). */
  readonly id: number;
  /** vcpu_id: the id the VMM gave KVM_CREATE_VCPU, from which MPIDR_EL1's affinity is built. */
  readonly vcpuId: number;
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
  /** This vCPU's CPU interface (owned by its run loop). */
  private readonly cif: VcpuCpuIf;
  private readonly h: Host;
  private readonly m: Int32Array;
  private readonly modeIdx: number;
  private readonly vb: number;
  /** Index of this vCPU's counters (own thread: plain increments). */
  private readonly ctr: number;
  /** The timers' next host-PPI time (Float64 view index of VCPU.timerDeadline). */
  private readonly f: Float64Array;
  private readonly dlIdx: number;
  private irqOn = false;
  private inHandler = false;
  private handler: IrqHandler | null = null;
  private readonly userMmio: UserMmioHandler;
  /** Guest-side GIC driver helpers (trapped MMIO writes). */
  readonly driver: GicDriver;

  constructor(r: VcpuRunner, nrVcpus: number, userMmio: UserMmioHandler) {
    this.r = r;
    this.cif = r.cif;
    this.h = r.h;
    // Controlled stress runs (the schedule is installed and history recorded): bounded delivery.
    this.delivery = wordWaitHook && r.h.hist ? new DeliveryWatch(r.h, r.v) : null;
    this.m = r.h.m;
    this.id = r.v;
    this.vcpuId = this.m[vcpuOff(r.h.g, r.v) + VCPU.off.vcpuId]!;
    this.nrVcpus = nrVcpus;
    this.gic = this.m[D.model]!;
    this.ram = new Int32Array(r.h.buf.ram);
    this.modeIdx = r.modeIdx;
    this.vb = vcpuOff(r.h.g, r.v);
    this.ctr = this.vb + VCPU.off.counters;
    this.f = r.h.f;
    this.dlIdx = deadlineIdx(r.h, r.v);
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
    // The architected timer's output raises the host PPI (one compare while no timer is armed).
    const dl = this.f[this.dlIdx]!;
    if (dl !== Infinity && dl <= physCounter(this.h)) this.r.timerIrq();
    // A plain load: this is the CPU noticing the kick's IPI, not a kernel access, and nothing read
    // after it depends on it (the exit publishes OUTSIDE_GUEST_MODE and reads requests with
    // Atomics). A stale IN_GUEST_MODE only takes the IPI at a later boundary, as a late IPI would;
    // the Atomics call it replaces was a builtin call at every guest instruction (layouts.ts, mode).
    if (this.cif.maint || this.m[this.modeIdx] !== IN_GUEST_MODE) this.r.exitForInterrupt();
    if (this.irqOn && this.cif.pendHint > 0) this.takeIrq();
    // An eligible step (in guest mode, IRQs unmasked, not in the handler) after taking what the
    // CPU interface signalled: whatever is still deliverable has waited one more step.
    if (this.delivery && this.irqOn) {
      const bad = this.delivery.step();
      if (bad) {
        // Stop the others inside the schedule, so the report's run is the same run again.
        stopVmNow(this.h, this.nrVcpus);
        throw new InvariantError(bad);
      }
    }
  }

  private readonly delivery: DeliveryWatch | null;

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

  /**
   * Sleep until `done()` holds: WFI with IRQs masked, unmasking between WFIs to take what woke
   * it (the kernel selftests' idiom). An interrupt taken between the check and a WFI with IRQs
   * unmasked would leave that WFI waiting for the next one; a pending one wakes WFI while masked.
   * Returns with IRQs unmasked.
   */
  wfiUntil(done: () => boolean): void {
    this.disableIrqs();
    while (!done()) {
      this.wfi();
      this.enableIrqs();
      this.disableIrqs();
    }
    this.enableIrqs();
  }

  // ---- CPU interface ------------------------------------------------------------------------
  // Each access is an instruction boundary, then the vCPU's CPU interface (vgic/vcpu-cpuif.ts),
  // the same object the GICC and ICC register rows use.

  /** Acknowledge: ICC_IAR1_EL1 (v3) / GICC_IAR (v2). Returns the INTID or 1023. */
  iar(group = 1): number {
    this.b();
    return this.cif.iar(this.gic === 2 ? -1 : group);
  }
  /** End of interrupt: ICC_EOIR1_EL1 / GICC_EOIR. */
  eoi(intid: number, group = 1): void {
    this.b();
    this.cif.eoi(intid, this.gic === 2 ? -1 : group);
  }
  /** Deactivate: ICC_DIR_EL1 / GICC_DIR (EOImode = 1). */
  dir(intid: number): void {
    this.b();
    this.cif.dir(intid);
  }
  hppir(group = 1): number {
    this.b();
    return this.cif.hppir(this.gic === 2 ? -1 : group);
  }
  rpr(): number {
    this.b();
    return this.cif.rpr();
  }
  get pmr(): number {
    this.b();
    return this.cif.pmr;
  }
  set pmr(v: number) {
    this.b();
    this.cif.pmr = v;
  }
  get bpr0(): number {
    this.b();
    return this.cif.bpr0;
  }
  set bpr0(v: number) {
    this.b();
    this.cif.bpr0 = v;
  }
  get bpr1(): number {
    this.b();
    return this.cif.bpr1;
  }
  set bpr1(v: number) {
    this.b();
    this.cif.bpr1 = v;
  }
  /** EOImode: false = EOI drops priority and deactivates; true = EOI drops, DIR deactivates. */
  setEoiMode(split: boolean): void {
    this.b();
    this.cif.setEoiMode(split);
  }
  /** Group enables (ICC_IGRPEN0/1_EL1, GICC_CTLR.EnableGrp0/1). */
  enableGroup(group: number, on = true): void {
    this.b();
    this.cif.enableGroup(group, on);
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
    return reg.read(this.cif);
  }
  /**
   * MRS MPIDR_EL1: KVM's reset value (reset_mpidr), RES1 bit 31 over the affinity built from
   * vcpu_id. The guest reads it from VMPIDR_EL2 without a trap.
   */
  mpidr(): bigint {
    this.b();
    return (1n << 31n) | BigInt(this.m[this.vb + VCPU.off.mpidr]!);
  }
  /** Write a GICv3 CPU-interface system register; SGI generation registers trap to the host. */
  sysregWrite(name: SysregName, value: bigint | number): void {
    this.b();
    const reg = SYSREGS_BY_NAME.get(name);
    if (!reg?.write) throw new Error(`vCPU ${this.id}: ${name} is not writable`);
    const val = BigInt.asUintN(64, BigInt(value));
    if (reg.trap) {
      this.r.exit(EXIT.sysreg);
      reg.write(this.cif, val);
      this.r.enter();
    } else reg.write(this.cif, val);
    this.b();
  }

  /**
   * Send SGI `intid` (0-15) to `targets`: a list of vCPUs, 'others' (all but me) or 'self'.
   * v3: composes ICC_SGI1R_EL1 (affinity routing), so list entries are vcpu_ids (their MPIDR
   * affinity); v2: writes GICD_SGIR, whose target list bits are CPU interface numbers (vcpu_idx).
   */
  sendSgi(intid: number, targets: SgiTargets): void {
    if (this.gic === 3) {
      // ICC_SGI1R_EL1 write: a trapped sysreg access. Compose its two 32-bit halves directly (the
      // generic sysregWrite path works on a u64 BigInt, which costs more than the whole IPI).
      const sgi = (intid & 15) << 24;
      this.b();
      this.r.exit(EXIT.sysreg);
      if (targets === 'others') dispatchSgiWords(this.h, this.id, sgi, 1 << 8, true);
      else if (targets === 'self') dispatchSgiWords(this.h, this.id, sgi | (((this.vcpuId >> 4) & 0xff) << 16) | (1 << (this.vcpuId & 15)), 0, true);
      else {
        // One write per Aff1 cluster; vcpu_id i has Aff0 = i & 15, Aff1 = i >> 4 (KVM's reset MPIDR).
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

  /** MMIO read of `len` bytes (1, 2, 4 or 8; 8 returns up to 2^53 exactly). */
  mmioRead(gpa: number, len = 4): number {
    this.b();
    // One decode per access: the frame offset of a trapped access, or which other kind it is.
    const off = route(this.h, this.id, gpa);
    if (off >= 0) {
      this.r.exit(EXIT.mmio_kernel);
      const v = routedRead(this.h, this.id, off, len);
      this.r.enter();
      return v;
    }
    if (off === ROUTE_GICV) return giccRead(this.cif, gpa - this.giccBase, len);
    // KVM_EXIT_MMIO: KVM_RUN returns to the VMM on this thread, which emulates and re-enters.
    this.r.exit(EXIT.mmio_user);
    this.r.kvmRunReturn();
    const v = this.userMmio.read(gpa, len, this.id);
    this.r.kvmRunEnter();
    return v;
  }

  mmioWrite(gpa: number, value: number, len = 4): void {
    this.b();
    const off = route(this.h, this.id, gpa);
    if (off >= 0) {
      this.r.exit(EXIT.mmio_kernel);
      routedWrite(this.h, this.id, off, len, value);
      this.r.enter();
      return;
    }
    if (off === ROUTE_GICV) {
      giccWrite(this.cif, gpa - this.giccBase, len, value);
      this.b();
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
}

export { MIN_BPR0, MIN_BPR1 };
