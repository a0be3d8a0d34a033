/**
 * Register frames declared as tables (DESIGN §4), the model of the kernel's vgic-mmio
 * REGISTER_DESC arrays and their dispatcher (spec §6 "General MMIO rules", S15 check_region,
 * dispatch_mmio_read/write, vgic_uaccess).
 *
 * A frame is an array of rows. Each row covers `len` bytes at `offset`; per-IRQ rows say how many
 * bits one INTID occupies, so the dispatcher can tell the handler which INTID an access starts at.
 * One generic dispatcher serves guest MMIO and the userspace register groups: it finds the row in
 * O(1) through a per-frame word index built once at module load, checks natural alignment and
 * width (otherwise reads return 0 and writes are ignored), and makes per-IRQ registers whose first
 * INTID is beyond the configured interrupts RAZ/WI.
 *
 * Hot path (a benchmark reads GICD_IIDR 65536 times): no allocation per access. The context object
 * is owned by the caller and reused; 64-bit registers are split into two 32-bit halves here, so
 * handlers only ever see 1- or 4-byte accesses and plain uint32 numbers.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../../uapi/kvm.js';
import { DIST } from '../../shm/layouts.js';
import type { Host } from '../host.js';

/** Access widths a row allows, as a bitmask of byte sizes (so `widths & len` tests an access). */
export const W8 = 1;
export const W32 = 4;
export const W64 = 8;

/**
 * Per-access context. `vcpu` is the vCPU whose private interrupts and frame the access addresses
 * (the accessor for v2 GICD banking, the redistributor's vCPU for GICR, the attr's vCPU for
 * userspace). `accessor` is the vCPU running the access, or -1 for userspace (the kernel's
 * kvm_get_running_vcpu()). `intid` is set by the dispatcher for per-IRQ rows.
 */
export interface MmioCtx {
  h: Host;
  vcpu: number;
  accessor: number;
  intid: number;
  /** ITS frames: which ITS instance. */
  its: number;
}

export function makeCtx(): MmioCtx {
  return { h: null as unknown as Host, vcpu: 0, accessor: -1, intid: 0, its: 0 };
}

export type RegRead = (c: MmioCtx, addr: number, len: number) => number;
export type RegWrite = (c: MmioCtx, addr: number, len: number, value: number) => void;

export interface RegDesc {
  readonly name: string;
  /** Byte offset of the row within the frame. */
  readonly offset: number;
  /** Bytes the row spans. */
  readonly len: number;
  /** Bits per INTID for per-IRQ rows, 0 otherwise. */
  readonly bitsPerIrq: number;
  /** Allowed access sizes: W8 | W32 | W64. */
  readonly widths: number;
  /**
   * Offset of INTID 0 of the register family (GICv3 splits a family into a RAZ/WI row for the
   * private INTIDs and a real row for SPIs; both count INTIDs from the family base). Defaults to
   * `offset`.
   */
  readonly irqBase?: number;
  readonly read: RegRead;
  readonly write: RegWrite;
  /** Userspace (device attribute) variants, when they differ (spec §6 right column). */
  readonly uread?: RegRead;
  readonly uwrite?: RegWrite;
}

export interface Frame {
  readonly name: string;
  /** Bytes the frame spans. */
  readonly size: number;
  readonly rows: readonly RegDesc[];
  /** Row index per 32-bit word of the frame, -1 where no register is. */
  readonly index: Int16Array;
  /** irqBase per row, resolved. */
  readonly irqBase: Int32Array;
}

export function makeFrame(name: string, size: number, rows: readonly RegDesc[]): Frame {
  const index = new Int16Array(size >>> 2).fill(-1);
  const irqBase = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    if (r.offset % 4 !== 0 || r.len % 4 !== 0 || r.len === 0) throw new Error(`${name}.${r.name}: rows must be word aligned`);
    if (r.offset + r.len > size) throw new Error(`${name}.${r.name}: beyond the frame`);
    for (let w = r.offset >>> 2; w < (r.offset + r.len) >>> 2; w++) {
      if (index[w] !== -1) throw new Error(`${name}.${r.name}: overlaps ${rows[index[w]!]!.name}`);
      index[w] = i;
    }
    irqBase[i] = r.irqBase ?? r.offset;
  });
  return { name, size, rows, index, irqBase };
}

