/**
 * MSI translation (spec §8.7, §9.5): (doorbell, DeviceID, EventID) -> ITS -> device -> ITE ->
 * collection -> vCPU -> LPI made pending. Three callers: the guest's GITS_TRANSLATER write, the
 * VMM's KVM_SIGNAL_MSI, and irqfds with MSI routes (whose fast path may only use the cache).
 */
import { kvmErr } from '../../uapi/errno.js';
import { KVM_MSI_VALID_DEVID } from '../../uapi/kvm.js';
import { ITS } from '../../shm/layouts.js';
import { itsOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { D } from '../host.js';
import { lockIts, unlockIts } from '../locks.js';
import { lpiGet, lpiInject, lpiPut, lpiRecord, lpisEnabled } from '../lpi.js';
import { cacheInsert, cacheLookup, cachePut } from './cache.js';
import { collectionTarget, findDevice, findIte, ITE, iteOff } from './state.js';

/** GITS_TRANSLATER's offset in the ITS frame (the second 64 KiB page). */
export const GITS_TRANSLATER = 0x10040;
/** An ITS frame: control page + translation page. */
export const ITS_FRAME_SIZE = 0x20000;

/** The ITS whose GITS_TRANSLATER is at `addr`, or -1 (the kernel's vgic_msi_to_its). */
export function itsByDoorbell(h: Host, addr: number): number {
  const n = Atomics.load(h.m, D.nrIts);
  for (let i = 0; i < n; i++) {
    const b = itsOff(h.g, i);
    if (h.m[b + ITS.off.initialized] && h.f[(b + ITS.off.base) / 2]! + GITS_TRANSLATER === addr) return i;
  }
  return -1;
}

/** The ITS whose 128 KiB frame holds `gpa`, or -1 (guest MMIO routing). */
export function itsByFrame(h: Host, gpa: number): number {
  const n = Atomics.load(h.m, D.nrIts);
  for (let i = 0; i < n; i++) {
    const base = h.f[(itsOff(h.g, i) + ITS.off.base) / 2]!;
    if (base >= 0 && gpa >= base && gpa < base + ITS_FRAME_SIZE && h.m[itsOff(h.g, i) + ITS.off.initialized]) return i;
  }
  return -1;
}

/** Outcomes of a slow-path translation (vgic_its_trigger_msi's). */
export const enum MsiResult {
  Delivered = 1,
  /** An ITS error (unmapped device/event/collection): the guest's MSI is dropped. */
  Blocked = 0,
  /** The ITS is disabled, or the target redistributor has LPIs disabled (-EBUSY). */
  Busy = -16,
}

/**
 * vgic_its_resolve_lpi + trigger, under its_lock. Returns the outcome; on success the LPI is
 * pending and the translation cached.
 */
export function itsTranslateLocked(h: Host, its: number, deviceId: number, eventId: number): MsiResult {
  const m = h.m;
  if (!Atomics.load(m, itsOff(h.g, its) + ITS.off.enabled)) return MsiResult.Busy;
  const dev = findDevice(h, its, deviceId);
  if (dev < 0) return MsiResult.Blocked;
  const ite = findIte(h, its, dev, eventId);
  if (ite < 0) return MsiResult.Blocked;
  const e = iteOff(h, its, ite);
  const v = collectionTarget(h, its, m[e + ITE.icid]!);
  if (v < 0 || v >= Atomics.load(m, D.onlineVcpus)) return MsiResult.Blocked;
  if (!lpisEnabled(h, v)) return MsiResult.Busy;
  const r = lpiRecord(h, m[e + ITE.lpi]!);
  if (r < 0 || !lpiGet(h, r)) return MsiResult.Blocked;
  try {
    cacheInsert(h, its, deviceId, eventId, r);
    lpiInject(h, r);
  } finally {
    lpiPut(h, r);
  }
  return MsiResult.Delivered;
}

/** The fast path: a cached translation, without any lock. False on a miss (-EWOULDBLOCK). */
export function itsInjectCached(h: Host, its: number, deviceId: number, eventId: number): boolean {
  const r = cacheLookup(h, its, deviceId, eventId);
  if (r < 0) return false;
  try {
    lpiInject(h, r);
  } finally {
    cachePut(h, r);
  }
  return true;
}

/**
 * vgic_its_inject_msi: cache first, then the slow path under its_lock. `addr` is the doorbell.
 * Throws EINVAL (not an ITS doorbell) and EBUSY (ITS or LPIs disabled); returns 1 when delivered
 * and 0 when the ITS dropped it (KVM_SIGNAL_MSI's convention).
 */
export function vgicItsInjectMsi(h: Host, addr: number, deviceId: number, eventId: number, flags = KVM_MSI_VALID_DEVID): number {
  const its = itsByDoorbell(h, addr);
  if (its >= 0 && itsInjectCached(h, its, deviceId, eventId)) return 1;
  // The slow path needs the DeviceID (vgic_msi_to_its), and a doorbell that is an ITS.
  if (!(flags & KVM_MSI_VALID_DEVID)) kvmErr('EINVAL', 'MSI without KVM_MSI_VALID_DEVID: an ITS needs the DeviceID');
  if (its < 0) kvmErr('EINVAL', `MSI doorbell 0x${addr.toString(16)} is no ITS's GITS_TRANSLATER`);
  lockIts(h, its);
  let res: MsiResult;
  try {
    res = itsTranslateLocked(h, its, deviceId, eventId);
  } finally {
    unlockIts(h, its);
  }
  if (res === MsiResult.Busy) kvmErr('EBUSY', 'the ITS is disabled or the target redistributor has LPIs disabled');
  return res === MsiResult.Delivered ? 1 : 0;
}

/**
 * A guest's write to GITS_TRANSLATER of ITS `its` (via the DeviceID sideband): like an MSI, but
 * every failure is silent, as a device's dropped write would be.
 */
export function vgicItsInjectMsiSafe(h: Host, its: number, deviceId: number, eventId: number): void {
  if (itsInjectCached(h, its, deviceId, eventId)) return;
  lockIts(h, its);
  try {
    itsTranslateLocked(h, its, deviceId, eventId);
  } finally {
    unlockIts(h, its);
  }
}
