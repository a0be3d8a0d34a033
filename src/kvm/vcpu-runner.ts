/**
 * The KVM_RUN loop of one vCPU (spec §4.1), running on that vCPU's worker thread.
 *
 *   requests -> flush LRs (own ap_list_lock) -> mode = IN_GUEST -> re-check requests -> guest
 *   -> mode = OUTSIDE -> fold + prune -> handle the exit -> again
 *
 * The guest is the guest program's code; it leaves guest mode only at instruction boundaries
 * (GuestCpu calls), where it looks at `mode` (a kick flips it to EXITING: our "IPI") and at the
 * local maintenance flag.
 */
import { IN_GUEST_MODE, KVM_REQ_SLEEP, KVM_REQ_VGIC_PROCESS_UPDATE, KVM_REQ_VM_DEAD, OUTSIDE_GUEST_MODE, VGIC_EMU_REQ_SIGNAL, VGIC_EMU_REQ_STOP } from '../uapi/kvm.js';
import { KvmError } from '../uapi/errno.js';
import { EXIT, VCPU, CTR } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { BUG } from '../vgic/bugs.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { vgicMapResources } from '../vgic/init.js';
import { lockConfig, lockVcpuMutex, unlockConfig, unlockVcpuMutex } from '../vgic/locks.js';
import { flushLrs, pruneApList, syncHwstate, vcpuHasPendingIrq } from '../vgic/lr.js';
import { flushEmptyMainline } from '../vgic/lr-mainline.js';
import { pendingLrCount } from '../vgic/cpu-interface.js';
import { bumpCounter } from '../vgic/stats.js';
import { VcpuCpuIf } from '../vgic/vcpu-cpuif.js';
import { wordWaitHook } from '../sync/wait-hooks.js';
import { deadlineIdx, kvmArchTimerHandler, timerLoad } from './timer/arch-timer.js';
import { timerEnable } from './timer/timer-enable.js';
import { msUntil, physCounter } from './timer/counter.js';

/** Thrown out of guest code when the VM is being torn down; the run then ends quietly. */
export class VmStopped extends Error {
  constructor() {
    super('VM stopped');
    this.name = 'VmStopped';
  }
}

const PARK_SLICE_MS = 50;

/** The VCPU `signal` word: a signal for the vCPU thread (Vcpu.interrupt / resume). */
export const SIG_NONE = 0;
export const SIG_PENDING = 1;
/** KVM_RUN returned -EINTR (KVM_EXIT_INTR); the thread is in userspace until resume. */
export const SIG_OUT = 2;
const HALT_POLL_MIN_NS = 10_000;
const HALT_POLL_MAX_NS = 50_000;

export class VcpuRunner {
  readonly h: Host;
  readonly v: number;
  readonly m: Int32Array;
  readonly vb: number;
  readonly modeIdx: number;
  readonly reqIdx: number;
  readonly stopIdx: number;
  readonly sigIdx: number;
  /** The guest's CPU interface: pending hint, maintenance flag, counters (vgic/vcpu-cpuif.ts). */
  readonly cif: VcpuCpuIf;
  private haltPollNs = HALT_POLL_MIN_NS;
  private inKvmRun = false;
  /** An in-kernel vgic exists (fixed before the first run: creating one after is EBUSY). */
  private vgic = false;
  private readonly exitsIdx: number;
  private readonly entriesIdx: number;
  private readonly apHeadIdx: number;
  private readonly usedLrsIdx: number;
  private readonly enteringIdx: number;

  constructor(h: Host, v: number) {
    this.h = h;
    this.v = v;
    this.m = h.m;
    this.vb = vcpuOff(h.g, v);
    this.modeIdx = this.vb + VCPU.off.mode;
    this.reqIdx = this.vb + VCPU.off.requests;
    this.stopIdx = D.stop;
    this.sigIdx = this.vb + VCPU.off.signal;
    this.exitsIdx = this.vb + VCPU.off.exits;
    this.entriesIdx = this.vb + VCPU.off.counters + CTR.entries;
    this.apHeadIdx = this.vb + VCPU.off.apHead;
    this.usedLrsIdx = this.vb + VCPU.off.usedLrs;
    this.enteringIdx = this.vb + VCPU.off.entering;
    this.cif = new VcpuCpuIf(this);
  }

