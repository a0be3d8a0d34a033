/**
 * What a scenario's driver (the VMM side of a stress run: injections from a host thread) can do.
 * It runs in its own worker thread so that, in controlled mode, it is one of the scheduled threads.
 * Every wait is bounded: by steps in controlled mode, by time in chaos mode; a wait that runs out
 * is recorded as a stall (the run then reports what it found rather than hanging).
 */
import { kvmIrqLine } from '../kvm/irq-line.js';
import { KvmError } from '../uapi/errno.js';
import { IN_GUEST_MODE, KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_SPI, kvmIrqLineField } from '../uapi/kvm.js';
import type { Prng } from '../sched/prng.js';
import { yieldHook } from '../sync/wait-hooks.js';
import type { EventFd } from '../eventfd/eventfd.js';
import { pollBegin, pollEnd } from '../sched/poll-scope.js';
import { D, type Host } from '../vgic/host.js';
import { SRAM } from './ram.js';
import { vgicItsInjectMsi } from '../vgic/its/translate.js';
import { irqRecord } from '../vgic/irq.js';
import { irqfdOff, irqOff, physOff, vcpuOff } from '../shm/vm-memory.js';
import { IRQ, IRQFD, LR, LR_ACTIVE, LR_PENDING, NR_PHYS_IRQS, PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, PIRQ_MASKED, PIRQ_USER_MASKED, VCPU } from '../shm/layouts.js';
import { deviceThreadRuns } from './thread-config.js';
import { lockIrq, unlockIrq } from '../vgic/locks.js';
import { stopVmNow } from '../vgic/halt.js';
import { unchecked } from '../check/lockset/view.js';
import { lrOff, vcpuHasPendingIrq } from '../vgic/lr.js';

const PIRQ_BITS: readonly [number, string][] = [[PIRQ_FWD, 'fwd'], [PIRQ_MASKED, 'masked'], [PIRQ_USER_MASKED, 'user-masked'], [PIRQ_ACTIVE, 'active']];

const nap = new Int32Array(new SharedArrayBuffer(4));
/** How long a driver whose scheduled peers are all blocked waits for a running device thread. */
// Real time, not schedule steps: on a loaded 2-core machine 5 s was once not enough (vfio-fwd v3
// controlled seed 1 reported a stall under two concurrent test suites, clean alone).
const OUTSIDE_WAIT_MS = 15_000;

export class DriverCtx {
  readonly ram: Int32Array;
  readonly nrVcpus: number;
  readonly gic: number;
  readonly stalls: string[] = [];
  constructor(
    private readonly h: Host,
    readonly prng: Prng,
    readonly controlled: boolean,
    /** Chaos: ms a wait may take; controlled: iterations. */
    private readonly waitBudget: number,
  ) {
    this.ram = new Int32Array(h.buf.ram);
    this.nrVcpus = h.m[D.onlineVcpus]!;
    this.gic = h.m[D.model]!;
  }

  /**
   * @internal The driver thread's own view of the VM's shared state: built-in scenarios whose
   * driver acts as a VMM thread beyond injections (device attributes, GSI routing, pausing the
   * vCPUs) call the kernel-side entry points with it, as a second ioctl thread would.
   */
  get host(): Host {
    return this.h;
  }

