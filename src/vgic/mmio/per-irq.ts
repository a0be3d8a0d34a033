/**
 * Per-IRQ register handlers shared by the distributor (v2 and v3) and the GICv3 redistributor's
 * SGI frame (kernel vgic-mmio.c; spec §6): IGROUPR, I{S,C}ENABLER, I{S,C}PENDR, I{S,C}ACTIVER,
 * IPRIORITYR, ICFGR. `c.intid` (set by the dispatcher) is the first INTID the access covers;
 * private INTIDs belong to `c.vcpu`.
 *
 * Locking: every field of a record is read and written under that record's irq_lock. Handlers
 * that make an interrupt deliverable (pending, enabled, active, group) release the lock through
 * queueIrqUnlock, which also requests and kicks (spec §3.6). No handler ever holds an irq_lock
 * while taking an ap_list_lock: ap_list_lock ranks first (spec §2.1).
 *
 * Hardware-mapped interrupts (irq.hw): the physical side (GICv4.1 vSGIs, forwarding the active or
 * pending state to the host interrupt, resampling a mapped level line) is not modelled in this
 * layer; the virtual state is handled as for a software interrupt.
 */
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../../uapi/kvm.js';
import { traceIrq, tracePend } from '../trace.js';
import { EventKind } from '../../record/events.js';
import { DIST, IRQ } from '../../shm/layouts.js';
import { irqOff } from '../../shm/vm-memory.js';
import { schedPoint, SchedPoint } from '../../sync/sched.js';
import { haltGuest, resumeGuest } from '../halt.js';
import { EDGE, irqIsPending, LEVEL } from '../irq.js';
import { lockConfig, lockIrq, unlockConfig, unlockIrq } from '../locks.js';
import { queueIrqUnlock } from '../queue.js';
import type { MmioCtx, RegRead, RegWrite } from './table.js';
import { LockSite } from '../../sync/lock-sites.js';

const MODEL_OFF = DIST.off.model;

/** Record index of INTID `intid` as seen by the access (private ones are c.vcpu's). */
export function recOf(c: MmioCtx, intid: number): number {
  return intid < VGIC_NR_PRIVATE_IRQS ? c.vcpu * 32 + intid : c.h.g.spiRecordBase + intid - VGIC_NR_PRIVATE_IRQS;
}

function isV2(c: MmioCtx): boolean {
  return c.h.m[c.h.g.distBase + MODEL_OFF] === 2;
}

/** Read one 1-bit-per-IRQ field of `len*8` records under each record's lock. */
function readBits(c: MmioCtx, len: number, field: number): number {
  const h = c.h;
  const m = h.m;
  let v = 0;
  for (let i = 0; i < len * 8; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    if (m[irqOff(h.g, r) + field] !== 0) v |= 1 << i;
    unlockIrq(h, r);
  }
  return v >>> 0;
}

// ---- IGROUPR -----------------------------------------------------------------------------------

export const readGroup: RegRead = (c, _a, len) => readBits(c, len, IRQ.off.group);

/** vgic_mmio_write_group: every bit is written; the group decides which LR group it lands in. */
export const writeGroup: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let i = 0; i < len * 8; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.group] = (val >>> i) & 1;
    if (h.hist) traceIrq(h, r, EventKind.GROUP, (val >>> i) & 1);
    queueIrqUnlock(h, r);
  }
};

/**
 * v2 userspace IGROUPR: ignored unless userspace first wrote GICD_IIDR (spec §6): old VMMs saved
 * zeros here, and restoring them would silently move every interrupt to group 0.
 */
export const uwriteGroupV2: RegWrite = (c, a, len, val) => {
  if (c.h.m[c.h.g.distBase + DIST.off.v2GroupsUserWritable]) writeGroup(c, a, len, val);
};

// ---- I{S,C}ENABLER -----------------------------------------------------------------------------

export const readEnable: RegRead = (c, _a, len) => readBits(c, len, IRQ.off.enabled);

/** vgic_mmio_write_senable (and the uaccess variant, identical without the HW side). */
export const writeSenable: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const r = recOf(c, c.intid + 31 - Math.clz32(low));
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.enabled] = 1;
    if (h.hist) traceIrq(h, r, EventKind.ENABLE, 1);
    queueIrqUnlock(h, r);
  }
};

/**
 * vgic_mmio_write_cenable: clear `enabled` only. No dequeue and no kick (spec §3.8): an IRQ
 * already in a running vCPU's LR stays deliverable until that vCPU exits and prunes it.
 */
export const writeCenable: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const r = recOf(c, c.intid + 31 - Math.clz32(low));
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.enabled] = 0;
    if (h.hist) traceIrq(h, r, EventKind.ENABLE, 0);
    unlockIrq(h, r);
  }
};

// ---- I{S,C}PENDR -------------------------------------------------------------------------------