  /** KVM_RUN: take vcpu->mutex for its whole duration; first-run setup; enter the guest. */
  kvmRunEnter(): void {
    lockVcpuMutex(this.h, this.v);
    this.inKvmRun = true;
    try {
      // Plain read: a VM marked dead also posts KVM_REQ_VM_DEAD, which enter() sees atomically.
      if (this.m[D.dead]) throw new KvmError('EIO', 'VM is dead');
      // The in-kernel vgic is fixed before the first run (creating one after is EBUSY).
      this.vgic = this.m[D.inKernel] !== 0;
      // Out of line: KVM_RUN is issued again after every KVM_EXIT_MMIO, and a small body here
      // leaves V8 room to inline the entry path into the guest's MMIO access.
      if (!this.m[this.vb + VCPU.off.ranOnce]) this.firstRun();
      timerLoad(this.h, this.v); // kvm_arch_vcpu_load
      this.enter();
    } catch (e) {
      this.kvmRunReturn();
      throw e;
    }
  }

  private firstRun(): void {
    // kvm_arch_vcpu_run_pid_change: map the vgic's resources at the first run of any vCPU.
    if (this.vgic) vgicMapResources(this.h);
    // kvm_timer_enable: own and HW-map the timer PPIs (EINVAL if they clash).
    timerEnable(this.h, this.v);
    lockConfig(this.h);
    this.m[this.vb + VCPU.off.ranOnce] = 1;
    unlockConfig(this.h);
  }

  /** KVM_RUN returns to userspace: release vcpu->mutex. */
  kvmRunReturn(): void {
    if (!this.inKvmRun) return;
    this.inKvmRun = false;
    // mode is already OUTSIDE_GUEST_MODE: every path here comes through exit() (or abandon()).
    unlockVcpuMutex(this.h, this.v);
  }

  /** Fault path: KVM_RUN is over; the caller releases every lock this thread still holds. */
  abandon(): void {
    this.inKvmRun = false;
    Atomics.store(this.m, this.enteringIdx, 0);
    Atomics.store(this.m, this.modeIdx, OUTSIDE_GUEST_MODE);
  }

  private checkRequests(): void {
    const m = this.m;
    // Teardown arrives as a request too. The loop ends only on a request word seen empty after
    // `entering` was set (see enter): a KVM_REQ_SLEEP posted while we slept for the previous one
    // is handled here, before anything is flushed.
    for (;;) {
      if (Atomics.load(m, this.reqIdx) === 0) return;
      const req = Atomics.exchange(m, this.reqIdx, 0);
      if (req & VGIC_EMU_REQ_STOP || Atomics.load(m, this.stopIdx)) throw new VmStopped();
      if (req & KVM_REQ_VM_DEAD) throw new KvmError('EIO', 'VM is dead');
      if (req & KVM_REQ_SLEEP) this.sleepWhilePaused();
      // kvm_vgic_process_async_update: a DIR trap deactivated an entry of our ap_list.
      if (req & KVM_REQ_VGIC_PROCESS_UPDATE) {
        this.pruning();
        pruneApList(this.h, this.v);
      }
      // The signal check comes after the requests, as the kernel's entry work looks at
      // signal_pending() after kvm_check_request()s; the state lives in the signal word (a resume
      // that came before we looked has cancelled it).
      if (req & VGIC_EMU_REQ_SIGNAL && Atomics.load(m, this.sigIdx) === SIG_PENDING) this.signalExit();
      // KVM_REQ_IRQ_PENDING carries no work: it only made "requests pending" true.
    }
  }

