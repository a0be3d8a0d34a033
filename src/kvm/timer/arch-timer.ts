/**
 * The in-kernel architected timers of a vCPU (kernel arch/arm64/kvm/arch_timer.c): the virtual
 * timer (CNTV_*, PPI 27 by default) and the EL1 physical timer (CNTP_*, PPI 30), both "direct"
 * as on a VHE host: the guest programs them without trapping, and each raises the host's own
 * timer PPI on the vCPU's CPU, which KVM forwards as a HW-mapped level interrupt.
 *
 * It lives beside the run loop (kvm/), as the kernel keeps it outside vgic/: it is a device that
 * feeds the vgic through kvm_vgic_inject_irq and the HW bit, like a VFIO-forwarded line.
 *
 * The "hardware" part runs on the vCPU's own thread, which is that vCPU's CPU: the timer output
 * (ENABLE, not IMASK, counter >= CVAL) raises the host PPI unless it is already active; the
 * vCPU exits, kvmArchTimerHandler marks it active (the host acknowledged it; forwarding leaves it
 * active after the host's EOI) and injects the level. The guest's deactivation of the HW LR
 * clears that active state (phys-irq.ts physDeactivate -> timerPhysInactive), so a timer still
 * firing interrupts again: level semantics. At fold the vgic re-samples the line with timerInputLevel (the
 * get_input_level op), so masking or reprogramming a pending timer withdraws it.
 *
 * `timerDeadline` (per vCPU, shared memory) is the physical counter value at which some timer
 * would raise its host PPI; the guest's instruction boundary compares it, and WFI bounds its wait
 * by it (the kernel's bg_timer), so a blocked vCPU wakes at expiry.
 *
 * Creation and the first run: timer-enable.ts. Register access: timer-regs.ts.
 */
import { LockSite } from '../../sync/lock-sites.js';
import { IRQ, NR_VCPU_TIMERS, TIMER_CTX, VCPU } from '../../shm/layouts.js';
import { irqOff, vcpuOff } from '../../shm/vm-memory.js';
import type { Host } from '../../vgic/host.js';
import { D } from '../../vgic/host.js';
import { lockIrq, unlockIrq } from '../../vgic/locks.js';
import { injectIrq } from '../../vgic/queue.js';
import { setHostPpiOps } from '../../vgic/phys-irq.js';
import { physCounter } from './counter.js';
import {
  ARCH_TIMER_CTRL_ENABLE, ARCH_TIMER_CTRL_IT_MASK, HOST_PTIMER_INTID, HOST_VTIMER_INTID, KVM_ARM_VCPU_TIMER_IRQ_PTIMER,
  KVM_ARM_VCPU_TIMER_IRQ_VTIMER,
} from '../../uapi/timer.js';

export const VTIMER = KVM_ARM_VCPU_TIMER_IRQ_VTIMER;
export const PTIMER = KVM_ARM_VCPU_TIMER_IRQ_PTIMER;
export const TWO32 = 4294967296;
export const EN_MASK = ARCH_TIMER_CTRL_ENABLE | ARCH_TIMER_CTRL_IT_MASK;
/** vgic owner tokens of the timer PPIs (the kernel uses the context pointer): nonzero, distinct. */
export const OWNER_BASE = 0x7100;
export const HOST_INTID = [HOST_VTIMER_INTID, HOST_PTIMER_INTID];

export function ctxOff(h: Host, v: number, t: number): number {
  return vcpuOff(h.g, v) + VCPU.off.timers + t * TIMER_CTX.size;
}

/** Index of vCPU v's timerDeadline in the Float64Array view. */
export function deadlineIdx(h: Host, v: number): number {
  return (vcpuOff(h.g, v) + VCPU.off.timerDeadline) / 2;
}

/** Guest PPI of timer t (VM-wide). */
export function timerPpi(h: Host, t: number): number {
  return h.m[D.timerPpis + t]!;
}

function offsetOf(h: Host, t: number): number {
  return t === VTIMER ? h.f[D.timerVoffset / 2]! : h.f[D.timerPoffset / 2]!;
}

/** The counter timer t compares against: CNTVCT for the vtimer, CNTPCT for the ptimer. */
export function timerCounter(h: Host, t: number): number {
  return physCounter(h) - offsetOf(h, t);
}

export function cvalOf(m: Int32Array, c: number): number {
  return (m[c + TIMER_CTX.off.cvalHi]! >>> 0) * TWO32 + (m[c + TIMER_CTX.off.cvalLo]! >>> 0);
}

/** kvm_timer_irq_can_fire: enabled and not masked. */
function canFire(m: Int32Array, c: number): boolean {
  return (m[c + TIMER_CTX.off.ctl]! & EN_MASK) === ARCH_TIMER_CTRL_ENABLE;
}

/** kvm_timer_should_fire: the timer's output line. */
export function timerShouldFire(h: Host, v: number, t: number): boolean {
  const c = ctxOff(h, v, t);
  // The same expression as timerRearm's deadline, so a deadline that passed always fires.
  return canFire(h.m, c) && physCounter(h) >= cvalOf(h.m, c) + offsetOf(h, t);
}

