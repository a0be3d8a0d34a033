/**
 * The guest-visible virtual CPU interface operating on the vCPU's list registers: what GICv3
 * hardware does with ICH_LR<n> (and the kernel's trap emulation in hyp/vgic-v3-sr.c mirrors), and
 * what the GICv2 GICV frame does with GICH_LR<n>. Spec §5.1-5.3.
 *
 * Runs only on the vCPU's own thread while it is in the guest, so LR and VMCR words are accessed
 * plainly: nobody else touches them until the vCPU exits and folds.
 *
 * Priorities: 5 implemented bits (VGIC_PRI_BITS), so 32 preemption levels; the minimum binary
 * points are BPR0 = 2 and BPR1 = 3, and the active-priority registers keep one bit per level.
 */
import { ICC_IAR_SPURIOUS, VGIC_MIN_LPI, VGIC_NR_SGIS, VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { LR, LR_ACTIVE, LR_PENDING, VCPU } from '../shm/layouts.js';
import { physDeactivate } from './phys-irq.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { lrOff } from './lr.js';
import { EOICOUNT_MAX } from './lr-mainline.js';

export const PRI_BITS = 5;
export const MIN_BPR0 = 7 - PRI_BITS;
export const MIN_BPR1 = MIN_BPR0 + 1;

/** What a deactivation did, so the caller knows whether the LR asks for maintenance. */
export const enum Deact {
  None = 0,
  Done = 1,
  /** The LR went invalid with its EOI bit set: a maintenance interrupt (guest exit) follows. */
  Maintenance = 2,
  /** In no LR: EOIcount went up (a maintenance interrupt follows when LRENPIE is set). */
  Counted = 3,
  /** DIR of an INTID in no LR while TDIR is set: the write traps to the host (vgicDeactivate). */
  Trap = 4,
}

/** EOIcount += 1; the 5-bit field saturates here rather than wrap (a wrap would lose EOIs). */
function bumpEoiCount(m: Int32Array, vb: number): void {
  if (m[vb + VCPU.off.eoiCount]! < EOICOUNT_MAX) m[vb + VCPU.off.eoiCount]!++;
}

export function readBpr0(m: Int32Array, vb: number): number {
  return Math.max(m[vb + VCPU.off.bpr0]!, MIN_BPR0);
}
export function readBpr1(m: Int32Array, vb: number): number {
  if (m[vb + VCPU.off.cbpr]) return Math.min(readBpr0(m, vb) + 1, 7);
  return Math.max(m[vb + VCPU.off.bpr1]!, MIN_BPR1);
}

/** Group priority (preemption priority) of `prio` for group `grp` (__vgic_v3_pri_to_pre). */
export function preemptPriority(m: Int32Array, vb: number, prio: number, grp: number): number {
  const bpr = grp ? readBpr1(m, vb) : readBpr0(m, vb) + 1;
  return prio & ((0xff << bpr) & 0xff);
}

/** Running priority: the highest active priority in AP0R|AP1R, 0xFF when nothing is active. */
export function runningPriority(m: Int32Array, vb: number): number {
  const ap = m[vb + VCPU.off.ap0r]! | m[vb + VCPU.off.ap1r]!;
  if (ap === 0) return 0xff;
  return (31 - Math.clz32(ap & -ap)) << (8 - PRI_BITS);
}

function groupEnabled(m: Int32Array, vb: number, grp: number): boolean {
  return (grp ? m[vb + VCPU.off.eng1] : m[vb + VCPU.off.eng0]) !== 0;
}

/** The highest-priority LR in state exactly Pending whose group is enabled, or -1. */
export function highestPendingLr(h: Host, v: number): number {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const used = m[vb + VCPU.off.usedLrs]!;
  let best = -1;
  let bestPrio = 0x100;
  for (let i = 0; i < used; i++) {
    const lb = lrOff(h, v, i);
    if (m[lb + LR.off.state] !== LR_PENDING) continue;
    if (!groupEnabled(m, vb, m[lb + LR.off.group]!)) continue;
    const p = m[lb + LR.off.priority]!;
    if (p < bestPrio) {
      bestPrio = p;
      best = i;
    }
  }
  return best;
}

/** Would the CPU interface signal an IRQ now (priority below PMR and preempting the running one)? */
export function deliverableLr(h: Host, v: number): number {
  const i = highestPendingLr(h, v);
  if (i < 0) return -1;
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const lb = lrOff(h, v, i);
  const p = m[lb + LR.off.priority]!;
  if (p >= m[vb + VCPU.off.pmr]!) return -1;
  if (runningPriority(m, vb) <= preemptPriority(m, vb, p, m[lb + LR.off.group]!)) return -1;
  return i;
}

/**
 * Acknowledge (ICC_IAR0/1_EL1, GICC_IAR). `grp` is the register's group, or -1 for GICv2's GICC_IAR,
 * which acknowledges either group. Returns the INTID (v2 SGIs carry the source CPU in [12:10]) or 1023.
 */
export function cpuIar(h: Host, v: number, grp: number): number {
  const i = highestPendingLr(h, v);
  if (i < 0) return ICC_IAR_SPURIOUS;
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const lb = lrOff(h, v, i);
  const lgrp = m[lb + LR.off.group]!;
  if (grp >= 0 && lgrp !== grp) return ICC_IAR_SPURIOUS;
  const p = m[lb + LR.off.priority]!;
  if (p >= m[vb + VCPU.off.pmr]!) return ICC_IAR_SPURIOUS;
  const pre = preemptPriority(m, vb, p, lgrp);
  if (runningPriority(m, vb) <= pre) return ICC_IAR_SPURIOUS;
  m[lb + LR.off.state] = LR_ACTIVE;
  const bit = 1 << (pre >> (8 - PRI_BITS));
  if (lgrp) m[vb + VCPU.off.ap1r] = m[vb + VCPU.off.ap1r]! | bit;
  else m[vb + VCPU.off.ap0r] = m[vb + VCPU.off.ap0r]! | bit;
  const intid = m[lb + LR.off.intid]!;
  if (m[D.model] === VGIC_MODEL_V2 && intid < VGIC_NR_SGIS) return intid | (m[lb + LR.off.cpuid]! << 10);
  return intid;
}

/** Drop the highest active priority; returns the dropped group priority, or 0xFF if none. */
function priorityDrop(m: Int32Array, vb: number): number {
  const a0 = m[vb + VCPU.off.ap0r]!;
  const a1 = m[vb + VCPU.off.ap1r]!;
  const ap = a0 | a1;
  if (ap === 0) return 0xff;
  const bit = ap & -ap;
  if (a0 & bit) m[vb + VCPU.off.ap0r] = a0 & ~bit;
  else m[vb + VCPU.off.ap1r] = a1 & ~bit;
  return (31 - Math.clz32(bit)) << (8 - PRI_BITS);
}

function findActiveLr(h: Host, v: number, intid: number, cpuid: number): number {
  const m = h.m;
  const used = m[vcpuOff(h.g, v) + VCPU.off.usedLrs]!;
  const v2 = m[D.model] === VGIC_MODEL_V2 && intid < VGIC_NR_SGIS;
  for (let i = 0; i < used; i++) {
    const lb = lrOff(h, v, i);
    if (m[lb + LR.off.intid] === intid && m[lb + LR.off.state]! & LR_ACTIVE && (!v2 || m[lb + LR.off.cpuid] === cpuid)) return i;
  }
  return -1;
}

function deactivateLr(h: Host, v: number, i: number): Deact {
  const m = h.m;
  const lb = lrOff(h, v, i);
  const st = m[lb + LR.off.state]! & ~LR_ACTIVE;
  m[lb + LR.off.state] = st;
  // HW bit: the physical interrupt is deactivated too, right here and without an exit; this is
  // why a forwarded interrupt needs no EOI maintenance and no resample (spec §10.2).
  if (st === 0 && m[lb + LR.off.hw]) physDeactivate(h, m[lb + LR.off.pintid]!);
  if (st === 0 && m[lb + LR.off.eoi]) return Deact.Maintenance;
  return Deact.Done;
}

/** End of interrupt (ICC_EOIR0/1_EL1, GICC_EOIR): priority drop, then deactivate unless EOImode=1. */
export function cpuEoir(h: Host, v: number, value: number, grp: number): Deact {
  // v2 SGIs carry the source CPU in [12:10]; v3 INTIDs are 24 bits wide.
  const v2 = h.m[D.model] === VGIC_MODEL_V2;
  const intid = v2 ? value & 0x3ff : value & 0xffffff;
  const cpuid = v2 ? (value >> 10) & 7 : 0;
  // Writes of the special INTIDs 1020-1023 are ignored by the CPU interface.
  if (intid >= 1020 && intid <= 1023) return Deact.None;
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const act = priorityDrop(m, vb);
  const i = findActiveLr(h, v, intid, cpuid);
  if (i < 0) {
    // Not in an LR: count it so the host can deactivate it (EOIcount counts the writes that would
    // have deactivated an interrupt). Not for LPIs, whose active state goes at priority drop, and
    // not with EOImode=1, where EOIR only drops priority and deactivation waits for DIR (the
    // premise of mainline's EOImode=1 handling: DIR traps instead).
    if (intid < VGIC_MIN_LPI && !m[vb + VCPU.off.eoiMode]) {
      bumpEoiCount(m, vb);
      return Deact.Counted;
    }
    return Deact.None;
  }
  if (m[vb + VCPU.off.eoiMode] && intid < VGIC_MIN_LPI) return Deact.None;
  const lb = lrOff(h, v, i);
  const lgrp = m[lb + LR.off.group]!;
  if ((grp >= 0 && grp !== lgrp) || preemptPriority(m, vb, m[lb + LR.off.priority]!, lgrp) !== act) return Deact.None;
  return deactivateLr(h, v, i);
}

/** Deactivate (ICC_DIR_EL1, GICC_DIR): only meaningful with EOImode=1; ignored for LPIs. Trap: call vgicDeactivate. */
export function cpuDir(h: Host, v: number, value: number): Deact {
  const v2 = h.m[D.model] === VGIC_MODEL_V2;
  const intid = v2 ? value & 0x3ff : value & 0xffffff;
  const cpuid = v2 ? (value >> 10) & 7 : 0;
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (!m[vb + VCPU.off.eoiMode] || intid >= VGIC_MIN_LPI) return Deact.None;
  if (intid >= 1020 && intid <= 1023) return Deact.None;
  const i = findActiveLr(h, v, intid, cpuid);
  if (i >= 0) return deactivateLr(h, v, i);
  // Not in an LR: with TDIR the write traps (mainline sets it while actives live outside the LRs
  // or SPIs are in flight); otherwise EOIcount tells the host at the next exit.
  if (m[vb + VCPU.off.tdir]) return Deact.Trap;
  bumpEoiCount(m, vb);
  return Deact.Counted;
}

/**
 * For the history: the priority of the LR just acknowledged (active, `intid`) and the best
 * priority among the other LRs that were deliverable at that moment (pending, group enabled,
 * below PMR), or 256 when none. Only called when history is recorded.
 */
export function ackTraceInfo(h: Host, v: number, intid: number): [number, number] {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const used = m[vb + VCPU.off.usedLrs]!;
  const pmr = m[vb + VCPU.off.pmr]!;
  let prio = 0;
  let best = 256;
  for (let i = 0; i < used; i++) {
    const lb = lrOff(h, v, i);
    const st = m[lb + LR.off.state]!;
    const p = m[lb + LR.off.priority]!;
    if (st === LR_ACTIVE && m[lb + LR.off.intid] === intid) prio = p;
    else if (st === LR_PENDING && groupEnabled(m, vb, m[lb + LR.off.group]!) && p < pmr && p < best) best = p;
  }
  return [prio, best];
}

/** Highest priority pending interrupt (ICC_HPPIR0/1, GICC_HPPIR). */
export function cpuHppir(h: Host, v: number, grp: number): number {
  const i = highestPendingLr(h, v);
  if (i < 0) return ICC_IAR_SPURIOUS;
  const lb = lrOff(h, v, i);
  if (grp >= 0 && h.m[lb + LR.off.group] !== grp) return ICC_IAR_SPURIOUS;
  const intid = h.m[lb + LR.off.intid]!;
  if (h.m[D.model] === VGIC_MODEL_V2 && intid < VGIC_NR_SGIS) return intid | (h.m[lb + LR.off.cpuid]! << 10);
  return intid;
}

/** Number of LRs still holding state (underflow maintenance fires at <= 1). */
export function validLrCount(h: Host, v: number): number {
  const m = h.m;
  const used = m[vcpuOff(h.g, v) + VCPU.off.usedLrs]!;
  let n = 0;
  for (let i = 0; i < used; i++) if (m[lrOff(h, v, i) + LR.off.state] !== 0) n++;
  return n;
}

/** Count of LRs with the pending bit (the guest's cheap "anything to take?" hint). */
export function pendingLrCount(h: Host, v: number): number {
  const m = h.m;
  const used = m[vcpuOff(h.g, v) + VCPU.off.usedLrs]!;
  let n = 0;
  for (let i = 0; i < used; i++) if (m[lrOff(h, v, i) + LR.off.state]! & LR_PENDING) n++;
  return n;
}