  /**
   * A signal is pending (Vcpu.interrupt): KVM_RUN returns -EINTR with KVM_EXIT_INTR, as it does
   * for QEMU's vCPU thread when a signal arrives, and this thread stays in "userspace" (vcpu->mutex
   * released) until the VMM resumes it; then it issues KVM_RUN again and the guest continues where
   * it was. Called from enter(), outside guest mode, LRs folded.
   */
  private signalExit(): void {
    const m = this.m;
    m[this.exitsIdx + EXIT.intr]!++;
    // Out of KVM_RUN we populate nothing: a halter (kvm_arm_halt_guest) must not wait for us
    // ("halter waits for a vCPU that is in userspace"); the request loop we return to sets
    // `entering` again and looks at requests again before any flush.
    Atomics.store(m, this.enteringIdx, 0);
    // Release vcpu->mutex before saying so: a VMM that sees SIG_OUT may take every vCPU's mutex
    // at once (lock_all_vcpus for the register groups) and must find this one free.
    this.kvmRunReturn();
    if (Atomics.compareExchange(m, this.sigIdx, SIG_PENDING, SIG_OUT) === SIG_PENDING) {
      Atomics.notify(m, this.sigIdx);
      while (Atomics.load(m, this.sigIdx) === SIG_OUT) {
        if (Atomics.load(m, this.stopIdx)) throw new VmStopped();
        if (!wordWaitHook?.(this.sigIdx, SIG_OUT)) Atomics.wait(m, this.sigIdx, SIG_OUT, PARK_SLICE_MS);
      }
    }
    // KVM_RUN again (the first-run work is done: ranOnce).
    lockVcpuMutex(this.h, this.v);
    this.inKvmRun = true;
    Atomics.store(m, this.enteringIdx, 1);
    if (this.m[D.dead]) throw new KvmError('EIO', 'VM is dead');
    timerLoad(this.h, this.v); // vcpu_load: the VMM may have rewritten the timer meanwhile
  }

  /** KVM_REQ_SLEEP (kvm_arm_halt_guest): stay out of the guest while paused. */
  private sleepWhilePaused(): void {
    const m = this.m;
    const pauseIdx = this.vb + VCPU.off.pause;
    // Asleep we populate nothing: the halter need not wait for us (we set `entering` again, then
    // look at requests again, before any flush).
    Atomics.store(m, this.enteringIdx, 0);
    while (Atomics.load(m, pauseIdx)) {
      if (Atomics.load(m, this.stopIdx)) throw new VmStopped();
      if (!wordWaitHook?.(pauseIdx, 1)) Atomics.wait(m, pauseIdx, 1, PARK_SLICE_MS);
    }
    Atomics.store(m, this.enteringIdx, 1);
  }

  /**
   * From outside the guest to inside it: requests, flush, publish IN_GUEST_MODE, re-check.
   *
   * Quick entry (the first pass, while the ap_list is empty: every trapped MMIO, sysreg or
   * KVM_EXIT_MMIO round trip of a guest with nothing queued): nothing is populated, so there is no
   * LR snapshot for a halter to wait for and `entering` stays 0; and the request check before the
   * flush is left to the re-check after IN_GUEST_MODE, which sees every request the first check
   * would have (a request pending here aborts the entry into the full path below, which handles
   * it). That saves three of the entry's six Atomics. The flush must then be the empty one even if
   * an injector queues meanwhile: populating LRs without `entering` would reopen the halt window
   * (spec §2.4); the injector's kick is seen by the re-check (the classic kernel's benign race).
   * With bug seed noRequestRecheck there is no re-check, so every pass takes the full path.
   */
  enter(): void {
    const m = this.m;
    const h = this.h;
    let quick = (h.bugs & BUG.noRequestRecheck) === 0;
    for (;;) {
      if (quick && (!this.vgic || m[this.apHeadIdx]! < 0)) {
        // Mainline flushes an empty list too (TDIR follows the SPIs in flight anywhere in the VM).
        if (this.vgic && !h.classicLr) flushEmptyMainline(m, this.vb);
      } else {
        quick = false;
        // `entering`: from here until IN_GUEST_MODE is published (or the entry is aborted and
        // folded) this thread may populate LRs while OUTSIDE_GUEST_MODE, so a halter
        // (kvm_arm_halt_guest) must wait for it. Set before looking at requests: the Dekker pair with
        // haltGuest, which posts KVM_REQ_SLEEP and then looks at `entering` (spec §2.4's window).
        Atomics.store(m, this.enteringIdx, 1);
        try {
          this.checkRequests();
        } catch (e) {
          Atomics.store(m, this.enteringIdx, 0);
          throw e;
        }
        // An empty ap_list has nothing to flush (and fold left no LR in use): skip the call, as the
        // classic kernel skips the lock (the race with an injector is benign: it kicks us, §12.4).
        if (this.vgic && (m[this.apHeadIdx]! >= 0 || !h.classicLr)) flushLrs(h, this.v);
      }
      schedPoint(SchedPoint.PublishMode, this.v);
      Atomics.store(m, this.modeIdx, IN_GUEST_MODE);
      // IN_GUEST_MODE now covers us (halters look at `entering` first, then at the mode); an
      // aborted entry below keeps usedLrs non-zero until its fold is done.
      if (!quick) Atomics.store(m, this.enteringIdx, 0);
      // The Dekker pair with kick(): we published IN_GUEST_MODE, now look at requests. A request
      // made before our store is seen here; one made after finds IN_GUEST_MODE and flips us to
      // EXITING. Without this re-check a kick in between is lost (bug seed noRequestRecheck).
      if (!(h.bugs & BUG.noRequestRecheck) && Atomics.load(m, this.reqIdx) !== 0) {
        Atomics.store(m, this.modeIdx, OUTSIDE_GUEST_MODE);
        this.pruning();
        if (this.vgic) syncHwstate(h, this.v);
        quick = false;
        continue;
      }
      m[this.entriesIdx]!++;
      this.cif.pendHint = m[this.usedLrsIdx] !== 0 ? pendingLrCount(h, this.v) : 0;
      this.cif.maint = false;
      return;
    }
  }