/** pending(irq): latch for edge, latch OR line for level (spec §3.4). */
export const readPending: RegRead = (c, _a, len) => {
  const h = c.h;
  let v = 0;
  for (let i = 0; i < len * 8; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    if (irqIsPending(h.m, irqOff(h.g, r))) v |= 1 << i;
    unlockIrq(h, r);
  }
  return v >>> 0;
};

/**
 * GICv3 userspace ISPENDR read: the latch only (S23 arm-vgic-v3.rst). Userspace saves the line
 * level separately through LEVEL_INFO; folding it in here would turn it into a latch on restore.
 */
export const ureadPendingV3: RegRead = (c, _a, len) => readBits(c, len, IRQ.off.pendingLatch);

/** Guest ISPENDR: set the latch and queue. GICv2 SGI bits are WI (their pending state has sources: SPENDSGIR). */
export const writeSpending: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  const v2 = isV2(c);
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const intid = c.intid + 31 - Math.clz32(low);
    if (v2 && intid < VGIC_NR_SGIS) continue;
    const r = recOf(c, intid);
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.pendingLatch] = 1;
    if (h.hist) tracePend(h, r);
    schedPoint(SchedPoint.PublishLatch, r);
    queueIrqUnlock(h, r);
  }
};

/**
 * GICv2 userspace ISPENDR: SGI bits are accepted too, and since the source cannot be restored the
 * vCPU itself is recorded as the source (spec §5.4).
 */
export const uwriteSpendingV2: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  const m = h.m;
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const intid = c.intid + 31 - Math.clz32(low);
    const r = recOf(c, intid);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.MmioPerIrq);
    m[b + IRQ.off.pendingLatch] = 1;
    if (intid < VGIC_NR_SGIS) m[b + IRQ.off.source] = m[b + IRQ.off.source]! | (1 << c.vcpu);
    if (h.hist) tracePend(h, r, intid < VGIC_NR_SGIS ? c.vcpu : -1);
    queueIrqUnlock(h, r);
  }
};

/**
 * GICv3 userspace ISPENDR write: the register is the latch, so bit=1 sets it (and queues) and
 * bit=0 CLEARS it (spec §6); ICPENDR is RAZ/WI for userspace instead.
 */
export const uwritePendingV3: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let i = 0; i < len * 8; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    if ((val >>> i) & 1) {
      h.m[irqOff(h.g, r) + IRQ.off.pendingLatch] = 1;
      if (h.hist) tracePend(h, r);
      queueIrqUnlock(h, r);
    } else {
      h.m[irqOff(h.g, r) + IRQ.off.pendingLatch] = 0;
      if (h.hist) traceIrq(h, r, EventKind.UNPEND, 0, -1);
      unlockIrq(h, r);
    }
  }
};

/** Guest ICPENDR: clear the latch (a high level line stays pending). GICv2 SGI bits are WI. */
export const writeCpending: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  const v2 = isV2(c);
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const intid = c.intid + 31 - Math.clz32(low);
    if (v2 && intid < VGIC_NR_SGIS) continue;
    const r = recOf(c, intid);
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.pendingLatch] = 0;
    if (h.hist) traceIrq(h, r, EventKind.UNPEND, 0, -1);
    unlockIrq(h, r);
  }
};

/** GICv2 userspace ICPENDR: for SGIs, which source to clear is unknowable, so all go (spec §5.4). */
export const uwriteCpendingV2: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const intid = c.intid + 31 - Math.clz32(low);
    const r = recOf(c, intid);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.MmioPerIrq);
    if (intid < VGIC_NR_SGIS) h.m[b + IRQ.off.source] = 0;
    h.m[b + IRQ.off.pendingLatch] = 0;
    if (h.hist) traceIrq(h, r, EventKind.UNPEND, 0, -1);
    unlockIrq(h, r);
  }
};

// ---- I{S,C}ACTIVER -----------------------------------------------------------------------------

/**
 * vgic_access_active_prepare: must every vCPU be out of the guest first? An IRQ whose active state
 * changes while it sits in a running vCPU's LR would be overwritten at that vCPU's fold (race
 * §12.5). SPIs can be in any vCPU's LRs, and a GICv3 redistributor can be accessed by a vCPU other
 * than its owner; in both cases halt. A GICv2 private IRQ is only reachable by its own vCPU, which
 * is outside the guest (it is handling this access) and has folded already.
 */
function mustHalt(c: MmioCtx): boolean {
  return (!isV2(c) && c.vcpu !== c.accessor) || c.intid >= VGIC_NR_PRIVATE_IRQS;
}