/** Read-as-zero / write-ignored handlers (vgic_mmio_read_raz, vgic_mmio_write_wi). */
export const raz: RegRead = () => 0;
export const rao: RegRead = () => 0xffffffff;
export const wi: RegWrite = () => {};

const NR_SPIS_OFF = DIST.off.nrSpis;

/**
 * check_region: the row an access of `len` bytes at `off` hits, or -1 (RAZ/WI). Also sets
 * `c.intid` for per-IRQ rows. Only the first INTID is range-checked, as in the kernel: an access
 * is naturally aligned and nr_irqs is a multiple of 32, so it never straddles the end.
 */
function findRow(f: Frame, c: MmioCtx, off: number, len: number): number {
  if (off < 0 || off >= f.size || (len & (len - 1)) !== 0 || len > 8 || (off & (len - 1)) !== 0) return -1;
  const ri = f.index[off >>> 2]!;
  if (ri < 0) return -1;
  const row = f.rows[ri]!;
  if ((row.widths & len) === 0) return -1;
  const bpi = row.bitsPerIrq;
  if (bpi !== 0) {
    // Integer division: the upper half of a 64-bit per-IRQ register belongs to the same INTID.
    const intid = (((off - f.irqBase[ri]!) * 8) / bpi) | 0;
    const h = c.h;
    if (intid >= VGIC_NR_PRIVATE_IRQS + h.m[h.g.distBase + NR_SPIS_OFF]!) return -1;
    c.intid = intid;
  }
  return ri;
}

const TWO32 = 4294967296;

function readRow(row: RegDesc, c: MmioCtx, off: number, len: number, user: boolean): number {
  const rd = user && row.uread ? row.uread : row.read;
  if (len === 8) {
    // 64-bit registers are two 32-bit halves (spec §7.4); compose exactly below 2^53.
    const lo = rd(c, off, 4) >>> 0;
    const hi = rd(c, off + 4, 4) >>> 0;
    return hi * TWO32 + lo;
  }
  return rd(c, off, len) >>> 0;
}

function writeRow(row: RegDesc, c: MmioCtx, off: number, len: number, value: number, user: boolean): void {
  const wr = user && row.uwrite ? row.uwrite : row.write;
  if (len === 8) {
    wr(c, off, 4, value >>> 0);
    wr(c, off + 4, 4, Math.floor(value / TWO32) >>> 0);
    return;
  }
  const mask = len === 4 ? 0xffffffff : len === 2 ? 0xffff : 0xff;
  wr(c, off, len, (value & mask) >>> 0);
}

/** Guest MMIO read of `len` bytes at frame offset `off`. Misaligned/wrong width: 0. */
export function frameRead(f: Frame, c: MmioCtx, off: number, len: number): number {
  const ri = findRow(f, c, off, len);
  return ri < 0 ? 0 : readRow(f.rows[ri]!, c, off, len, false);
}

/** Guest MMIO write. Misaligned/wrong width: ignored. */
export function frameWrite(f: Frame, c: MmioCtx, off: number, len: number, value: number): void {
  const ri = findRow(f, c, off, len);
  if (ri >= 0) writeRow(f.rows[ri]!, c, off, len, value, false);
}

/**
 * Userspace access (vgic_uaccess): always one aligned 32-bit word; unknown or unimplemented
 * offsets read 0 and ignore writes, with success (spec §7.4). Returns the value read (0 on write).
 * Handlers may throw KvmError (e.g. IIDR rules).
 */
export function frameUaccess(f: Frame, c: MmioCtx, off: number, isWrite: boolean, value: number): number {
  const ri = findRow(f, c, off, 4);
  if (ri < 0) return 0;
  const row = f.rows[ri]!;
  if (isWrite) {
    writeRow(row, c, off, 4, value >>> 0, true);
    return 0;
  }
  return readRow(row, c, off, 4, true);
}

/** HAS_DEVICE_ATTR for a register group: a 4-byte aligned offset some row accepts as a word. */
export function frameHas(f: Frame, c: MmioCtx, off: number): boolean {
  return (off & 3) === 0 && findRow(f, c, off, 4) >= 0;
}

// ---- helpers shared by row handlers ------------------------------------------------------------

/** Byte `i` of a little-endian value. */
export function byteOf(value: number, i: number): number {
  return (value >>> (i * 8)) & 0xff;
}