  /** From the guest to the host: mode = OUTSIDE, count the reason (an EXIT index), fold and prune. */
  exit(reason: number): void {
    Atomics.store(this.m, this.modeIdx, OUTSIDE_GUEST_MODE);
    schedPoint(SchedPoint.PublishMode, this.v);
    this.m[this.exitsIdx + reason]!++;
    this.pruning();
    if (this.vgic && (this.m[this.apHeadIdx]! >= 0 || this.m[this.usedLrsIdx] !== 0)) syncHwstate(this.h, this.v);
  }

  /**
   * History runs: a fold and prune begins; anything recorded before now, it sees. The ap_list
   * quiescence audit (check/ap-list-audit.ts) lets an entry the prune would remove stay only if
   * its interrupt changed at or after the start of the vCPU's last prune: a change recorded while
   * the prune ran may have come after it looked at that entry (the race of a line lowered
   * during the holder's prune, level-eoi chaos seed 0xc0ffee).
   */
  private pruning(): void {
    if (this.h.hist) this.m[this.vb + VCPU.off.prunedAt] = this.h.hist.nextSeq();
  }

  /** An instruction boundary found a kick or a maintenance interrupt: exit and re-enter. */
  exitForInterrupt(): void {
    this.exit(this.cif.maint ? EXIT.maintenance : EXIT.irq);
    this.enter();
  }

  /** kvm_arch_vcpu_runnable (spec §4.9), minus "stopped". */
  runnable(): boolean {
    const m = this.m;
    if (Atomics.load(m, this.vb + VCPU.off.pause)) return false;
    // KVM_IRQ_LINE's CPU lines are set by the VMM thread with Atomics.exchange while this vCPU
    // runs; a plain load here raced it (declared ATOMIC, so the lockset checker's rule too).
    if (Atomics.load(m, this.vb + VCPU.off.irqLine) || Atomics.load(m, this.vb + VCPU.off.fiqLine)) return true;
    if (!Atomics.load(m, D.initialized)) return false;
    return vcpuHasPendingIrq(this.h, this.v);
  }

  /**
   * WFI: exit, block until runnable (or teardown), re-enter. Blocking is kvm_vcpu_block: publish
   * `blocked`, then re-check runnable (Dekker with kick: a waker that saw blocked=0 had queued its
   * IRQ before our check), halt-poll the doorbell for a short adaptive window (KVM's halt_poll_ns),
   * and only then park on it. A waker notifies only when `parked` is set.
   */
  wfi(): void {
    this.exit(EXIT.wfi);
    bumpCounter(this.h, this.v, CTR.wfi);
    this.block();
    // The blocked thread was scheduled out and back in: vcpu_put / vcpu_load of the timer.
    timerLoad(this.h, this.v);
    this.enter();
  }

  /**
   * The guest's instruction boundary found a timer's host PPI due (timerDeadline passed): the
   * host interrupt exits the guest, kvm_arch_timer_handler injects, and we re-enter.
   */
  timerIrq(): void {
    this.exit(EXIT.irq);
    kvmArchTimerHandler(this.h, this.v);
    this.enter();
  }

