/**
 * LPIs (spec §1.7, §5.6, §9.6): records that exist only while referenced. LPI INTID
 * LPI_BASE + k lives in record lpiRecordBase + k; its `refcount` counts the ITEs that map it, its
 * presence on an ap_list, and translation-cache entries. A record whose count is 0 is free:
 * lookups "get unless zero" (never resurrect it), and allocation and release happen under the
 * LPI table lock (dist->lpi_xa), so that a release racing with a new allocation of the same INTID
 * cannot wipe the new one ("free vs re-add" race: the release re-checks the count under the lock).
 *
 * The ap_list reference is dropped under an ap_list_lock, below the LPI lock in the order: the
 * release is then deferred until the caller has dropped its spinlocks (the kernel's
 * vgic_put_irq_norelease + vgic_release_deleted_lpis).
 */
import { EventKind } from '../record/events.js';
import { BUG } from './bugs.js';
import { InvariantError } from '../check/invariants.js';
import { IRQ, LPI_BASE, MAX_LPIS, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { readGuest8, reg64, writeGuest8 } from './guest-mem.js';
import { EDGE } from './irq.js';
import { lockApList, lockIrq, lockLpi, unlockApList, unlockIrq, unlockLpi } from './locks.js';
import { apListUnlink, queueIrqUnlock } from './queue.js';
import { LockSite } from '../sync/lock-sites.js';

const R = IRQ.off;
/** GICR_CTLR.EnableLPIs (mmio/gicr.ts re-exports it; not imported from there: gicr imports us). */
export const GICR_CTLR_ENABLE_LPIS = 1 << 0;

/** Record of LPI `intid`, or -1 if the model has no record for it. */
export function lpiRecord(h: Host, intid: number): number {
  const k = intid - LPI_BASE;
  return k >= 0 && k < MAX_LPIS ? h.g.lpiRecordBase + k : -1;
}

export function isLpiRecord(h: Host, r: number): boolean {
  return r >= h.g.lpiRecordBase;
}

/** PROPBASER.IDbits -> one past the highest LPI INTID the guest's property table covers. */
export function lpiIntidLimit(h: Host): number {
  const idbits = Number(reg64(h.m, D.propbaserLo) & 0x1fn);
  const n = idbits >= 31 ? 2 ** 32 : 2 ** (idbits + 1);
  return Math.min(n, LPI_BASE + MAX_LPIS);
}

/** vgic_get_irq for an LPI: take a reference unless the record is free. */
export function lpiGet(h: Host, r: number): boolean {
  const i = irqOff(h.g, r) + R.refcount;
  if (h.bugs & BUG.lpiGetOnZero) {
    // Seeded: kref_get instead of get-unless-zero, which revives a freed record.
    Atomics.add(h.m, i, 1);
    return true;
  }
  for (let c = Atomics.load(h.m, i); c > 0; ) {
    const was = Atomics.compareExchange(h.m, i, c, c + 1);
    if (was === c) return true;
    c = was;
  }
  return false;
}

/** Another reference to a record the caller already holds one on (ap_list, cache, ITE copies). */
export function lpiGetHeld(h: Host, r: number): void {
  const was = Atomics.add(h.m, irqOff(h.g, r) + R.refcount, 1);
  if (was <= 0) throw new InvariantError(`LPI ${LPI_BASE + r - h.g.lpiRecordBase}: reference taken on a freed record (refcount was ${was})`);
}

function drop(h: Host, r: number): number {
  const left = Atomics.sub(h.m, irqOff(h.g, r) + R.refcount, 1) - 1;
  if (left < 0) throw new InvariantError(`LPI ${LPI_BASE + r - h.g.lpiRecordBase}: refcount went below zero`);
  return left;
}

/** vgic_put_irq for an LPI. The caller holds no ap_list or irq lock (the LPI lock ranks above). */
export function lpiPut(h: Host, r: number): void {
  if (drop(h, r) === 0) release(h, r);
}

/** Per thread: records whose last reference was dropped under an ap_list_lock. */
const deferred: number[] = [];

/** vgic_put_irq_norelease: under an ap_list_lock; call lpiReleaseDeferred once it is dropped. */
export function lpiPutLocked(h: Host, r: number): void {
  if (drop(h, r) === 0) deferred.push(r);
}

/** vgic_release_deleted_lpis: free what lpiPutLocked left, with no spinlock held. */
export function lpiReleaseDeferred(h: Host): void {
  while (deferred.length) release(h, deferred.pop()!);
}

/** Free the record if it is still unreferenced (a new allocation may have revived it meanwhile). */
function release(h: Host, r: number): void {
  const m = h.m;
  const b = irqOff(h.g, r);
  lockLpi(h);
  try {
    if (Atomics.load(m, b + R.refcount) !== 0 || m[b + R.intid] === 0) return;
    lockIrq(h, r, LockSite.LpiConfig);
    if (m[b + R.vcpu]! >= 0) {
      unlockIrq(h, r);
      throw new InvariantError(`LPI ${m[b + R.intid]} freed while still on vcpu${m[b + R.vcpu]}'s ap_list`);
    }
    m[b + R.intid] = 0;
    m[b + R.pendingLatch] = 0;
    m[b + R.active] = 0;
    m[b + R.enabled] = 0;
    m[b + R.target] = -1;
    m[b + R.onLr] = 0;
    unlockIrq(h, r);
  } finally {
    unlockLpi(h);
  }
}

/** Is record r an allocated LPI (intid non-zero and referenced)? For checks and reports. */
export function lpiLive(h: Host, r: number): boolean {
  const b = irqOff(h.g, r);
  return h.m[b + R.intid] !== 0 && Atomics.load(h.m, b + R.refcount) > 0;
}

/** The LPI's byte in the guest's property table (priority | enable), or -1 if unreadable. */
export function lpiPropByte(h: Host, intid: number): number {
  const prop = Number(reg64(h.m, D.propbaserLo) & 0x000f_ffff_ffff_f000n);
  return readGuest8(h, prop + intid - LPI_BASE) ?? -1;
}

/**
 * vgic_add_lpi: the record of `intid` with a new reference for the caller (an ITE), allocating it
 * if free. Several ITSs may map the same LPI: an allocated record is shared (race §12.10: the
 * check happens under the LPI lock, so two concurrent adds cannot both initialise it).
 */
export function lpiAdd(h: Host, intid: number, target: number): number {
  const r = lpiRecord(h, intid);
  if (r < 0) return -1;
  const m = h.m;
  const b = irqOff(h.g, r);
  let fresh = false;
  lockLpi(h);
  try {
    if (Atomics.load(m, b + R.refcount) > 0 && m[b + R.intid] === intid) {
      Atomics.add(m, b + R.refcount, 1);
    } else {
      lockIrq(h, r, LockSite.LpiConfig);
      m[b + R.intid] = intid;
      m[b + R.config] = EDGE;
      m[b + R.group] = 1;
      m[b + R.pendingLatch] = 0;
      m[b + R.lineLevel] = 0;
      m[b + R.active] = 0;
      m[b + R.enabled] = 0;
      m[b + R.priority] = 0;
      m[b + R.hw] = 0;
      m[b + R.owner] = 0;
      m[b + R.target] = target;
      m[b + R.lpiGen] = (m[b + R.lpiGen]! + 1) | 0;
      Atomics.store(m, b + R.refcount, 1);
      if (h.hist) h.hist.record(EventKind.MAP, intid, -1, target, 0);
      unlockIrq(h, r);
      fresh = true;
    }
  } finally {
    unlockLpi(h);
  }
  if (fresh) {
    lpiUpdateConfig(h, r);
    lpiSyncPending(h, r);
  }
  return r;
}

/**
 * update_lpi_config: take priority and enable from the property table (at map time and on INV,
 * INVALL); an LPI that became enabled while pending is queued.
 */
export function lpiUpdateConfig(h: Host, r: number): void {
  const m = h.m;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.LpiConfig);
  const intid = m[b + R.intid]!;
  const byte = intid ? lpiPropByte(h, intid) : -1;
  if (byte < 0) {
    unlockIrq(h, r);
    return;
  }
  m[b + R.priority] = byte & 0xfc;
  m[b + R.enabled] = byte & 1;
  if (h.hist) {
    h.hist.record(EventKind.PRIO, intid, -1, byte & 0xfc, 0);
    h.hist.record(EventKind.ENABLE, intid, -1, byte & 1, 0);
  }
  queueIrqUnlock(h, r);
}

