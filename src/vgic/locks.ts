/**
 * The vgic's lock mapping. `fine` (2016+ kernel): one irq_lock per record, one ap_list_lock per
 * vCPU. `global` (2014 kernel): both map onto the single distributor lock; an inner acquisition
 * while the thread already holds it is elided, as dist->lock covered whole paths then.
 * Same call sites, same algorithms: the A/B for contention studies differs only here.
 */
import { DIST, IRQ, ITS, VCPU } from '../shm/layouts.js';
import { irqOff, itsOff, vcpuOff } from '../shm/vm-memory.js';
import { acquire, assertHeld, release, SPIN_LIMIT_MUTEX, SPIN_LIMIT_SPINLOCK, tryAcquire } from '../sync/lock.js';
import { LockClass } from '../sync/lock-classes.js';
import { LockSite } from '../sync/lock-sites.js';
import type { Host } from './host.js';

function globalLock(h: Host, site: LockSite): void {
  // The outermost acquisition names the site: dist->lock covers the whole path from there.
  if (h.t.globalDepth++ === 0) acquire(h.t, h.g.distBase + DIST.off.distLock, LockClass.DistLock, -1, SPIN_LIMIT_SPINLOCK, false, site);
}
function globalUnlock(h: Host): void {
  if (--h.t.globalDepth === 0) release(h.t, h.g.distBase + DIST.off.distLock, LockClass.DistLock);
}

/** `site`: the caller's LockSite (sync/lock-sites.ts), so lock_stat can name contention points. */
export function lockIrq(h: Host, r: number, site: LockSite = LockSite.Other): void {
  if (h.global) return globalLock(h, site);
  acquire(h.t, irqOff(h.g, r) + IRQ.off.lock, LockClass.IrqLock, r, SPIN_LIMIT_SPINLOCK, false, site);
}
export function unlockIrq(h: Host, r: number): void {
  if (h.global) return globalUnlock(h);
  release(h.t, irqOff(h.g, r) + IRQ.off.lock, LockClass.IrqLock);
}
export function lockApList(h: Host, v: number, site: LockSite = LockSite.Other): void {
  if (h.global) return globalLock(h, site);
  acquire(h.t, vcpuOff(h.g, v) + VCPU.off.apLock, LockClass.ApListLock, v, SPIN_LIMIT_SPINLOCK, false, site);
}
export function unlockApList(h: Host, v: number): void {
  if (h.global) return globalUnlock(h);
  release(h.t, vcpuOff(h.g, v) + VCPU.off.apLock, LockClass.ApListLock);
}

export function lockConfig(h: Host, site: LockSite = LockSite.Other): void {
  acquire(h.t, h.g.distBase + DIST.off.configLock, LockClass.ConfigLock, -1, SPIN_LIMIT_MUTEX, false, site);
}
export function tryLockConfig(h: Host): boolean {
  return tryAcquire(h.t, h.g.distBase + DIST.off.configLock, LockClass.ConfigLock, -1);
}
export function unlockConfig(h: Host): void {
  release(h.t, h.g.distBase + DIST.off.configLock, LockClass.ConfigLock);
}
export function lockKvm(h: Host, site: LockSite = LockSite.Other): void {
  acquire(h.t, h.g.distBase + DIST.off.kvmLock, LockClass.KvmLock, -1, SPIN_LIMIT_MUTEX, false, site);
}
export function unlockKvm(h: Host): void {
  release(h.t, h.g.distBase + DIST.off.kvmLock, LockClass.KvmLock);
}
export function lockVcpuMutex(h: Host, v: number, site: LockSite = LockSite.Other): void {
  acquire(h.t, vcpuOff(h.g, v) + VCPU.off.mutex, LockClass.VcpuMutex, v, SPIN_LIMIT_MUTEX, false, site);
}
export function tryLockVcpuMutex(h: Host, v: number, site: LockSite = LockSite.Other): boolean {
  return tryAcquire(h.t, vcpuOff(h.g, v) + VCPU.off.mutex, LockClass.VcpuMutex, v, site);
}
export function unlockVcpuMutex(h: Host, v: number): void {
  release(h.t, vcpuOff(h.g, v) + VCPU.off.mutex, LockClass.VcpuMutex);
}

/** Checking mode (lockdep or lockset checking): the lockdep_assert_held assertions are live. */
function asserting(h: Host): boolean {
  return h.t.lockdep || !!h.cfg.checkAccess;
}
/** lockdep_assert_held(&kvm->lock); `where` names the function for the report. */
export function assertKvmLocked(h: Host, where: string): void {
  assertHeld(h.t, asserting(h), h.g.distBase + DIST.off.kvmLock, LockClass.KvmLock, -1, where);
}
/** lockdep_assert_held(&kvm->arch.config_lock). */
export function assertConfigLocked(h: Host, where: string): void {
  assertHeld(h.t, asserting(h), h.g.distBase + DIST.off.configLock, LockClass.ConfigLock, -1, where);
}

/** Helper for paths that run a body under one lock pair and must release on throw. */
export function withConfigLock<T>(h: Host, body: () => T): T {
  lockConfig(h);
  try {
    return body();
  } finally {
    unlockConfig(h);
  }
}

/** dist->lpi_xa's lock: LPI allocation and release (ranks above ap_list_lock). */
export function lockLpi(h: Host, site: LockSite = LockSite.Other): void {
  acquire(h.t, h.g.distBase + DIST.off.lpiLock, LockClass.LpiLock, -1, SPIN_LIMIT_SPINLOCK, false, site);
}
export function unlockLpi(h: Host): void {
  release(h.t, h.g.distBase + DIST.off.lpiLock, LockClass.LpiLock);
}
/** its->cmd_lock of ITS instance `its`. */
export function lockItsCmd(h: Host, its: number, site: LockSite = LockSite.Other): void {
  acquire(h.t, itsOff(h.g, its) + ITS.off.cmdLock, LockClass.ItsCmdLock, its, SPIN_LIMIT_MUTEX, false, site);
}
export function unlockItsCmd(h: Host, its: number): void {
  release(h.t, itsOff(h.g, its) + ITS.off.cmdLock, LockClass.ItsCmdLock);
}
/** its->its_lock of ITS instance `its`. */
export function lockIts(h: Host, its: number, site: LockSite = LockSite.Other): void {
  acquire(h.t, itsOff(h.g, its) + ITS.off.itsLock, LockClass.ItsLock, its, SPIN_LIMIT_MUTEX, false, site);
}
export function unlockIts(h: Host, its: number): void {
  release(h.t, itsOff(h.g, its) + ITS.off.itsLock, LockClass.ItsLock);
}
