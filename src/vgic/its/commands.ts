/**
 * The ITS command interpreter (spec §9.3-9.6): the guest writes 32-byte commands into a ring in its
 * own memory (GITS_CBASER), advances GITS_CWRITER, and the vgic executes everything between
 * GITS_CREADR and CWRITER synchronously, inside that MMIO write.
 *
 * Locking (spec §2.1): the caller holds this ITS's cmd_lock (it guards CBASER/CREADR/CWRITER);
 * each command runs under its_lock (it guards the device/ITE/collection tables and serialises
 * commands against the MSI slow path). Below that, commands only call helpers that take the LPI
 * lock (lpiAdd/lpiPut), then ap_list and irq locks (queueing): always inward in the order.
 *
 * Errors are never reported to the guest (the kernel computes ITS error numbers and drops them),
 * so a failing command simply returns without any effect; each early return below names the
 * architectural error it stands for.
 */
import { traceIrq } from '../trace.js';
import { EventKind } from '../../record/events.js';
import { IRQ, ITS, LPI_BASE, NR_ITES } from '../../shm/layouts.js';
import { irqOff, itsOff } from '../../shm/vm-memory.js';
import { gpaValid, readGuest64, reg64, writeGuest64 } from '../guest-mem.js';
import type { Host } from '../host.js';
import { vcpuIdxById } from '../vcpu-id.js';
import { lockIrq, lockIts, unlockIrq, unlockIts } from '../locks.js';
import { forEachLpi, lpiAdd, lpiIntidLimit, lpiPut, lpiRecord, lpiUpdateConfig } from '../lpi.js';
import { queueIrqUnlock } from '../queue.js';
import { cacheInvalidate } from './cache.js';
import {
  allocCollection, allocDevice, allocIte, COLL, collectionTarget, collOff, DEV, devOff, deviceIttAddr, findCollection,
  findDevice, findIte, freeCollection, freeDevice, freeIte, ITE, iteOff,
} from './state.js';
import { itsTranslateLocked } from './translate.js';
import { LockSite } from '../../sync/lock-sites.js';

// ---------------------------------------------------------------------------------------------
// Constants (GIC architecture; table ABI revision 0, spec §1.1, §9.7)

export const GITS_CMD_MOVI = 0x01;
export const GITS_CMD_INT = 0x03;
export const GITS_CMD_CLEAR = 0x04;
export const GITS_CMD_SYNC = 0x05;
export const GITS_CMD_MAPD = 0x08;
export const GITS_CMD_MAPC = 0x09;
export const GITS_CMD_MAPTI = 0x0a;
export const GITS_CMD_MAPI = 0x0b;
export const GITS_CMD_INV = 0x0c;
export const GITS_CMD_INVALL = 0x0d;
export const GITS_CMD_MOVALL = 0x0e;
export const GITS_CMD_DISCARD = 0x0f;

/** Bytes per command. */
export const ITS_CMD_SIZE = 32;
/** DTE, CTE and ITE are all 8 bytes in ABI revision 0 (the BASER writer forces Entry_Size). */
const ENTRY_SIZE = 8;
/** GITS_BASER page size: forced to 64 KiB by the register writer. */
const TABLE_PAGE = 0x1_0000;
/** GITS_TYPER.Devbits and IDbits: 16-bit DeviceIDs and EventIDs. */
const DEVID_LIMIT = 1 << 16;
const MAX_EVENTID_BITS = 16;

const BASER_VALID = 1n << 63n;
const BASER_INDIRECT = 1n << 62n;
/** BASER physical address (64 KiB pages: bits [47:16]). */
const BASER_ADDR_MASK = 0x0000_ffff_ffff_0000n;
/** A level-1 entry of a two-level table: Valid[63] | L2 page address[51:16]. */
const L1_ADDR_MASK = 0x000f_ffff_ffff_0000n;
/** CBASER physical address bits [51:12]. */
const CBASER_ADDR_MASK = 0x000f_ffff_ffff_f000n;

