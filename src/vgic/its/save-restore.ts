/**
 * ITS table save/restore (KVM_DEV_ARM_ITS_SAVE_TABLES / RESTORE_TABLES; spec §9.1, §9.7):
 * the ITS's devices, ITEs and collections are written to (and rebuilt from) the tables the guest
 * gave it through GITS_BASER0 (device table), each device's ITT, and GITS_BASER1 (collection
 * table), in table ABI revision 0. Every entry is 8 bytes, little-endian:
 *
 *   DTE  Valid[63] | Next[62:49] | ITT_addr[48:5] (address bits [51:8]) | Size[4:0] (eventid bits - 1)
 *   ITE  Next[63:48] | pINTID[47:16] (0 = no ITE) | ICID[15:0]
 *   CTE  Valid[63] | RES0[62:52] | RDbase[51:16] (the target vCPU id) | ICID[15:0]
 *
 * "Next" is the distance, in entries, to the next valid DTE (DeviceID delta) or ITE (EventID
 * delta), 0 for the last one, capped at the field's maximum (a capped delta lands on an invalid
 * entry, from which a restore steps one entry at a time). Device entries sit at DeviceID * 8 in a
 * flat table, or for an indirect (2-level) BASER0 in the 64 KiB level-2 page named by level-1
 * entry DeviceID / 8192 (Valid[63] | address[51:16]). ITEs sit at ITT + EventID * 8. CTEs are
 * stored one after another in no particular order, followed by one invalid entry if the table is
 * not full.
 *
 * Both run in the CTRL attribute path with kvm->lock, every vCPU mutex, config_lock and this
 * ITS's its_lock held (its-device.ts), so no command can run and no vCPU can touch the tables.
 *
 * Decisions where the spec (§9.7) is silent (facts from the kernel's vgic-its.c unless noted):
 * - An invalid BASER0 / BASER1 skips that table on save and on restore (success, nothing done).
 * - Unmapped collections are saved like mapped ones, with RDbase = 0xffffffff (the kernel's
 *   COLLECTION_NOT_MAPPED truncated to 32 bits), and a restore turns that value back into an
 *   unmapped collection; any other RDbase must name an existing vcpu_id or EINVAL.
 * - An ITE whose collection was unmapped (MAPC V=0; ICID = NO_COLLECTION) is not saved (model
 *   choice: the kernel dereferences the NULL collection here). Such an ITE can no longer
 *   translate, be moved or be discarded, so only its LPI reference is lost with it.
 * - Save: a DeviceID the device table cannot hold (beyond the flat table, level-1 entry invalid,
 *   outside guest RAM, > 16 bits) -> EINVAL, as the kernel's vgic_its_check_id. Model checks on
 *   top: an EventID beyond the device's eventid bits -> EINVAL; more collections than the
 *   collection table holds -> EINVAL (the kernel would write past the table). No GICv4 here, so
 *   no EACCES. A failed guest-memory write -> EFAULT.
 * - Restore: collections first, then devices; duplicated ICID -> EEXIST; ICID beyond the
 *   collection table -> EINVAL; DTE Size > 16 eventid bits -> EINVAL; ITE pINTID < 8192 or beyond
 *   the PROPBASER.IDbits limit (lpiIntidLimit; the kernel only checks the lower bound) -> EINVAL;
 *   ITE next offset past the device's EventID space -> EINVAL; unknown ICID -> EINVAL; model
 *   tables full -> ENOMEM; unreadable guest memory -> EFAULT.
 * - Restoring into an ITS that already holds state is not refused up front (the kernel does not
 *   either): a restored ICID that exists -> EEXIST, a restored DeviceID that exists -> EEXIST
 *   (model choice: the kernel would add a duplicate device). On any failure every device and
 *   collection of this ITS is freed, pre-existing ones included, as the kernel frees whole lists.
 * - Indirect device tables are supported both ways.
 */
