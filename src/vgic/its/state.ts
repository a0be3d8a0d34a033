/**
 * One ITS's tables in shared memory (shm ITS layout): devices, the ITE pool, collections. Every
 * function here expects the caller to hold that ITS's its_lock (spec §2.2), except the plain
 * offset helpers. Freeing an ITE drops its reference on the LPI record (vgic_put_irq), which takes
 * the LPI lock: its_lock ranks above it, so that is in order.
 */
import { DIST, ITS, ITS_COLLECTION, ITS_DEVICE, ITS_ITE, NR_COLLECTIONS, NR_ITES, NR_ITS_DEVICES } from '../../shm/layouts.js';
import { itsOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { lpiPut, lpiRecord } from '../lpi.js';
import { cacheInvalidate } from './cache.js';

export const DEV = ITS_DEVICE.off;
export const ITE = ITS_ITE.off;
export const COLL = ITS_COLLECTION.off;
/** ITE.icid of an ITE whose collection was unmapped (the kernel's ite->collection = NULL). */
export const NO_COLLECTION = -1;

export function devOff(h: Host, its: number, slot: number): number {
  return itsOff(h.g, its) + ITS.off.devices + slot * ITS_DEVICE.size;
}
export function iteOff(h: Host, its: number, slot: number): number {
  return itsOff(h.g, its) + ITS.off.ites + slot * ITS_ITE.size;
}
export function collOff(h: Host, its: number, slot: number): number {
  return itsOff(h.g, its) + ITS.off.collections + slot * ITS_COLLECTION.size;
}

/** Device slot of DeviceID, or -1. */
export function findDevice(h: Host, its: number, deviceId: number): number {
  const m = h.m;
  for (let i = 0; i < NR_ITS_DEVICES; i++) {
    const d = devOff(h, its, i);
    if (m[d + DEV.valid] && m[d + DEV.deviceId] === deviceId) return i;
  }
  return -1;
}

/** ITE slot of (device slot, EventID), or -1. */
export function findIte(h: Host, its: number, dev: number, eventId: number): number {
  const m = h.m;
  for (let i = m[devOff(h, its, dev) + DEV.iteHead]!; i >= 0; i = m[iteOff(h, its, i) + ITE.next]!) {
    if (m[iteOff(h, its, i) + ITE.eventId] === eventId) return i;
  }
  return -1;
}

/** Collection slot of ICID, or -1. */
export function findCollection(h: Host, its: number, icid: number): number {
  const m = h.m;
  for (let i = 0; i < NR_COLLECTIONS; i++) {
    const c = collOff(h, its, i);
    if (m[c + COLL.valid] && m[c + COLL.icid] === icid) return i;
  }
  return -1;
}

/** Target vCPU of collection ICID: its vCPU id, or -1 if it does not exist or is not mapped. */
export function collectionTarget(h: Host, its: number, icid: number): number {
  if (icid === NO_COLLECTION) return -1;
  const c = findCollection(h, its, icid);
  return c < 0 ? -1 : h.m[collOff(h, its, c) + COLL.target]!;
}

/** A free device slot (cleared), or -1 when the table is full (the kernel's -ENOMEM). */
export function allocDevice(h: Host, its: number, deviceId: number, ittAddr: number, eventBits: number): number {
  const m = h.m;
  for (let i = 0; i < NR_ITS_DEVICES; i++) {
    const d = devOff(h, its, i);
    if (m[d + DEV.valid]) continue;
    m[d + DEV.deviceId] = deviceId;
    m[d + DEV.ittLo] = ittAddr % 0x1_0000_0000 | 0;
    m[d + DEV.ittHi] = Math.floor(ittAddr / 0x1_0000_0000) | 0;
    m[d + DEV.eventBits] = eventBits;
    m[d + DEV.iteHead] = -1;
    m[d + DEV.valid] = 1;
    return i;
  }
  return -1;
}

export function deviceIttAddr(h: Host, its: number, dev: number): number {
  const d = devOff(h, its, dev);
  return (h.m[d + DEV.ittHi]! >>> 0) * 0x1_0000_0000 + (h.m[d + DEV.ittLo]! >>> 0);
}

/** A new ITE of device `dev` mapping EventID to LPI `intid` in collection `icid`, or -1 if full. */
export function allocIte(h: Host, its: number, dev: number, eventId: number, icid: number, intid: number): number {
  const m = h.m;
  for (let i = 0; i < NR_ITES; i++) {
    const e = iteOff(h, its, i);
    if (m[e + ITE.valid]) continue;
    const d = devOff(h, its, dev);
    m[e + ITE.dev] = dev;
    m[e + ITE.eventId] = eventId;
    m[e + ITE.icid] = icid;
    m[e + ITE.lpi] = intid;
    m[e + ITE.next] = m[d + DEV.iteHead]!;
    m[d + DEV.iteHead] = i;
    m[e + ITE.valid] = 1;
    return i;
  }
  return -1;
}

/** A new collection (unmapped target), or -1 when full. */
export function allocCollection(h: Host, its: number, icid: number, target: number): number {
  const m = h.m;
  for (let i = 0; i < NR_COLLECTIONS; i++) {
    const c = collOff(h, its, i);
    if (m[c + COLL.valid]) continue;
    m[c + COLL.icid] = icid;
    m[c + COLL.target] = target;
    m[c + COLL.valid] = 1;
    return i;
  }
  return -1;
}

/**
 * its_free_ite: unlink ITE `slot` of device `dev` and drop its LPI reference. The caller has
 * invalidated the translation cache first where the kernel does (DISCARD, device free), so that
 * no cached translation outlives the mapping it came from.
 */
export function freeIte(h: Host, its: number, dev: number, slot: number): void {
  const m = h.m;
  const d = devOff(h, its, dev);
  const e = iteOff(h, its, slot);
  let prev = -1;
  for (let i = m[d + DEV.iteHead]!; i >= 0; prev = i, i = m[iteOff(h, its, i) + ITE.next]!) {
    if (i !== slot) continue;
    if (prev < 0) m[d + DEV.iteHead] = m[e + ITE.next]!;
    else m[iteOff(h, its, prev) + ITE.next] = m[e + ITE.next]!;
    break;
  }
  m[e + ITE.valid] = 0;
  m[e + ITE.next] = -1;
  lpiPut(h, lpiRecord(h, m[e + ITE.lpi]!));
}

/** vgic_its_free_device: invalidate the cache, free every ITE, then the device. */
export function freeDevice(h: Host, its: number, dev: number): void {
  const m = h.m;
  cacheInvalidate(h, its);
  const d = devOff(h, its, dev);
  while (m[d + DEV.iteHead]! >= 0) freeIte(h, its, dev, m[d + DEV.iteHead]!);
  m[d + DEV.valid] = 0;
}

/** vgic_its_free_collection: ITEs in it lose their collection; then the collection goes. */
export function freeCollection(h: Host, its: number, slot: number): void {
  const m = h.m;
  const c = collOff(h, its, slot);
  const icid = m[c + COLL.icid]!;
  for (let i = 0; i < NR_ITES; i++) {
    const e = iteOff(h, its, i);
    if (m[e + ITE.valid] && m[e + ITE.icid] === icid) m[e + ITE.icid] = NO_COLLECTION;
  }
  m[c + COLL.valid] = 0;
}

/** Free everything: devices (and their ITEs), collections (RESET, BASER Valid cleared, destroy). */
export function freeAllDevices(h: Host, its: number): void {
  for (let i = 0; i < NR_ITS_DEVICES; i++) if (h.m[devOff(h, its, i) + DEV.valid]) freeDevice(h, its, i);
}
export function freeAllCollections(h: Host, its: number): void {
  for (let i = 0; i < NR_COLLECTIONS; i++) if (h.m[collOff(h, its, i) + COLL.valid]) freeCollection(h, its, i);
}

/** Call fn(itsIndex) for every ITS device created in this VM. */
export function forEachIts(h: Host, fn: (its: number) => void): void {
  const n = Atomics.load(h.m, h.g.distBase + DIST.off.nrIts);
  for (let i = 0; i < n; i++) fn(i);
}
