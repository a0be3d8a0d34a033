/**
 * The per-ITS translation cache (spec §9.5): (DeviceID, EventID) -> LPI record, each entry holding
 * a reference on the record. Writers hold its_lock; the irqfd fast path reads without any lock:
 * each entry is a seqlock (seq odd while it changes), and a hit takes its own reference with
 * "get unless zero" and checks the record's generation before using it. That reference is the fix
 * for the 2024 use-after-free (CVE-2024-26598, race §12.8): a lookup that used the record without
 * one could race with a DISCARD that freed it.
 */
import { ITS, ITS_CACHE, NR_ITS_CACHE, IRQ } from '../../shm/layouts.js';
import { irqOff, itsOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { BUG } from '../bugs.js';
import { schedPoint, SchedPoint } from '../../sync/sched.js';
import { lockIts, unlockIts } from '../locks.js';
import { lpiGet, lpiGetHeld, lpiPut } from '../lpi.js';
import { forEachIts } from './state.js';

const C = ITS_CACHE.off;

function entryOff(h: Host, its: number, i: number): number {
  return itsOff(h.g, its) + ITS.off.cache + i * ITS_CACHE.size;
}

/**
 * Lock-free lookup. Returns the LPI record with a reference the caller must put, or -1 on a miss
 * (the kernel's -EWOULDBLOCK: the caller falls back to the slow path).
 */
export function cacheLookup(h: Host, its: number, deviceId: number, eventId: number): number {
  const m = h.m;
  for (let i = 0; i < NR_ITS_CACHE; i++) {
    const e = entryOff(h, its, i);
    const s1 = Atomics.load(m, e + C.seq);
    if (s1 & 1 || !Atomics.load(m, e + C.valid)) continue;
    if (Atomics.load(m, e + C.deviceId) !== deviceId || Atomics.load(m, e + C.eventId) !== eventId) continue;
    const r = Atomics.load(m, e + C.record);
    const gen = Atomics.load(m, e + C.gen);
    if (Atomics.load(m, e + C.seq) !== s1) return -1; // changed under us: take the slow path
    // The window of race §12.8: the entry was consistent, the record may be freed right now.
    schedPoint(SchedPoint.RcuRead, r);
    if (h.bugs & BUG.cacheNoRef) return r; // seeded: no reference (callers then do not put it)
    if (!lpiGet(h, r)) return -1; // freed since: a miss, never a resurrection
    if (m[irqOff(h.g, r) + IRQ.off.lpiGen] !== gen) {
      lpiPut(h, r); // freed and re-allocated for another mapping
      return -1;
    }
    return r;
  }
  return -1;
}

/** Drop the reference a cacheLookup hit gave (none under the cacheNoRef seed). */
export function cachePut(h: Host, r: number): void {
  if (!(h.bugs & BUG.cacheNoRef)) lpiPut(h, r);
}

function writeBegin(m: Int32Array, e: number): void {
  Atomics.add(m, e + C.seq, 1);
}
function writeEnd(m: Int32Array, e: number): void {
  Atomics.add(m, e + C.seq, 1);
}

/** vgic_its_cache_translation: remember r (the caller holds a reference; the cache takes its own). */
export function cacheInsert(h: Host, its: number, deviceId: number, eventId: number, r: number): void {
  const m = h.m;
  // Already cached (a racing insertion of the same key): keep the one we have.
  for (let i = 0; i < NR_ITS_CACHE; i++) {
    const e = entryOff(h, its, i);
    if (m[e + C.valid] && m[e + C.deviceId] === deviceId && m[e + C.eventId] === eventId) return;
  }
  const base = itsOff(h.g, its);
  const i = m[base + ITS.off.cacheHand]!;
  m[base + ITS.off.cacheHand] = (i + 1) % NR_ITS_CACHE;
  const e = entryOff(h, its, i);
  const old = m[e + C.valid] ? m[e + C.record]! : -1;
  lpiGetHeld(h, r);
  writeBegin(m, e);
  m[e + C.deviceId] = deviceId;
  m[e + C.eventId] = eventId;
  m[e + C.record] = r;
  m[e + C.gen] = m[irqOff(h.g, r) + IRQ.off.lpiGen]!;
  m[e + C.valid] = 1;
  writeEnd(m, e);
  if (old >= 0) lpiPut(h, old);
}

/** vgic_its_invalidate_cache: drop every entry of this ITS (caller holds its_lock). */
export function cacheInvalidate(h: Host, its: number): void {
  const m = h.m;
  for (let i = 0; i < NR_ITS_CACHE; i++) {
    const e = entryOff(h, its, i);
    if (!m[e + C.valid]) continue;
    const r = m[e + C.record]!;
    writeBegin(m, e);
    m[e + C.valid] = 0;
    writeEnd(m, e);
    lpiPut(h, r);
  }
}

/** vgic_its_invalidate_all_caches: every ITS of the VM (a redistributor disabled its LPIs). */
export function itsInvalidateAllCaches(h: Host): void {
  forEachIts(h, (its) => {
    lockIts(h, its);
    try {
      cacheInvalidate(h, its);
    } finally {
      unlockIts(h, its);
    }
  });
}