/** Recompute when a timer of v next raises its host PPI (armed and not already active). */
export function timerRearm(h: Host, v: number): void {
  const m = h.m;
  let dl = Infinity;
  for (let t = 0; t < NR_VCPU_TIMERS; t++) {
    const c = ctxOff(h, v, t);
    if (!canFire(m, c) || m[c + TIMER_CTX.off.physActive]) continue;
    const at = cvalOf(m, c) + offsetOf(h, t);
    if (at < dl) dl = at;
  }
  h.f[deadlineIdx(h, v)] = dl;
}

/** kvm_timer_update_irq: record the level and hand it to the vgic, which drops non-changes. */
function updateIrq(h: Host, v: number, t: number, level: boolean): void {
  h.m[ctxOff(h, v, t) + TIMER_CTX.off.level] = level ? 1 : 0;
  if (!h.m[D.inKernel] || !Atomics.load(h.m, D.initialized)) return;
  injectIrq(h, v, timerPpi(h, t), level, OWNER_BASE + t);
}

/**
 * kvm_arch_timer_handler for every timer whose host PPI fires now: the host acknowledged it, so
 * it is active (and, forwarded, stays so after the host's EOI until the guest deactivates it).
 * Runs on v's thread, outside guest mode.
 */
export function kvmArchTimerHandler(h: Host, v: number): void {
  const m = h.m;
  for (let t = 0; t < NR_VCPU_TIMERS; t++) {
    const c = ctxOff(h, v, t);
    if (m[c + TIMER_CTX.off.physActive] || !timerShouldFire(h, v, t)) continue;
    m[c + TIMER_CTX.off.physActive] = 1;
    updateIrq(h, v, t, true);
  }
  timerRearm(h, v);
}

/** kvm_vgic_map_is_active: the HW-mapped virtual interrupt is active. */
function mapIsActive(h: Host, v: number, intid: number): boolean {
  const r = v * 32 + intid;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.Timer);
  const on = h.m[b + IRQ.off.hw] !== 0 && h.m[b + IRQ.off.active] !== 0;
  unlockIrq(h, r);
  return on;
}

/**
 * kvm_timer_vcpu_load (with a GIC that has an active state): give the vgic the current output,
 * then make the host PPI's active state match the virtual one (or the asserted level), so the
 * host is not interrupted again for an interrupt the guest has not finished with.
 *
 * Runs at every KVM_RUN (around each KVM_EXIT_MMIO), so the test for "nothing to do" is kept
 * small enough to inline into the caller and the work is out of line (timerLoadSlow).
 */
export function timerLoad(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (!m[vb + VCPU.off.timerEnabled]) return;
  // Nothing enabled, asserted or active (the common KVM_RUN of a guest that does not use its
  // timers): the load would change nothing. A virtual interrupt still active implies physActive
  // (set when it fired, cleared only by deactivation).
  const c0 = vb + VCPU.off.timers;
  for (let c = c0; c < c0 + NR_VCPU_TIMERS * TIMER_CTX.size; c += TIMER_CTX.size) {
    if (m[c + TIMER_CTX.off.ctl]! & ARCH_TIMER_CTRL_ENABLE || m[c + TIMER_CTX.off.level] || m[c + TIMER_CTX.off.physActive]) return timerLoadSlow(h, v);
  }
}

function timerLoadSlow(h: Host, v: number): void {
  const m = h.m;
  const vgic = m[D.inKernel] !== 0 && Atomics.load(m, D.initialized) !== 0;
  for (let t = 0; t < NR_VCPU_TIMERS; t++) {
    const level = timerShouldFire(h, v, t);
    updateIrq(h, v, t, level);
    const active = (vgic && mapIsActive(h, v, timerPpi(h, t))) || level;
    m[ctxOff(h, v, t) + TIMER_CTX.off.physActive] = active ? 1 : 0;
  }
  timerRearm(h, v);
}

function timerOf(pintid: number): number {
  return pintid === HOST_VTIMER_INTID ? VTIMER : pintid === HOST_PTIMER_INTID ? PTIMER : -1;
}

/**
 * irq_set_irqchip_state(host timer PPI, ACTIVE, false) on v's CPU: a HW LR for it was
 * deactivated (by the guest, or by the host for a trapped DIR), or its line was re-sampled low.
 */
export function timerPhysInactive(h: Host, v: number, pintid: number): void {
  const t = timerOf(pintid);
  if (t < 0 || v < 0) return;
  h.m[ctxOff(h, v, t) + TIMER_CTX.off.physActive] = 0;
  timerRearm(h, v);
}

/** get_input_level (kvm_arch_timer_get_input_level) for the timer behind host PPI `pintid`. */
export function timerInputLevel(h: Host, v: number, pintid: number): boolean {
  const t = timerOf(pintid);
  return t >= 0 && v >= 0 && timerShouldFire(h, v, t);
}

// The vgic reaches the timer's PPIs through these (its kvm_vgic_map_phys_irq irq_ops): every
// thread that runs a vCPU imports this module through the run loop, so they are set there.
setHostPpiOps({ inputLevel: timerInputLevel, inactive: timerPhysInactive });