// ---------------------------------------------------------------------------------------------
// Command fields (spec §9.4)

/** One decoded command: the four little-endian doublewords. */
type Cmd = readonly [bigint, bigint, bigint, bigint];

const bits = (v: bigint, lo: bigint, width: bigint): number => Number((v >> lo) & ((1n << width) - 1n));

const opcode = (c: Cmd): number => bits(c[0], 0n, 8n);
const deviceId = (c: Cmd): number => bits(c[0], 32n, 32n);
/** MAPD: number of EventID bits = Size + 1. */
const eventIdBits = (c: Cmd): number => bits(c[1], 0n, 5n) + 1;
const eventId = (c: Cmd): number => bits(c[1], 0n, 32n);
const physicalId = (c: Cmd): number => bits(c[1], 32n, 32n);
const icid = (c: Cmd): number => bits(c[2], 0n, 16n);
const ittAddr = (c: Cmd): number => bits(c[2], 8n, 44n) * 256;
/**
 * RDbase: with GITS_TYPER.PTA = 0 it is a processor number, the vcpu_id (GICR_TYPER's
 * Processor_Number; vgic-its.c looks targets up with kvm_get_vcpu_by_id). Commands translate it
 * to the vcpu_idx once; collections store the index (ids never change once created).
 */
const rdbase = (c: Cmd): number => bits(c[2], 16n, 32n);
const rdbase2 = (c: Cmd): number => bits(c[3], 16n, 32n);
const validBit = (c: Cmd): boolean => (c[2] >> 63n) !== 0n;

// ---------------------------------------------------------------------------------------------
// Helpers

function baser(h: Host, its: number, lo: number): bigint {
  return reg64(h.m, itsOff(h.g, its) + lo);
}

/**
 * vgic_its_check_id: is `id` storable in the table described by `b`, and where is its entry?
 * Returns the entry's guest physical address, or -1 (the id is out of range, the table is not
 * valid, a level-1 entry is invalid, or the entry is not guest memory).
 * Flat: entry = base + id * 8, id < table bytes / 8. Two-level (device table only; the BASER
 * writer keeps the collection table flat): the level-1 table holds 8-byte pointers, each to a
 * 64 KiB level-2 page of 8-byte entries.
 */
function tableEntry(h: Host, b: bigint, id: number): number {
  if (!(b & BASER_VALID)) return -1;
  const tableBytes = (Number(b & 0xffn) + 1) * TABLE_PAGE;
  const base = Number(b & BASER_ADDR_MASK);
  let gpa: number;
  if (!(b & BASER_INDIRECT)) {
    if (id >= tableBytes / ENTRY_SIZE) return -1;
    gpa = base + id * ENTRY_SIZE;
  } else {
    const perPage = TABLE_PAGE / ENTRY_SIZE;
    const l1 = Math.floor(id / perPage);
    if (l1 >= tableBytes / 8) return -1;
    const ptr = readGuest64(h, base + l1 * 8);
    if (ptr === null || !(ptr & BASER_VALID)) return -1;
    gpa = Number(ptr & L1_ADDR_MASK) + (id % perPage) * ENTRY_SIZE;
  }
  return gpaValid(h, gpa, ENTRY_SIZE) ? gpa : -1;
}

function deviceTableEntry(h: Host, its: number, devId: number): number {
  // DevBits = 16: larger DeviceIDs are out of range whatever the table size (the translation
  // cache's key also assumes 16-bit ids, spec §9.5).
  if (devId >= DEVID_LIMIT) return -1;
  return tableEntry(h, baser(h, its, ITS.off.baser0Lo), devId);
}

function collectionStorable(h: Host, its: number, id: number): boolean {
  return tableEntry(h, baser(h, its, ITS.off.baser1Lo), id) >= 0;
}