  private block(): void {
    const m = this.m;
    const h = this.h;
    const blockedIdx = this.vb + VCPU.off.blocked;
    const wakeIdx = this.vb + VCPU.off.wake;
    const parkedIdx = this.vb + VCPU.off.parked;
    const seeded = (h.bugs & BUG.wfiNoRecheck) !== 0;
    // The seeded bug checks before publishing "blocked" and never again: a wake-up that lands in
    // between is lost (the lost wake-up race of spec §4.9).
    if (seeded && this.runnable()) return;
    Atomics.store(m, wakeIdx, 0);
    // Schedule point before publishing "blocked": the window the lost wake-up race lives in.
    schedPoint(SchedPoint.Block, this.v);
    Atomics.store(m, blockedIdx, 1);
    const dlIdx = deadlineIdx(h, this.v);
    // The seeded bug blocks as if no timer were armed (no bg_timer).
    const timerBound = (h.bugs & BUG.timerWfiUnbounded) === 0;
    try {
      for (;;) {
        // The timer's host PPI while we are blocked (the kernel's bg_timer wake-up, and the
        // hardware timer during halt-polling): inject first, so runnable() sees it.
        if (timerBound && h.f[dlIdx]! <= physCounter(h)) kvmArchTimerHandler(h, this.v);
        if (!seeded && this.runnable()) return;
        if (Atomics.load(m, this.stopIdx) || Atomics.load(m, this.reqIdx) & KVM_REQ_VM_DEAD) return;
        // kvm_vcpu_check_block: a pending signal ends the block (KVM_RUN then returns -EINTR).
        if (Atomics.load(m, this.sigIdx) === SIG_PENDING) return;
        const deadline = timerBound ? h.f[dlIdx]! : Infinity;
        if (wordWaitHook && this.parkScheduled(wakeIdx, parkedIdx, deadline)) {
          // Controlled scheduling: parked until the doorbell rings and a notify wakes us.
        } else if (this.haltPoll(wakeIdx, deadline)) {
          bumpCounter(h, this.v, CTR.wfiPolled);
          this.haltPollNs = Math.min(HALT_POLL_MAX_NS, this.haltPollNs * 2);
        } else {
          this.haltPollNs = Math.max(HALT_POLL_MIN_NS, this.haltPollNs >> 1);
          bumpCounter(h, this.v, CTR.wfiParked);
          Atomics.store(m, parkedIdx, 1);
          // Re-check the doorbell after publishing `parked`: a waker that saw parked=0 rang first.
          // Bounded by the timer deadline, so WFI wakes at expiry.
          if (Atomics.load(m, wakeIdx) === 0) Atomics.wait(m, wakeIdx, 0, Math.min(PARK_SLICE_MS, msUntil(h, deadline)));
          Atomics.store(m, parkedIdx, 0);
        }
        if (seeded) {
          // Only a doorbell ends the seeded wait; timeouts just sleep again.
          if (Atomics.load(m, wakeIdx) === 0) continue;
          Atomics.store(m, wakeIdx, 0);
          if (this.runnable()) return;
          continue;
        }
        Atomics.store(m, wakeIdx, 0);
      }
    } finally {
      Atomics.store(m, blockedIdx, 0);
    }
  }

  /**
   * Controlled scheduling: park at once (a halt-poll window of zero), with the plain park's
   * protocol: publish `parked`, re-check the doorbell, wait. Wakers then owe a notify, and the
   * scheduler's lost wake-up detector sees one that does not come. False if the scheduler no
   * longer controls this thread (the plain path then runs).
   */
  private parkScheduled(wakeIdx: number, parkedIdx: number, deadline: number): boolean {
    const m = this.m;
    Atomics.store(m, parkedIdx, 1);
    try {
      return Atomics.load(m, wakeIdx) !== 0 || wordWaitHook!(wakeIdx, 0, deadline);
    } finally {
      Atomics.store(m, parkedIdx, 0);
    }
  }

  /**
   * Spin on the doorbell for the current window. True if it rang, or if the timer deadline fell
   * inside the window (the poll ends there and the block loop injects the expired timer: a wake-up
   * the poll caught, as the hardware timer interrupts KVM's halt-polling).
   */
  private haltPoll(wakeIdx: number, deadline: number): boolean {
    const m = this.m;
    const window = this.haltPollNs / 1e6;
    const toTimer = msUntil(this.h, deadline);
    const end = performance.now() + Math.min(window, toTimer);
    for (;;) {
      for (let i = 0; i < 64; i++) if (Atomics.load(m, wakeIdx) !== 0) return true;
      if (Atomics.load(m, this.stopIdx)) return false;
      if (performance.now() >= end) return toTimer < window;
    }
  }

}