  /** An edge on SPI `intid` (raise; edge SPIs ignore the lowering). Returns false if refused. */
  spi(intid: number): boolean {
    return this.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, intid), 1);
  }
  /** Drive a (level) SPI line. */
  line(intid: number, level: number): boolean {
    return this.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, intid), level);
  }
  ppi(vcpu: number, intid: number, level: number): boolean {
    return this.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, vcpu, intid), level);
  }
  /**
   * A device's MSI to the ITS doorbell `addr` (what KVM_SIGNAL_MSI or an irqfd's MSI route does):
   * 1 delivered, 0 dropped by the ITS, -1 refused (ITS or LPIs disabled).
   */
  msi(addr: number, devid: number, eventId: number): number {
    try {
      return vgicItsInjectMsi(this.h, addr, devid, eventId);
    } catch (e) {
      if (e instanceof KvmError) return -1;
      throw e;
    }
  }

  private irqLine(field: number, level: number): boolean {
    try {
      kvmIrqLine(this.h, field, level);
      return true;
    } catch (e) {
      if (e instanceof KvmError) return false;
      throw e;
    }
  }

  /** Injections the irqfd in `slot` has had refused so far (IRQFD.dropped: no route, no mapping). */
  irqfdDropped(slot: number): number {
    return Atomics.load(this.h.m, irqfdOff(this.h.g, slot) + IRQFD.off.dropped);
  }

  /** Inject SPI `intid` once more, counting it as accepted (and bumping its generation). */
  injectCounted(intid: number): void {
    Atomics.add(this.ram, SRAM.GEN + intid, 1);
    if (this.spi(intid)) Atomics.add(this.ram, SRAM.ACCEPTED + intid, 1);
  }

  /**
   * Let other threads run (a yield under the controlled scheduler; a short pause in chaos).
   * Returns false when no other thread could run.
   */
  relax(n = 0): boolean {
    if (yieldHook) return yieldHook();
    if ((n & 63) === 63) Atomics.wait(nap, 0, 0, 0.05);
    return true;
  }

  /**
   * Chaos mode: sleep until `fd` is readable, at most `ms`, as a device thread polls its
   * eventfd; controlled mode returns at once (nothing may block outside the scheduler). False,
   * with a lost wake-up recorded, if the wait caught a signal that woke nobody (eventfd/layout.ts
   * park(): found ready when its slice ran out, and no wake within the grace period).
   */
  sleepOn(fd: EventFd, name: string, ms: number): boolean {
    if (this.controlled) return true;
    const before = fd.totals().lostWakes;
    fd.waitReadable(ms);
    if (fd.totals().lostWakes === before) return true;
    this.stalls.push(`lost wake-up: eventfd ${name} was signalled while the driver slept on it and the signal woke nobody; ${this.diagnose()}`);
    return false;
  }

  /**
   * Wait until `pred()`, bounded. Returns false (and records a stall, with a diagnosis of the
   * vCPUs) if the budget runs out, or at once when no other thread can run any more (controlled
   * mode: every vCPU is blocked, so nothing can change).
   */
  waitFor(pred: () => boolean, what: string): boolean {
    const end = performance.now() + this.waitBudget;
    let lonely = 0;
    let outsideSince = -1;
    for (let i = 0; ; i++) {
      // How often the condition is polled is timing: not part of a recorded interleaving.
      let ok = false;
      pollBegin();
      try {
        ok = pred();
      } finally {
        pollEnd(ok);
      }
      if (ok) return true;
      const outOfBudget = this.controlled ? i > this.waitBudget : performance.now() > end;
      if (!outOfBudget && lonely > 2 && deviceThreadRuns(this.h)) {
        // Every scheduled thread is blocked, but a device thread runs outside the scheduler and
        // may still raise a line: not "every other thread is blocked". Give it real time.
        const now = performance.now();
        if (outsideSince < 0) outsideSince = now;
        if (now - outsideSince < OUTSIDE_WAIT_MS) {
          Atomics.wait(nap, 0, 0, 1);
          lonely = 0;
          continue;
        }
      }
      if (outOfBudget || lonely > 2) {
        this.stalls.push(`driver gave up waiting for ${what}${lonely > 2 ? ' (every other thread is blocked)' : ''}; ${this.diagnose()}`);
        return false;
      }
      lonely = this.relax(i) ? 0 : lonely + 1;
    }
  }


  /**
   * Why nothing moves: a vCPU asleep in WFI with a deliverable IRQ on its ap_list and no doorbell
   * is a lost wake-up; a vCPU in guest mode with an unserved request is a lost kick.
   */
  diagnose(): string {
    const h = this.h;
    const m = h.m;
    const out: string[] = [];
    for (let v = 0; v < this.nrVcpus; v++) {
      const vb = vcpuOff(h.g, v);
      const mode = Atomics.load(m, vb + VCPU.off.mode);
      const req = Atomics.load(m, vb + VCPU.off.requests);
      const blocked = Atomics.load(m, vb + VCPU.off.blocked);
      const queued = m[vb + VCPU.off.apHead]! >= 0;
      if (blocked && queued && Atomics.load(m, vb + VCPU.off.wake) === 0 && vcpuHasPendingIrq(h, v)) out.push(`vcpu${v} sleeps in WFI with a deliverable interrupt queued (lost wake-up)`);
      else if (mode === IN_GUEST_MODE && req !== 0) out.push(`vcpu${v} runs in guest mode with requests 0x${req.toString(16)} unserved (lost kick)`);
      else out.push(`vcpu${v}: mode ${mode} requests 0x${req.toString(16)} blocked ${blocked} ap_list ${queued ? this.describeApList(v) : 'empty'}`);
    }
    const lines = this.describePhysLines();
    return out.join('; ') + (lines ? `; ${lines}` : '');
  }

  /**
   * The physical lines a VFIO-like device owns: its counters and state bits. A device thread runs
   * outside the scheduler, so when a run waits on one this says which event is still outstanding.
   */
  private describePhysLines(): string {
    const m = this.h.m;
    const items: string[] = [];
    for (let i = 0; i < NR_PHYS_IRQS; i++) {
      const p = physOff(this.h.g, i);
      if (Atomics.load(m, p + PHYS_IRQ.off.used) === 0) continue;
      const s = Atomics.load(m, p + PHYS_IRQ.off.state);
      const bits = PIRQ_BITS.filter(([bit]) => s & bit).map(([, name]) => name).join('|') || '-';
      const c = (f: 'raised' | 'signalled' | 'serviced'): number => Atomics.load(m, p + PHYS_IRQ.off[f]);
      items.push(`line ${i} (${m[p + PHYS_IRQ.off.level] ? 'level' : 'edge'}) ${bits} raised ${c('raised')} signalled ${c('signalled')} serviced ${c('serviced')}`);
    }
    return items.length ? `device thread ${deviceThreadRuns(this.h) ? 'running' : 'not running'}: ${items.join(', ')}` : '';
  }

  /**
   * vCPU v's ap_list as `[intid p/a/e prio, ...]` (pending, active, enabled). Read lock-free: it is
   * called when every other thread is blocked, and a torn walk is cut off after the IRQ count.
   */
  private describeApList(v: number): string {
    const m = unchecked(this.h.m);
    const g = this.h.g;
    const items: string[] = [];
    for (let r = m[vcpuOff(g, v) + VCPU.off.apHead]!, n = 0; r >= 0 && n < 64; r = m[irqOff(g, r) + IRQ.off.next]!, n++) {
      const b = irqOff(g, r);
      const flag = (f: number, c: string): string => (m[b + f] ? c : '-');
      const pend = m[b + IRQ.off.pendingLatch] || m[b + IRQ.off.lineLevel] ? 'p' : '-';
      items.push(`${m[b + IRQ.off.intid]} ${pend}${flag(IRQ.off.active, 'a')}${flag(IRQ.off.enabled, 'e')} prio 0x${m[b + IRQ.off.priority]!.toString(16)}`);
    }
    return `[${items.join(', ')}]`;
  }

  /** Every SPI in `spis` acknowledged up to its latest generation. */
  allSeen(spis: readonly number[]): boolean {
    for (const s of spis) if (Atomics.load(this.ram, SRAM.SEEN + s) !== Atomics.load(this.ram, SRAM.GEN + s)) return false;
    return true;
  }

  /**
   * No pending state left for these SPIs: neither latched in the record nor pending in any LR.
   * Read under the IRQ's lock: flush moves pending from latch to LR inside it, and fold re-latches
   * inside it before clearing the LR, so the pair is never seen half-moved.
   */
  spisQuiet(spis: readonly number[]): boolean {
    for (const s of spis) if (!this.quiet(irqRecord(this.h, -1, s), s)) return false;
    return true;
  }

  /** The same for a private interrupt (an SGI or PPI of vCPU `vcpu`). */
  privateQuiet(vcpu: number, intid: number): boolean {
    return this.quiet(irqRecord(this.h, vcpu, intid), intid);
  }

  /** No SPI of `spis` is active: in its record or in any LR. */
  spisInactive(spis: readonly number[]): boolean {
    for (const s of spis) if (!this.quiet(irqRecord(this.h, -1, s), s, true)) return false;
    return true;
  }

  /**
   * The SPIs of `spis` that are pending (latched) but on no vCPU's ap_list: what enabling the
   * distributor does not rescan (spec §4.9: the oracle returned no vCPU while it was off, and a
   * listed one was pruned). Under each IRQ's lock, as every ap_list membership change is.
   */
  pendingUnqueued(spis: readonly number[]): number[] {
    const h = this.h;
    const out: number[] = [];
    for (const s of spis) {
      const r = irqRecord(h, -1, s);
      if (r < 0) continue;
      const b = irqOff(h.g, r);
      lockIrq(h, r);
      if (h.m[b + IRQ.off.pendingLatch] !== 0 && h.m[b + IRQ.off.vcpu]! < 0) out.push(s);
      unlockIrq(h, r);
    }
    return out;
  }

  /**
   * Record r (INTID intid) is not pending: no latch, no high level line, in no LR as pending.
   * With `active`: not active either, in the record or in an LR.
   */
  private quiet(r: number, intid: number, active = false): boolean {
    if (r < 0) return true;
    const h = this.h;
    const m = h.m;
    const b = irqOff(h.g, r);
    lockIrq(h, r);
    let busy = m[b + IRQ.off.pendingLatch] !== 0 || (m[b + IRQ.off.config] === 1 && m[b + IRQ.off.lineLevel] !== 0) || (active && m[b + IRQ.off.active] !== 0);
    const mask = active ? LR_PENDING | LR_ACTIVE : LR_PENDING;
    // A private INTID is in no LR but its own vCPU's.
    const owner = intid < 32 ? (r / 32) | 0 : -1;
    for (let v = 0; v < this.nrVcpus && !busy; v++) {
      if (owner >= 0 && v !== owner) continue;
      // Every LR, not just usedLrs: a flush publishes usedLrs only after populating, and LRs
      // beyond it are cleared, so a stale one can only make this answer 'busy'.
      const nrLr = m[vcpuOff(h.g, v) + VCPU.off.nrLr]!;
      // data_race(): the harness peeks at other vCPUs' LR shadows (their owners' state).
      const lrs = unchecked(m);
      for (let i = 0; i < nrLr; i++) {
        const lb = lrOff(h, v, i);
        if (lrs[lb + LR.off.intid] === intid && lrs[lb + LR.off.state]! & mask) busy = true;
      }
    }
    unlockIrq(h, r);
    return !busy;
  }

  /** End the run: raise the stop word and the stop request, and kick every vCPU out. */
  stopVm(): void {
    stopVmNow(this.h, this.nrVcpus);
  }
}