/** (device slot, ITE slot) of (DeviceID, EventID), or null (find_ite). */
function lookupIte(h: Host, its: number, devId: number, evId: number): { dev: number; ite: number } | null {
  const dev = findDevice(h, its, devId);
  if (dev < 0) return null;
  const ite = findIte(h, its, dev, evId);
  return ite < 0 ? null : { dev, ite };
}

function iteField(h: Host, its: number, ite: number, f: number): number {
  return h.m[iteOff(h, its, ite) + f]!;
}

/** its_is_collection_mapped: the collection exists and has a target vCPU. */
function collectionMapped(h: Host, its: number, id: number): boolean {
  return collectionTarget(h, its, id) >= 0;
}

/**
 * update_affinity: point an LPI at vCPU `to` (under its irq_lock, since every field of the record
 * is the irq_lock's). With `from` >= 0 only an LPI still targeting `from` moves; the check is
 * made under the lock, so an LPI retargeted concurrently (through another ITS) is left alone.
 *
 * The kernel only stores target_vcpu here (spec §3.8: retargeting does not requeue). We also pass
 * the record through the queue function, which releases the lock: a pending LPI that sits on no
 * ap_list is queued on its new target at once; one already on the old target's ap_list stays
 * there (only the holder edits its own list, spec §4.7) and migrates at the holder's next prune,
 * while the new target gets a request and a kick. For an LPI that is not pending the oracle says
 * "nowhere" and nothing happens.
 */
function retargetLpi(h: Host, r: number, to: number, from = -1): void {
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.ItsCommand);
  if (h.m[b + IRQ.off.intid] === 0 || (from >= 0 && h.m[b + IRQ.off.target] !== from)) {
    unlockIrq(h, r);
    return;
  }
  h.m[b + IRQ.off.target] = to;
  if (h.hist) traceIrq(h, r, EventKind.TARGET, to);
  queueIrqUnlock(h, r);
}