import { kvmErr } from '../../uapi/errno.js';
import { ITS, LPI_BASE, NR_COLLECTIONS, NR_ITS_DEVICES } from '../../shm/layouts.js';
import { itsOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { vcpuIdOf, vcpuIdxById } from '../vcpu-id.js';
import { gpaValid, readGuest64, reg64, writeGuest64 } from '../guest-mem.js';
import { lpiAdd, lpiIntidLimit, lpiPut } from '../lpi.js';
import { NR_ITS_ABIS } from './mmio-its.js';
import {
  allocCollection, allocDevice, allocIte, COLL, collOff, DEV, deviceIttAddr, devOff, findCollection, findDevice,
  freeAllCollections, freeAllDevices, ITE, iteOff, NO_COLLECTION,
} from './state.js';

/** Entry size of every table in ABI revision 0 (DTE, ITE, CTE, level-1 entry). */
export const ITS_ABI0_ESZ = 8;
const ESZ = ITS_ABI0_ESZ;
const SZ_64K = 0x10000;
const VALID = 1n << 63n;
const BASER_INDIRECT = 1n << 62n;
/** BASER Physical_Address [47:16] (64 KiB pages). */
const BASER_ADDR = 0x0000_ffff_ffff_0000n;
/** Level-1 device table entry: Valid[63] | level-2 page address [51:16]. */
const L1E_ADDR = 0x000f_ffff_ffff_0000n;
/** GITS_TYPER.Devbits = 16, IDbits = 16, CIL = 0 (16-bit ICIDs). */
const MAX_DEVID = 0xffff;
const MAX_EVENTID_BITS = 16;
const MAX_ICID = 0xffff;
export const DTE_NEXT_MAX = (1 << 14) - 1;
export const ITE_NEXT_MAX = (1 << 16) - 1;
/** CTE RDbase of a collection with no target (COLLECTION_NOT_MAPPED as a u32). */
export const CTE_RDBASE_NOT_MAPPED = 0xffff_ffff;
const ITT_FIELD = (1n << 44n) - 1n;
const RDBASE_FIELD = (1n << 36n) - 1n;

/** One of the two tables, as BASER<n> describes it. */
interface Table {
  valid: boolean;
  indirect: boolean;
  base: number;
  bytes: number;
}

function table(h: Host, its: number, n: 0 | 1): Table {
  const b = itsOff(h.g, its);
  const v = reg64(h.m, b + (n === 0 ? ITS.off.baser0Lo : ITS.off.baser1Lo));
  return {
    valid: (v & VALID) !== 0n,
    indirect: n === 0 && (v & BASER_INDIRECT) !== 0n,
    base: Number(v & BASER_ADDR),
    bytes: (Number(v & 0xffn) + 1) * SZ_64K,
  };
}

/**
 * vgic_its_check_id for the device table: the guest address of DeviceID's DTE, or null when the
 * table cannot hold it (too large an id, beyond a flat table, level-1 entry invalid or
 * unreadable, or not guest RAM).
 */
function dteAddr(h: Host, t: Table, id: number): number | null {
  if (id < 0 || id > MAX_DEVID) return null;
  let addr: number;
  if (!t.indirect) {
    if (id >= t.bytes / ESZ) return null;
    addr = t.base + id * ESZ;
  } else {
    const perPage = SZ_64K / ESZ;
    const l1 = Math.floor(id / perPage);
    if (l1 >= t.bytes / ESZ) return null;
    const e = readGuest64(h, t.base + l1 * ESZ);
    if (e === null || !(e & VALID)) return null;
    addr = Number(e & L1E_ADDR) + (id % perPage) * ESZ;
  }
  return gpaValid(h, addr, ESZ) ? addr : null;
}

function checkAbi(h: Host, its: number): void {
  const rev = h.m[itsOff(h.g, its) + ITS.off.abiRev]!;
  if (rev < 0 || rev >= NR_ITS_ABIS) kvmErr('EINVAL', `ITS table ABI revision ${rev} is not supported`);
}

function write64(h: Host, gpa: number, v: bigint, what: string): void {
  if (!writeGuest64(h, gpa, v)) kvmErr('EFAULT', `ITS save: cannot write the ${what} at guest address 0x${gpa.toString(16)}`);
}

function read64(h: Host, gpa: number, what: string): bigint {
  const v = readGuest64(h, gpa);
  if (v === null) kvmErr('EFAULT', `ITS restore: cannot read the ${what} at guest address 0x${gpa.toString(16)}`);
  return v;
}

// ---- save ------------------------------------------------------------------------------------

/** KVM_DEV_ARM_ITS_SAVE_TABLES, with kvm->lock, every vCPU, config_lock and its_lock held. */
export function itsSaveTables(h: Host, its: number): void {
  checkAbi(h, its);
  saveDeviceTable(h, its);
  saveCollectionTable(h, its);
}

/** Valid device slots of this ITS, sorted by DeviceID. */
function sortedDevices(h: Host, its: number): number[] {
  const m = h.m;
  const out: number[] = [];
  for (let s = 0; s < NR_ITS_DEVICES; s++) if (m[devOff(h, its, s) + DEV.valid]) out.push(s);
  return out.sort((a, b) => m[devOff(h, its, a) + DEV.deviceId]! - m[devOff(h, its, b) + DEV.deviceId]!);
}

function saveDeviceTable(h: Host, its: number): void {
  const t = table(h, its, 0);
  if (!t.valid) return;
  const m = h.m;
  const devs = sortedDevices(h, its);
  devs.forEach((dev, i) => {
    const d = devOff(h, its, dev);
    const id = m[d + DEV.deviceId]!;
    const addr = dteAddr(h, t, id);
    if (addr === null) kvmErr('EINVAL', `ITS save: DeviceID ${id} has no entry in the device table`);
    saveItt(h, its, dev);
    const nextDev = devs[i + 1];
    const next = nextDev === undefined ? 0 : Math.min(m[devOff(h, its, nextDev) + DEV.deviceId]! - id, DTE_NEXT_MAX);
    const itt = BigInt(deviceIttAddr(h, its, dev));
    const size = BigInt((m[d + DEV.eventBits]! - 1) & 0x1f);
    write64(h, addr, VALID | (BigInt(next) << 49n) | (((itt >> 8n) & ITT_FIELD) << 5n) | size, `DTE of DeviceID ${id}`);
  });
}

function saveItt(h: Host, its: number, dev: number): void {
  const m = h.m;
  const d = devOff(h, its, dev);
  const itt = deviceIttAddr(h, its, dev);
  const bits = m[d + DEV.eventBits]!;
  const ites: number[] = [];
  for (let i = m[d + DEV.iteHead]!; i >= 0; i = m[iteOff(h, its, i) + ITE.next]!) {
    if (m[iteOff(h, its, i) + ITE.icid] !== NO_COLLECTION) ites.push(i);
  }
  const ev = (s: number): number => m[iteOff(h, its, s) + ITE.eventId]! >>> 0;
  ites.sort((a, b) => ev(a) - ev(b));
  ites.forEach((slot, k) => {
    const e = iteOff(h, its, slot);
    const eventId = ev(slot);
    if (eventId >= 2 ** bits) kvmErr('EINVAL', `ITS save: EventID ${eventId} of DeviceID ${m[d + DEV.deviceId]} is beyond its ${bits} eventid bits`);
    // (The kernel fails with -EACCES for a GICv4-forwarded LPI; this model has no GICv4.)
    const intid = m[e + ITE.lpi]!;
    const nextSlot = ites[k + 1];
    const next = nextSlot === undefined ? 0 : Math.min(ev(nextSlot) - eventId, ITE_NEXT_MAX);
    const icid = BigInt(m[e + ITE.icid]! & MAX_ICID);
    write64(h, itt + eventId * ESZ, (BigInt(next) << 48n) | (BigInt(intid >>> 0) << 16n) | icid, `ITE of EventID ${eventId}`);
  });
}

function saveCollectionTable(h: Host, its: number): void {
  const t = table(h, its, 1);
  if (!t.valid) return;
  const m = h.m;
  let filled = 0;
  for (let s = 0; s < NR_COLLECTIONS; s++) {
    const c = collOff(h, its, s);
    if (!m[c + COLL.valid]) continue;
    if (filled + ESZ > t.bytes) kvmErr('EINVAL', `ITS save: more collections than the ${t.bytes}-byte collection table holds`);
    const target = m[c + COLL.target]!;
    const rd = BigInt(target < 0 ? CTE_RDBASE_NOT_MAPPED : vcpuIdOf(h, target)); // RDbase is the vcpu_id
    write64(h, t.base + filled, VALID | (rd << 16n) | BigInt(m[c + COLL.icid]! & MAX_ICID), `CTE of ICID ${m[c + COLL.icid]}`);
    filled += ESZ;
  }
  if (filled < t.bytes) write64(h, t.base + filled, 0n, 'collection table terminator');
}

// ---- restore ---------------------------------------------------------------------------------

/** KVM_DEV_ARM_ITS_RESTORE_TABLES, same locking. Any failure leaves the ITS empty. */
export function itsRestoreTables(h: Host, its: number): void {
  checkAbi(h, its);
  try {
    restoreCollectionTable(h, its);
    restoreDeviceTable(h, its);
  } catch (e) {
    freeAllDevices(h, its);
    freeAllCollections(h, its);
    throw e;
  }
}

/**
 * scan_its_table: read `size` bytes of 8-byte entries from `base`, the first having id `startId`,
 * calling fn(id, entry). fn returns how many entries to step (1 for an invalid entry, the next
 * offset for a valid one) or 0 after the last valid entry; errors are thrown. Returns 0 when fn
 * said "last", 1 when the scan ran off the end of the table.
 */
function scanTable(h: Host, base: number, size: number, startId: number, what: string, fn: (id: number, entry: bigint) => number): 0 | 1 {
  let id = startId;
  let gpa = base;
  let len = size;
  for (;;) {
    const step = fn(id, read64(h, gpa, what));
    if (step <= 0) return 0;
    const bytes = step * ESZ;
    if (bytes >= len) return 1;
    id += step;
    gpa += bytes;
    len -= bytes;
  }
}

function restoreCollectionTable(h: Host, its: number): void {
  const t = table(h, its, 1);
  if (!t.valid) return;
  for (let off = 0; off < t.bytes; off += ESZ) {
    const e = read64(h, t.base + off, 'collection table entry');
    if (!(e & VALID)) return;
    const rd = Number((e >> 16n) & RDBASE_FIELD);
    const icid = Number(e & BigInt(MAX_ICID));
    const target = rd === CTE_RDBASE_NOT_MAPPED ? -1 : vcpuIdxById(h, rd);
    if (rd !== CTE_RDBASE_NOT_MAPPED && target < 0) kvmErr('EINVAL', `ITS restore: collection ${icid} targets vCPU ${rd}, which does not exist`);
    if (findCollection(h, its, icid) >= 0) kvmErr('EEXIST', `ITS restore: collection ${icid} appears twice`);
    if (icid >= t.bytes / ESZ) kvmErr('EINVAL', `ITS restore: ICID ${icid} does not fit the collection table`);
    if (allocCollection(h, its, icid, target) < 0) kvmErr('ENOMEM', 'ITS restore: no free collection slot');
  }
}

function restoreDeviceTable(h: Host, its: number): void {
  const t = table(h, its, 0);
  if (!t.valid) return;
  const dte = (id: number, e: bigint): number => restoreDte(h, its, t, id, e);
  if (!t.indirect) {
    scanTable(h, t.base, t.bytes, 0, 'device table entry', dte);
    return;
  }
  const perPage = SZ_64K / ESZ;
  scanTable(h, t.base, t.bytes, 0, 'level-1 device table entry', (l1, e) => {
    if (!(e & VALID)) return 1;
    return scanTable(h, Number(e & L1E_ADDR), SZ_64K, l1 * perPage, 'device table entry', dte);
  });
}

function restoreDte(h: Host, its: number, t: Table, id: number, e: bigint): number {
  if (!(e & VALID)) return 1;
  const next = Number((e >> 49n) & BigInt(DTE_NEXT_MAX));
  const bits = Number(e & 0x1fn) + 1;
  const itt = Number((e >> 5n) & ITT_FIELD) * 256;
  if (dteAddr(h, t, id) === null) kvmErr('EINVAL', `ITS restore: DeviceID ${id} is out of range`);
  if (bits > MAX_EVENTID_BITS) kvmErr('EINVAL', `ITS restore: DeviceID ${id} has ${bits} eventid bits (at most ${MAX_EVENTID_BITS})`);
  if (findDevice(h, its, id) >= 0) kvmErr('EEXIST', `ITS restore: DeviceID ${id} is already mapped`);
  const dev = allocDevice(h, its, id, itt, bits);
  if (dev < 0) kvmErr('ENOMEM', 'ITS restore: no free device slot');
  scanTable(h, itt, 2 ** bits * ESZ, 0, `ITT entry of DeviceID ${id}`, (eventId, ite) => restoreIte(h, its, dev, id, bits, eventId, ite));
  return next;
}

function restoreIte(h: Host, its: number, dev: number, devId: number, bits: number, eventId: number, e: bigint): number {
  const pintid = Number((e >> 16n) & 0xffff_ffffn);
  if (pintid === 0) return 1;
  const icid = Number(e & BigInt(MAX_ICID));
  const next = Number(e >> 48n);
  const where = `DeviceID ${devId} EventID ${eventId}`;
  if (pintid < LPI_BASE || pintid >= lpiIntidLimit(h)) kvmErr('EINVAL', `ITS restore: ${where} maps INTID ${pintid}, not an LPI this VM's property table covers`);
  if (eventId + next >= 2 ** bits) kvmErr('EINVAL', `ITS restore: ${where}: next offset ${next} leaves the ${bits}-bit EventID space`);
  const c = findCollection(h, its, icid);
  if (c < 0) kvmErr('EINVAL', `ITS restore: ${where} names collection ${icid}, which does not exist`);
  const r = lpiAdd(h, pintid, h.m[collOff(h, its, c) + COLL.target]!);
  if (r < 0) kvmErr('EINVAL', `ITS restore: ${where}: LPI ${pintid} has no record in this model`);
  if (allocIte(h, its, dev, eventId, icid, pintid) < 0) {
    lpiPut(h, r);
    kvmErr('ENOMEM', 'ITS restore: no free ITE slot');
  }
  return next;
}
