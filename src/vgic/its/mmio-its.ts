/**
 * The ITS register frame (kernel vgic-its.c its_registers; spec §9.2): 64 KiB of control
 * registers and the 64 KiB translation page. `c.its` names the instance, `c.accessor` the vCPU
 * (guest) or -1 (userspace ITS_REGS). Command processing runs synchronously on the thread that
 * writes GITS_CWRITER or GITS_CTLR, under cmd_lock, as in the kernel.
 */
import { kvmErr } from '../../uapi/errno.js';
import { IMPLEMENTER_ARM, PRODUCT_ID_KVM } from '../../uapi/kvm.js';
import { ITS } from '../../shm/layouts.js';
import { itsOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { reg64, setReg64 } from '../guest-mem.js';
import { lockIts, lockItsCmd, unlockIts, unlockItsCmd } from '../locks.js';
import { readIdregs } from '../mmio/gicd-v3.js';
import { makeFrame, raz, W32, W64, wi, type MmioCtx, type RegDesc, type RegRead, type RegWrite } from '../mmio/table.js';
import { cacheInvalidate } from './cache.js';
import { processCommands } from './commands.js';
import { freeAllCollections, freeAllDevices } from './state.js';
import { GITS_TRANSLATER, ITS_FRAME_SIZE, vgicItsInjectMsiSafe } from './translate.js';

export const GITS_CTLR = 0x0000;
export const GITS_IIDR = 0x0004;
export const GITS_TYPER = 0x0008;
export const GITS_CBASER = 0x0080;
export const GITS_CWRITER = 0x0088;
export const GITS_CREADR = 0x0090;
export const GITS_BASER = 0x0100;
export const GITS_IDREGS = 0xffd0;
/**
 * vgic-emu's DeviceID sideband (per vCPU, in the translation page's IMPLEMENTATION DEFINED space):
 * a device's write to GITS_TRANSLATER carries its DeviceID on the bus, which a CPU store cannot;
 * a guest program that plays a device writes its DeviceID here first. KVM itself ignores guest
 * TRANSLATER writes (its MSIs arrive through KVM_SIGNAL_MSI and irqfd); see the README.
 */
export const GITS_DEVID_SIDEBAND = 0x10048;

export const GITS_CTLR_ENABLE = 1 << 0;
export const GITS_CTLR_QUIESCENT = 1 << 31;
const VALID = 1n << 63n;
/** CBASER: Physical_Address [51:12], forced 64 KiB aligned; Size [7:0] in 4 KiB pages - 1. */
const CBASER_ADDR = 0x000f_ffff_ffff_0000n;
const CBASER_KEEP = VALID | (7n << 59n) | (7n << 53n) | (3n << 10n) | CBASER_ADDR | 0xffn;
/** BASER: Valid, Indirect (device table only), caches, Physical_Address [47:16], shareability, Size. */
const BASER_ADDR = 0x0000_ffff_ffff_0000n;
const BASER_INDIRECT = 1n << 62n;
const BASER_KEEP = VALID | (7n << 59n) | (7n << 53n) | BASER_ADDR | (3n << 10n) | 0xffn;
/** Type [58:56] (1 = Devices, 4 = Collections), Entry_Size [52:48] = 8 - 1, Page_Size [9:8] = 64 KiB. */
const BASER_RO = (n: number): bigint => ((n === 0 ? 1n : 4n) << 56n) | (7n << 48n) | (2n << 8n);
/** GITS_TYPER: Physical, ITT entry size 8, IDbits 16, Devbits 16, PTA = 0, CIL = 0. */
const TYPER = 1 | (7 << 4) | (15 << 8) | (15 << 13);
/** Table ABI revisions this model restores and saves (GITS_IIDR.Revision). */
export const NR_ITS_ABIS = 1;

const base = (c: MmioCtx): number => itsOff(c.h.g, c.its);
const I = ITS.off;

export function itsEnabled(h: Host, its: number): boolean {
  return Atomics.load(h.m, itsOff(h.g, its) + I.enabled) !== 0;
}

/** Queue bytes from CBASER.Size. */
export function cmdQueueBytes(h: Host, its: number): number {
  return (Number(reg64(h.m, itsOff(h.g, its) + I.cbaserLo) & 0xffn) + 1) * 4096;
}

/** Read or write one 32-bit half of a 64-bit register kept as [lo, hi]. */
function half(c: MmioCtx, field: number, addr: number): number {
  return base(c) + field + ((addr & 4) ? 1 : 0);
}

// ---- CTLR ------------------------------------------------------------------------------------

const readCtlr: RegRead = (c) => {
  const m = c.h.m;
  const b = base(c);
  lockItsCmd(c.h, c.its);
  try {
    const quiescent = m[b + I.creadr] === m[b + I.cwriter] ? GITS_CTLR_QUIESCENT : 0;
    return (quiescent | (m[b + I.enabled] ? GITS_CTLR_ENABLE : 0)) >>> 0;
  } finally {
    unlockItsCmd(c.h, c.its);
  }
};

/**
 * Enabling needs valid CBASER and both BASERs, else the write has no effect; disabling drops the
 * translation cache. Either way the queue is then processed (vgic_mmio_write_its_ctlr).
 */
const writeCtlr: RegWrite = (c, _addr, _len, value) => {
  const h = c.h;
  const m = h.m;
  const b = base(c);
  lockItsCmd(h, c.its);
  try {
    const on = (value & GITS_CTLR_ENABLE) !== 0;
    if (on === (m[b + I.enabled] !== 0)) {
      processCommands(h, c.its);
      return;
    }
    if (on) {
      const ok = (reg64(m, b + I.cbaserLo) & VALID) && (reg64(m, b + I.baser0Lo) & VALID) && (reg64(m, b + I.baser1Lo) & VALID);
      if (!ok) return;
      Atomics.store(m, b + I.enabled, 1);
    } else {
      // Disable, then invalidate, both under its_lock: a translation running in between would
      // otherwise still see the ITS enabled and re-fill the cache of a disabled ITS.
      lockIts(h, c.its);
      try {
        Atomics.store(m, b + I.enabled, 0);
        cacheInvalidate(h, c.its);
      } finally {
        unlockIts(h, c.its);
      }
    }
    processCommands(h, c.its);
  } finally {
    unlockItsCmd(h, c.its);
  }
};

// ---- IIDR, TYPER -----------------------------------------------------------------------------

const readIidr: RegRead = (c) => ((PRODUCT_ID_KVM << 24) | ((c.h.m[base(c) + I.abiRev]! & 0xf) << 12) | IMPLEMENTER_ARM) >>> 0;

/** Userspace IIDR write selects the table ABI: the revision must be one we have (spec §9.1). */
const uwriteIidr: RegWrite = (c, _addr, _len, value) => {
  const rev = (value >>> 12) & 0xf;
  if (rev >= NR_ITS_ABIS) kvmErr('EINVAL', `GITS_IIDR: table ABI revision ${rev} is not supported`);
  c.h.m[base(c) + I.abiRev] = rev;
};

const readTyper: RegRead = (_c, addr) => ((addr & 4) ? 0 : TYPER >>> 0);

// ---- CBASER, CWRITER, CREADR ------------------------------------------------------------------

const readCbaser: RegRead = (c, addr) => Atomics.load(c.h.m, half(c, I.cbaserLo, addr)) >>> 0;

/** Ignored while enabled; sanitised; empties the queue (CREADR = CWRITER = 0). */
const writeCbaser: RegWrite = (c, addr, _len, value) => {
  const h = c.h;
  const b = base(c);
  lockItsCmd(h, c.its);
  try {
    if (h.m[b + I.enabled]) return;
    const old = reg64(h.m, b + I.cbaserLo);
    const v = (addr & 4) ? (old & 0xffff_ffffn) | (BigInt(value >>> 0) << 32n) : (old & ~0xffff_ffffn) | BigInt(value >>> 0);
    setReg64(h.m, b + I.cbaserLo, v & CBASER_KEEP);
    Atomics.store(h.m, b + I.creadr, 0);
    Atomics.store(h.m, b + I.cwriter, 0);
  } finally {
    unlockItsCmd(h, c.its);
  }
};

const readCwriter: RegRead = (c, addr) => ((addr & 4) ? 0 : Atomics.load(c.h.m, base(c) + I.cwriter) >>> 0);

/** A new write offset (bits [19:5]); beyond the queue: ignored. Processes the queue at once. */
const writeCwriter: RegWrite = (c, addr, _len, value) => {
  if (addr & 4) return;
  const h = c.h;
  lockItsCmd(h, c.its);
  try {
    const off = value & 0xfffe0;
    if (off >= cmdQueueBytes(h, c.its)) return;
    Atomics.store(h.m, base(c) + I.cwriter, off);
    processCommands(h, c.its);
  } finally {
    unlockItsCmd(h, c.its);
  }
};

/** Userspace CWRITER (restore): stored without processing. */
const uwriteCwriter: RegWrite = (c, addr, _len, value) => {
  if (addr & 4) return;
  const off = value & 0xfffe0;
  if (off >= cmdQueueBytes(c.h, c.its)) return;
  Atomics.store(c.h.m, base(c) + I.cwriter, off);
};

const readCreadr: RegRead = (c, addr) => ((addr & 4) ? 0 : Atomics.load(c.h.m, base(c) + I.creadr) & 0xfffe0) >>> 0;

/** Userspace CREADR (restore): -EBUSY while enabled, -EINVAL beyond the queue. */
const uwriteCreadr: RegWrite = (c, addr, _len, value) => {
  if (addr & 4) return;
  if (itsEnabled(c.h, c.its)) kvmErr('EBUSY', 'GITS_CREADR cannot be restored while the ITS is enabled');
  const off = value & 0xfffe0;
  if (off >= cmdQueueBytes(c.h, c.its)) kvmErr('EINVAL', `GITS_CREADR 0x${off.toString(16)} is beyond the command queue`);
  Atomics.store(c.h.m, base(c) + I.creadr, off);
};

// ---- BASER<n> -------------------------------------------------------------------------------

function baserField(n: number): number {
  return n === 0 ? I.baser0Lo : I.baser1Lo;
}

const readBaser: RegRead = (c, addr) => {
  const n = (addr - GITS_BASER) >> 3;
  if (n > 1) return 0;
  const v = reg64(c.h.m, base(c) + baserField(n)) | BASER_RO(n);
  return Number((addr & 4) ? v >> 32n : v & 0xffff_ffffn) >>> 0;
};

/**
 * Only BASER0 (devices) and BASER1 (collections); ignored while enabled. Clearing Valid frees the
 * table's contents: every device (and so ITE and LPI reference) or every collection.
 */
const writeBaser: RegWrite = (c, addr, _len, value) => {
  const n = (addr - GITS_BASER) >> 3;
  if (n > 1) return;
  const h = c.h;
  const f = base(c) + baserField(n);
  if (itsEnabled(h, c.its)) return;
  const old = reg64(h.m, f);
  let v = (addr & 4) ? (old & 0xffff_ffffn) | (BigInt(value >>> 0) << 32n) : (old & ~0xffff_ffffn) | BigInt(value >>> 0);
  v &= BASER_KEEP | (n === 0 ? BASER_INDIRECT : 0n);
  setReg64(h.m, f, v);
  if (old & VALID && !(v & VALID)) {
    lockIts(h, c.its);
    try {
      if (n === 0) freeAllDevices(h, c.its);
      else freeAllCollections(h, c.its);
    } finally {
      unlockIts(h, c.its);
    }
  }
};

/** Userspace BASER: the value as saved, without the side effects (restore writes it back). */
const uwriteBaser: RegWrite = (c, addr, _len, value) => {
  const n = (addr - GITS_BASER) >> 3;
  if (n > 1) return;
  const f = base(c) + baserField(n);
  const old = reg64(c.h.m, f);
  const v = (addr & 4) ? (old & 0xffff_ffffn) | (BigInt(value >>> 0) << 32n) : (old & ~0xffff_ffffn) | BigInt(value >>> 0);
  setReg64(c.h.m, f, v & (BASER_KEEP | (n === 0 ? BASER_INDIRECT : 0n)));
};

// ---- the translation page --------------------------------------------------------------------

/** Per thread: the DeviceID a guest "device" announced in the sideband register. */
let sidebandDevId = 0;

const writeSideband: RegWrite = (_c, addr, _len, value) => {
  if (!(addr & 4)) sidebandDevId = value >>> 0;
};

/** GITS_TRANSLATER: an MSI with EventID = the value written, DeviceID from the sideband. */
const writeTranslater: RegWrite = (c, _addr, _len, value) => {
  if (c.accessor < 0) return; // userspace ITS_REGS: not a register to save or restore
  vgicItsInjectMsiSafe(c.h, c.its, sidebandDevId, value >>> 0);
};

const ROWS: RegDesc[] = [
  { name: 'CTLR', offset: GITS_CTLR, len: 4, bitsPerIrq: 0, widths: W32, read: readCtlr, write: writeCtlr },
  { name: 'IIDR', offset: GITS_IIDR, len: 4, bitsPerIrq: 0, widths: W32, read: readIidr, write: wi, uwrite: uwriteIidr },
  { name: 'TYPER', offset: GITS_TYPER, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: readTyper, write: wi },
  { name: 'CBASER', offset: GITS_CBASER, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: readCbaser, write: writeCbaser },
  { name: 'CWRITER', offset: GITS_CWRITER, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: readCwriter, write: writeCwriter, uwrite: uwriteCwriter },
  { name: 'CREADR', offset: GITS_CREADR, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: readCreadr, write: wi, uwrite: uwriteCreadr },
  { name: 'BASER0-7', offset: GITS_BASER, len: 0x40, bitsPerIrq: 0, widths: W32 | W64, read: readBaser, write: writeBaser, uwrite: uwriteBaser },
  { name: 'IDREGS', offset: GITS_IDREGS, len: 48, bitsPerIrq: 0, widths: W32, read: readIdregs, write: wi },
  { name: 'TRANSLATER', offset: GITS_TRANSLATER, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: writeTranslater },
  { name: 'DEVID_SIDEBAND', offset: GITS_DEVID_SIDEBAND, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: raz, write: writeSideband },
];

export const GITS = makeFrame('GITS', ITS_FRAME_SIZE, ROWS);