/** A free ITE slot exists (the caller holds its_lock, so allocIte cannot then fail). */
function iteSlotAvailable(h: Host, its: number): boolean {
  for (let i = 0; i < NR_ITES; i++) if (!h.m[iteOff(h, its, i) + ITE.valid]) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Commands: one function each, called under its_lock.

/** MAPD: map DeviceID to an ITT (V=1) or unmap it (V=0). */
function cmdMapd(h: Host, its: number, c: Cmd): void {
  const devId = deviceId(c);
  const gpa = deviceTableEntry(h, its, devId);
  if (gpa < 0) return; // MAPD_DEVICE_OOR
  const valid = validBit(c);
  const nBits = eventIdBits(c);
  if (valid && nBits > MAX_EVENTID_BITS) return; // MAPD_ITTSIZE_OOR
  // A remap replaces the device: its ITEs (and cached translations) must not survive into the
  // new ITT, so the old device is freed first (freeDevice invalidates the cache).
  const old = findDevice(h, its, devId);
  if (old >= 0) freeDevice(h, its, old);
  if (!valid) {
    // Architecturally the DTE lives in guest memory: clear it so a later save/restore agrees.
    writeGuest64(h, gpa, 0n);
    return;
  }
  allocDevice(h, its, devId, ittAddr(c), nBits); // full table: the kernel's -ENOMEM, dropped
}

/** MAPC: map ICID to a vCPU (V=1) or unmap it (V=0). */
function cmdMapc(h: Host, its: number, c: Cmd): void {
  const id = icid(c);
  if (!validBit(c)) {
    const slot = findCollection(h, its, id);
    if (slot >= 0) freeCollection(h, its, slot);
    // Cached translations name the vCPU through this collection.
    cacheInvalidate(h, its);
    return;
  }
  const target = vcpuIdxById(h, rdbase(c));
  if (target < 0) return; // MAPC_PROCNUM_OOR
  const slot = findCollection(h, its, id);
  if (slot < 0) {
    if (!collectionStorable(h, its, id)) return; // MAPC_COLLECTION_OOR
    allocCollection(h, its, id, target); // full: -ENOMEM, dropped
    return;
  }
  h.m[collOff(h, its, slot) + COLL.target] = target;
  // update_affinity_collection: every LPI mapped through this collection follows it. The kernel
  // does not invalidate the translation cache here (spec §9.4 observation); the cache holds the
  // LPI record, whose target we update, so a cached MSI still reaches the new vCPU.
  forEachIteInCollection(h, its, id, (r) => retargetLpi(h, r, target));
}

function forEachIteInCollection(h: Host, its: number, id: number, fn: (r: number) => void): void {
  for (let i = 0; i < NR_ITES; i++) {
    const e = iteOff(h, its, i);
    if (!h.m[e + ITE.valid] || h.m[e + ITE.icid] !== id) continue;
    const r = lpiRecord(h, h.m[e + ITE.lpi]!);
    if (r >= 0) fn(r); // the ITE's reference keeps the record alive: we hold its_lock
  }
}

/** MAPTI / MAPI: map (DeviceID, EventID) to an LPI in a collection. MAPI: pINTID = EventID. */
function cmdMapti(h: Host, its: number, c: Cmd): void {
  const devId = deviceId(c);
  const evId = eventId(c);
  const id = icid(c);
  const intid = opcode(c) === GITS_CMD_MAPI ? evId : physicalId(c);
  const dev = findDevice(h, its, devId);
  if (dev < 0) return; // MAPTI_UNMAPPED_DEVICE
  // vgic_its_check_event_id: within the device's EventID range and its ITE slot in guest memory.
  const nBits = h.m[devOff(h, its, dev) + DEV.eventBits]!;
  if (evId >= 2 ** nBits || !gpaValid(h, deviceIttAddr(h, its, dev) + evId * ENTRY_SIZE, ENTRY_SIZE)) return; // MAPTI_ID_OOR
  if (intid < LPI_BASE || intid >= lpiIntidLimit(h)) return; // MAPTI_PHYSICALID_OOR
  // Remapping a mapped event is UNPREDICTABLE; the kernel keeps the existing mapping.
  if (findIte(h, its, dev, evId) >= 0) return;
  let newColl = -1;
  if (findCollection(h, its, id) < 0) {
    // A MAPTI may name a collection before its MAPC: create it unmapped.
    if (!collectionStorable(h, its, id)) return; // MAPC_COLLECTION_OOR
    newColl = allocCollection(h, its, id, -1);
    if (newColl < 0) return; // -ENOMEM
  }
  // Check for room before lpiAdd: a fresh LPI consumes its bit in the pending table, which an
  // undo could not give back (the kernel allocates the ITE first for the same reason).
  if (!iteSlotAvailable(h, its)) {
    if (newColl >= 0) freeCollection(h, its, newColl);
    return; // -ENOMEM
  }
  // Shared across ITSs: an existing record gains a reference, a free one is initialised from the
  // property and pending tables (vgic_add_lpi).
  const r = lpiAdd(h, intid, collectionTarget(h, its, id));
  if (r < 0) {
    if (newColl >= 0) freeCollection(h, its, newColl);
    return;
  }
  if (allocIte(h, its, dev, evId, id, intid) < 0) {
    // Cannot happen after the check above (its_lock held), but never leak the reference.
    lpiPut(h, r);
    if (newColl >= 0) freeCollection(h, its, newColl);
  }
}

/** MOVI: move a mapped event to another (mapped) collection. */
function cmdMovi(h: Host, its: number, c: Cmd): void {
  const found = lookupIte(h, its, deviceId(c), eventId(c));
  if (!found) return; // MOVI_UNMAPPED_INTERRUPT
  if (!collectionMapped(h, its, iteField(h, its, found.ite, ITE.icid))) return; // MOVI_UNMAPPED_COLLECTION
  const id = icid(c);
  const target = collectionTarget(h, its, id);
  if (target < 0) return; // MOVI_UNMAPPED_COLLECTION
  h.m[iteOff(h, its, found.ite) + ITE.icid] = id;
  // The cached translation was validated against the old collection's vCPU.
  cacheInvalidate(h, its);
  const r = lpiRecord(h, iteField(h, its, found.ite, ITE.lpi));
  if (r >= 0) retargetLpi(h, r, target);
}

/** DISCARD: unmap an event. */
function cmdDiscard(h: Host, its: number, c: Cmd): void {
  const evId = eventId(c);
  const found = lookupIte(h, its, deviceId(c), evId);
  if (!found) return; // DISCARD_UNMAPPED_INTERRUPT
  if (!collectionMapped(h, its, iteField(h, its, found.ite, ITE.icid))) return; // DISCARD_UNMAPPED_INTERRUPT
  const gpa = deviceIttAddr(h, its, found.dev) + evId * ENTRY_SIZE;
  // Invalidate before dropping the ITE's reference: a cache entry must never outlive its mapping
  // (the 2024 use-after-free, race §12.8, was a cache hit on a discarded LPI).
  cacheInvalidate(h, its);
  if (h.hist) h.hist.record(EventKind.DISCARD, iteField(h, its, found.ite, ITE.lpi), -1, 0, 0);
  // Drops the ITE's reference; a pending LPI stays on its ap_list (which holds its own reference)
  // until pruned, and the record is freed when the last reference goes.
  freeIte(h, its, found.dev, found.ite);
  writeGuest64(h, gpa, 0n);
}

/** CLEAR: drop the pending state of a mapped event's LPI. */
function cmdClear(h: Host, its: number, c: Cmd): void {
  const found = lookupIte(h, its, deviceId(c), eventId(c));
  if (!found) return; // CLEAR_UNMAPPED_INTERRUPT
  const r = lpiRecord(h, iteField(h, its, found.ite, ITE.lpi));
  if (r < 0) return;
  // The kernel writes pending_latch without the irq_lock; here a concurrent MSI on another thread
  // (or a vCPU folding its LRs) may write the same record, so take it.
  lockIrq(h, r, LockSite.ItsCommand);
  h.m[irqOff(h.g, r) + IRQ.off.pendingLatch] = 0;
  if (h.hist) traceIrq(h, r, EventKind.UNPEND, 0, -1);
  unlockIrq(h, r);
}

/** INT: the guest raises a mapped event itself, exactly like an MSI to GITS_TRANSLATER. */
function cmdInt(h: Host, its: number, c: Cmd): void {
  itsTranslateLocked(h, its, deviceId(c), eventId(c)); // INT_UNMAPPED_INTERRUPT / -EBUSY: dropped
}

/** INV: re-read one LPI's configuration byte from the property table. */
function cmdInv(h: Host, its: number, c: Cmd): void {
  const found = lookupIte(h, its, deviceId(c), eventId(c));
  if (!found) return; // INV_UNMAPPED_INTERRUPT
  const r = lpiRecord(h, iteField(h, its, found.ite, ITE.lpi));
  if (r >= 0) lpiUpdateConfig(h, r);
}

/** INVALL: re-read the configuration of every LPI targeting the collection's vCPU. */
function cmdInvall(h: Host, its: number, c: Cmd): void {
  const v = collectionTarget(h, its, icid(c));
  if (v < 0) return; // INVALL_UNMAPPED_COLLECTION
  // All LPIs of the VM, not only this ITS's (vgic_its_invall walks the LPI table). The target
  // is sampled without the irq_lock; a concurrent retarget (through another ITS) at worst makes
  // us refresh an LPI that just left, which only re-reads the guest's table.
  forEachLpi(h, (r) => {
    if (Atomics.load(h.m, irqOff(h.g, r) + IRQ.off.target) === v) lpiUpdateConfig(h, r);
  });
}

/** MOVALL: move every LPI of redistributor RDbase1 to RDbase2. */
function cmdMovall(h: Host, its: number, c: Cmd): void {
  const from = vcpuIdxById(h, rdbase(c));
  const to = vcpuIdxById(h, rdbase2(c));
  if (from < 0 || to < 0) return; // MOVALL_PROCNUM_OOR
  if (from === to) return;
  // Architecturally only LPIs on RDbase1 move (the ≤6.9 kernel's behaviour; the newest kernel's
  // walk retargets every LPI of the VM, spec §9.4 observation). forEachLpi skips records freed
  // concurrently (race §12.9) and holds a reference on the others while we touch them.
  forEachLpi(h, (r) => retargetLpi(h, r, to, from));
  cacheInvalidate(h, its);
}

/** SYNC: commands complete synchronously, so there is nothing to wait for. */
function cmdSync(): void {}

/** vgic_its_handle_command's switch, as data. Unknown opcodes are ignored. */
const HANDLERS: ReadonlyMap<number, (h: Host, its: number, c: Cmd) => void> = new Map([
  [GITS_CMD_MAPD, cmdMapd],
  [GITS_CMD_MAPC, cmdMapc],
  [GITS_CMD_MAPTI, cmdMapti],
  [GITS_CMD_MAPI, cmdMapti],
  [GITS_CMD_MOVI, cmdMovi],
  [GITS_CMD_DISCARD, cmdDiscard],
  [GITS_CMD_CLEAR, cmdClear],
  [GITS_CMD_INT, cmdInt],
  [GITS_CMD_INV, cmdInv],
  [GITS_CMD_INVALL, cmdInvall],
  [GITS_CMD_MOVALL, cmdMovall],
  [GITS_CMD_SYNC, cmdSync],
]);

/** vgic_its_handle_command: one command under its_lock (released even if a check throws). */
function handleCommand(h: Host, its: number, c: Cmd): void {
  const fn = HANDLERS.get(opcode(c));
  if (!fn) return;
  lockIts(h, its);
  try {
    fn(h, its, c);
  } finally {
    unlockIts(h, its);
  }
}

function readCommand(h: Host, gpa: number): Cmd | null {
  const w0 = readGuest64(h, gpa);
  const w1 = readGuest64(h, gpa + 8);
  const w2 = readGuest64(h, gpa + 16);
  const w3 = readGuest64(h, gpa + 24);
  return w0 === null || w1 === null || w2 === null || w3 === null ? null : [w0, w1, w2, w3];
}

/**
 * vgic_its_process_commands: with cmd_lock held, execute the queue from CREADR up to CWRITER
 * (each command under its_lock) and advance CREADR. Only while the ITS is enabled.
 */
export function processCommands(h: Host, its: number): void {
  const m = h.m;
  const base = itsOff(h.g, its);
  if (!Atomics.load(m, base + ITS.off.enabled)) return;
  const cbaser = reg64(m, base + ITS.off.cbaserLo);
  const queue = Number(cbaser & CBASER_ADDR_MASK);
  const size = (Number(cbaser & 0xffn) + 1) * 4096;
  // cmd_lock is held: nobody else moves CWRITER or CREADR while we run.
  const cwriter = Atomics.load(m, base + ITS.off.cwriter);
  let creadr = Atomics.load(m, base + ITS.off.creadr);
  // The register handlers keep both offsets 32-byte aligned and inside the queue; if something
  // else did not, stop rather than spin forever chasing a CWRITER that CREADR can never equal.
  const inQueue = (o: number): boolean => o >= 0 && o < size && o % ITS_CMD_SIZE === 0;
  if (!inQueue(cwriter) || !inQueue(creadr)) return;
  while (creadr !== cwriter) {
    // A command we cannot read (CBASER outside guest RAM) is skipped, which the architecture
    // allows (the kernel cites GICv3 spec 6.3.2); the queue still advances.
    const c = readCommand(h, queue + creadr);
    try {
      if (c) handleCommand(h, its, c);
    } finally {
      creadr = (creadr + ITS_CMD_SIZE) % size;
      Atomics.store(m, base + ITS.off.creadr, creadr);
    }
  }
}