/** GICR_CTLR.EnableLPIs of vCPU v's redistributor. */
export function lpisEnabled(h: Host, v: number): boolean {
  return (Atomics.load(h.m, vcpuOff(h.g, v) + VCPU.off.gicrCtlr) & GICR_CTLR_ENABLE_LPIS) !== 0;
}

/**
 * vgic_v3_lpi_sync_pending_status: consume the LPI's bit in its target's pending table (clear it
 * in guest memory) and make it pending. The target is read under the irq_lock and the bit is
 * handled there, so a retarget cannot make us read the wrong vCPU's table (race §12.14).
 */
export function lpiSyncPending(h: Host, r: number): void {
  const m = h.m;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.LpiConfig);
  const v = m[b + R.target]!;
  const intid = m[b + R.intid]!;
  if (v < 0 || !intid) {
    unlockIrq(h, r);
    return;
  }
  const vb = vcpuOff(h.g, v);
  const pend = Number(reg64(m, vb + VCPU.off.pendbaserLo) & 0x000f_ffff_ffff_0000n);
  const byte = readGuest8(h, pend + (intid >> 3));
  const bit = 1 << (intid & 7);
  if (byte === null || !(byte & bit)) {
    unlockIrq(h, r);
    return;
  }
  writeGuest8(h, pend + (intid >> 3), byte & ~bit);
  m[b + R.pendingLatch] = 1;
  if (h.hist) h.hist.record(EventKind.PEND, intid, -1, 0, -1);
  queueIrqUnlock(h, r);
}