/** Set/clear active on one record (vgic_mmio_change_active). Setting active queues the IRQ. */
function changeActive(c: MmioCtx, r: number, intid: number, active: boolean): void {
  const h = c.h;
  const m = h.m;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.MmioPerIrq);
  m[b + IRQ.off.active] = active ? 1 : 0;
  // The GICv2 architecture implies the active SGI's source is kept somewhere but never exposes
  // it: record the requester (0 for userspace) (spec §5.4).
  if (active && intid < VGIC_NR_SGIS && isV2(c)) m[b + IRQ.off.activeSource] = c.accessor >= 0 ? c.accessor : 0;
  if (h.hist) traceIrq(h, r, EventKind.ACTIVE, active ? 1 : 0);
  if (active) queueIrqUnlock(h, r);
  else unlockIrq(h, r);
}

function changeActiveBits(c: MmioCtx, val: number, active: boolean): void {
  for (let bits = val | 0; bits !== 0; ) {
    const low = bits & -bits;
    bits ^= low;
    const intid = c.intid + 31 - Math.clz32(low);
    changeActive(c, recOf(c, intid), intid, active);
  }
}

/** Guest I{S,C}ACTIVER access: config_lock, then halt if needed (spec §6), change, resume. */
function guestActive<T>(c: MmioCtx, body: () => T): T {
  const h = c.h;
  lockConfig(h);
  try {
    if (!mustHalt(c)) return body();
    haltGuest(h);
    try {
      return body();
    } finally {
      resumeGuest(h);
    }
  } finally {
    unlockConfig(h);
  }
}

/** Userspace read of active state: all vCPUs are locked out already, so no halt. */
export const ureadActive: RegRead = (c, _a, len) => readBits(c, len, IRQ.off.active);
export const readActive: RegRead = (c, a, len) => guestActive(c, () => ureadActive(c, a, len));

export const uwriteSactive: RegWrite = (c, _a, _len, val) => changeActiveBits(c, val, true);
export const uwriteCactive: RegWrite = (c, _a, _len, val) => changeActiveBits(c, val, false);
export const writeSactive: RegWrite = (c, _a, _len, val) => guestActive(c, () => changeActiveBits(c, val, true));
export const writeCactive: RegWrite = (c, _a, _len, val) => guestActive(c, () => changeActiveBits(c, val, false));

// ---- IPRIORITYR --------------------------------------------------------------------------------

/**
 * A byte-per-IRQ register read: byte i is the low 8 bits of `field` of record `firstRecord + i`,
 * each read under its irq_lock (IPRIORITYR, ITARGETSR, {S,C}PENDSGIR).
 */
export function readByteField(c: MmioCtx, firstRecord: number, len: number, field: number): number {
  const h = c.h;
  let v = 0;
  for (let i = 0; i < len; i++) {
    const r = firstRecord + i;
    lockIrq(h, r, LockSite.MmioPerIrq);
    v |= (h.m[irqOff(h.g, r) + field]! & 0xff) << (i * 8);
    unlockIrq(h, r);
  }
  return v >>> 0;
}

// Records of a byte-per-IRQ access are consecutive: a register never spans private and shared INTIDs.
export const readPriority: RegRead = (c, _a, len) => readByteField(c, recOf(c, c.intid), len, IRQ.off.priority);

/**
 * Byte per IRQ; only the 5 implemented priority bits are kept (VGIC_PRI_BITS). Queued IRQs are
 * not re-evaluated (spec §3.8): a new priority takes effect at the next LR population.
 */
export const writePriority: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let i = 0; i < len; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.priority] = (val >>> (i * 8)) & 0xf8;
    if (h.hist) traceIrq(h, r, EventKind.PRIO, (val >>> (i * 8)) & 0xf8);
    unlockIrq(h, r);
  }
};

// ---- ICFGR -------------------------------------------------------------------------------------

/** Two bits per IRQ; bit 2i+1 set means edge. */
export const readConfig: RegRead = (c, _a, len) => {
  const h = c.h;
  let v = 0;
  for (let i = 0; i < len * 4; i++) {
    const r = recOf(c, c.intid + i);
    lockIrq(h, r, LockSite.MmioPerIrq);
    if (h.m[irqOff(h.g, r) + IRQ.off.config] === EDGE) v |= 2 << (i * 2);
    unlockIrq(h, r);
  }
  return v >>> 0;
};

/**
 * SGIs are always edge; PPIs are made read-only (level) because the timer and PMU rely on it
 * (spec §6). Only SPIs change.
 */
export const writeConfig: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  for (let i = 0; i < len * 4; i++) {
    const intid = c.intid + i;
    if (intid < VGIC_NR_PRIVATE_IRQS) continue;
    const r = recOf(c, intid);
    lockIrq(h, r, LockSite.MmioPerIrq);
    h.m[irqOff(h.g, r) + IRQ.off.config] = (val >>> (i * 2 + 1)) & 1 ? EDGE : LEVEL;
    if (h.hist) traceIrq(h, r, EventKind.CFG, h.m[irqOff(h.g, r) + IRQ.off.config]!);
    unlockIrq(h, r);
  }
};
