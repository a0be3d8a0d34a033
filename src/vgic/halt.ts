/**
 * kvm_arm_halt_guest / kvm_arm_resume_guest (spec §2.4): stop every vCPU from running guest code
 * so that no list register holds state the caller is about to change. Used by guest accesses to
 * I{S,C}ACTIVER (spec §6, race §12.5: an active state changed while the IRQ sits in a running
 * vCPU's LR would be overwritten when that vCPU folds its LRs at exit).
 *
 * Halting = set `pause` on every vCPU, post KVM_REQ_SLEEP, force running vCPUs out of the guest,
 * then wait until each vCPU other than the caller is outside guest mode. The run loop's request
 * check handles KVM_REQ_SLEEP by waiting on the pause word (vcpu-runner sleepWhilePaused), and a
 * vCPU leaving the guest folds its LRs before it looks at requests, so once it is out its LR state
 * is back in the records.
 *
 * The wait is bounded and watches the VM's stop word: the caller may be a vCPU thread and holds
 * config_lock, and a waiter that never returns would wedge the whole VM.
 */
import { EXITING_GUEST_MODE, IN_GUEST_MODE, KVM_REQ_SLEEP, OUTSIDE_GUEST_MODE, VGIC_EMU_REQ_STOP } from '../uapi/kvm.js';
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import { TeardownError } from '../sync/lock.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { yieldHook } from '../sync/wait-hooks.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { kickVcpu, makeRequest } from './queue.js';
import { BUG } from './bugs.js';

const HALT_TIMEOUT_MS = 2000;
const SPIN = 100;
const SLICE_MS = 0.2;

/**
 * Is vCPU v out of the guest with its LRs folded? OUTSIDE_GUEST_MODE alone is what the kernel
 * waits for (the IPI ack). But a vCPU that populates its LRs before publishing IN_GUEST_MODE is
 * still OUTSIDE, and after aborting its entry on the SLEEP request it would fold that LR snapshot
 * over our change (the window spec §2.4 infers; race §12.5 again). So we also wait while it is
 * `entering` (set before its request check, cleared once IN_GUEST_MODE is published or while it
 * sleeps on the pause: the Dekker pair with our SLEEP request, read before the mode), and while
 * `usedLrs` is non-zero inside KVM_RUN (an aborted entry not yet folded). usedLrs is 0 after every
 * fold, so a vCPU that exited for MMIO, WFI or userspace never holds us up (no deadlock with its
 * own wait for the config_lock we hold). A vCPU outside KVM_RUN (its mutex free) never folds
 * before it flushes again, so LRs it left behind cannot overwrite anything.
 */
function isHalted(m: Int32Array, vb: number, seeded: boolean): boolean {
  if (!seeded && Atomics.load(m, vb + VCPU.off.entering) !== 0) return false;
  if (Atomics.load(m, vb + VCPU.off.mode) !== OUTSIDE_GUEST_MODE) return false;
  return Atomics.load(m, vb + VCPU.off.usedLrs) === 0 || Atomics.load(m, vb + VCPU.off.mutex) === 0;
}

export function haltGuest(h: Host): void {
  const m = h.m;
  const online = m[D.onlineVcpus]!;
  for (let v = 0; v < online; v++) Atomics.store(m, vcpuOff(h.g, v) + VCPU.off.pause, 1);
  // KVM_REQ_SLEEP carries NO_WAKEUP: a blocked vCPU stays blocked (runnable() is false while
  // paused); one in the guest is forced out (the IPI), which is the CAS half of kvm_vcpu_kick.
  for (let v = 0; v < online; v++) {
    makeRequest(h, v, KVM_REQ_SLEEP);
    if (v === h.selfVcpu) continue;
    schedPoint(SchedPoint.Kick, v);
    Atomics.compareExchange(m, vcpuOff(h.g, v) + VCPU.off.mode, IN_GUEST_MODE, EXITING_GUEST_MODE);
  }
  const stopIdx = D.stop;
  const deadline = performance.now() + HALT_TIMEOUT_MS;
  for (let v = 0; v < online; v++) {
    if (v === h.selfVcpu) continue;
    const vb = vcpuOff(h.g, v);
    let spins = 0;
    while (!isHalted(m, vb, (h.bugs & BUG.haltIgnoresEntry) !== 0)) {
      if (yieldHook) {
        // Controlled scheduling: let the vCPU we wait for run instead of spinning on it.
        yieldHook();
        continue;
      }
      if (spins++ < SPIN) continue;
      if (Atomics.load(m, stopIdx) !== 0) {
        resumeGuest(h);
        throw new TeardownError(`halting the guest (vCPU ${v})`);
      }
      if (performance.now() > deadline) {
        resumeGuest(h);
        throw new Error(`kvm_arm_halt_guest: vCPU ${v} did not leave the guest within ${HALT_TIMEOUT_MS} ms`);
      }
      // Never a pure spin (PLATFORM.md): sleep a short slice; nobody notifies the mode word.
      const mode = Atomics.load(m, vb + VCPU.off.mode);
      if (mode === IN_GUEST_MODE || mode === EXITING_GUEST_MODE) Atomics.wait(m, vb + VCPU.off.mode, mode, SLICE_MS);
      else Atomics.wait(m, vb + VCPU.off.usedLrs, Atomics.load(m, vb + VCPU.off.usedLrs), SLICE_MS);
    }
  }
}

/** Clear pause on every vCPU and wake it: the sleeper in the run loop and a WFI-blocked one. */
export function resumeGuest(h: Host): void {
  const m = h.m;
  const online = m[D.onlineVcpus]!;
  for (let v = 0; v < online; v++) {
    const vb = vcpuOff(h.g, v);
    Atomics.store(m, vb + VCPU.off.pause, 0);
    Atomics.notify(m, vb + VCPU.off.pause);
    // __kvm_vcpu_wake_up: a blocked vCPU re-evaluates runnable() now rather than at its next
    // park timeout. Ring the doorbell; notify only if it is parked (PLATFORM.md).
    if (Atomics.load(m, vb + VCPU.off.blocked) !== 0) {
      Atomics.store(m, vb + VCPU.off.wake, 1);
      if (Atomics.load(m, vb + VCPU.off.parked) !== 0) Atomics.notify(m, vb + VCPU.off.wake, 1);
    }
  }
}

/**
 * End the run from inside it (a stress driver at its end, a detector that fired): raise the stop
 * word, post the stop request and kick every vCPU out. Every step of it is a schedule point or an
 * atomic store, so under the controlled scheduler the teardown is part of the schedule and a
 * report replays.
 */
export function stopVmNow(h: Host, nrVcpus: number): void {
  // Where the decided part of the run ends. Once the stop word is up, the other threads' ways out
  // (a second stopVmNow by the driver, vCPUs leaving the scheduler, teardown errors) interleave by
  // real time, so a failing run's history after this point differs from one run to the next
  // (seen: the KICKs of two stopVmNow calls in either order). A report's replay check compares
  // the history up to here.
  if (Atomics.compareExchange(h.m, D.stop, 0, 1) === 0 && h.hist) Atomics.store(h.m, D.stopSeq, h.hist.nextSeq() + 1);
  for (let v = 0; v < nrVcpus; v++) {
    if (v === h.selfVcpu) continue;
    makeRequest(h, v, VGIC_EMU_REQ_STOP);
    kickVcpu(h, v);
  }
}