/**
 * An MSI (or INT) resolved to LPI record r: set it pending and queue it. The caller holds a
 * reference, so the record cannot be freed under us; a freed record here is a use-after-free.
 */
export function lpiInject(h: Host, r: number): void {
  const m = h.m;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.LpiInject);
  if (Atomics.load(m, b + R.refcount) <= 0 || m[b + R.intid] === 0) {
    unlockIrq(h, r);
    throw new InvariantError(`LPI record ${r - h.g.lpiRecordBase + LPI_BASE}: made pending after it was freed`);
  }
  m[b + R.pendingLatch] = 1;
  if (h.hist) h.hist.record(EventKind.PEND, m[b + R.intid]!, -1, 0, -1);
  queueIrqUnlock(h, r);
}

/** Call fn for every allocated LPI record, holding a reference on it during the call. */
export function forEachLpi(h: Host, fn: (r: number) => void): void {
  for (let k = 0; k < MAX_LPIS; k++) {
    const r = h.g.lpiRecordBase + k;
    if (!lpiGet(h, r)) continue; // freed concurrently: skip it (race §12.9)
    try {
      fn(r);
    } finally {
      lpiPut(h, r);
    }
  }
}

/** vgic_enable_lpis: a redistributor enabled LPIs: pick up the pending bits of its LPIs. */
export function vgicEnableLpis(h: Host, v: number): void {
  forEachLpi(h, (r) => {
    if (h.m[irqOff(h.g, r) + R.target] === v) lpiSyncPending(h, r);
  });
}

/**
 * vgic_flush_pending_lpis: the redistributor disabled its LPIs: take every LPI off vCPU v's
 * ap_list and drop the list's reference (the pending latch stays, as in the kernel).
 */
export function flushPendingLpis(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  lockApList(h, v, LockSite.LpiConfig);
  try {
    for (let r = m[vb + VCPU.off.apHead]!; r >= 0; ) {
      const b = irqOff(h.g, r);
      const next = m[b + R.next]!;
      if (r >= h.g.lpiRecordBase) {
        lockIrq(h, r, LockSite.LpiConfig);
        apListUnlink(h, v, r);
        m[b + R.vcpu] = -1;
        unlockIrq(h, r);
        lpiPutLocked(h, r);
      }
      r = next;
    }
  } finally {
    unlockApList(h, v);
  }
  lpiReleaseDeferred(h);
}

/**
 * vgic_v3_save_pending_tables (KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES): write every LPI's pending
 * state into its target redistributor's pending table in guest RAM, setting or clearing its bit.
 * Only the LPI part of a table is touched (its first KiB, INTIDs below 8192, never is). The caller
 * has stopped every vCPU. Returns false if a table is outside guest RAM (the kernel's -EFAULT).
 */
export function savePendingTables(h: Host): boolean {
  let ok = true;
  forEachLpi(h, (r) => {
    const m = h.m;
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.LpiConfig);
    const v = m[b + R.target]!;
    const intid = m[b + R.intid]!;
    const pending = m[b + R.pendingLatch] !== 0;
    unlockIrq(h, r);
    if (v < 0 || !intid) return;
    const pend = Number(reg64(m, vcpuOff(h.g, v) + VCPU.off.pendbaserLo) & 0x000f_ffff_ffff_0000n);
    if (!pend) return;
    const at = pend + (intid >> 3);
    const byte = readGuest8(h, at);
    if (byte === null) {
      ok = false;
      return;
    }
    const bit = 1 << (intid & 7);
    writeGuest8(h, at, pending ? byte | bit : byte & ~bit);
  });
  return ok;
}
