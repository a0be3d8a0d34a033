/**
 * The GICv3 redistributor: RD_base frame at +0 and SGI_base frame at +64 KiB, one 128 KiB pair per
 * vCPU (kernel vgic-mmio-v3.c vgic_v3_rd_registers; spec §6). `c.vcpu` is the redistributor's own
 * vCPU, whoever accesses it; the SGI frame's per-IRQ registers are that vCPU's private IRQs.
 */
import { IMPLEMENTER_ARM, KVM_VGIC_IMP_REV_3, KVM_VGIC_V3_REDIST_SIZE, PRODUCT_ID_KVM } from '../../uapi/kvm.js';
import { DIST, RDIST_REGION, VCPU } from '../../shm/layouts.js';
import { vcpuOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { readIdregs, vgicHasIts } from './gicd-v3.js';
import * as P from './per-irq.js';
import { makeFrame, raz, W32, W64, W8, wi, type MmioCtx, type RegDesc, type RegRead, type RegWrite } from './table.js';
import { IRQ } from '../../shm/layouts.js';
import { irqOff } from '../../shm/vm-memory.js';
import { forEachLpi, lpiGet, lpiPut, lpiRecord, lpisEnabled, lpiUpdateConfig, vgicEnableLpis, flushPendingLpis } from '../lpi.js';
import { itsInvalidateAllCaches } from '../its/cache.js';

export const SGI_BASE = 0x10000;
export const GICR_CTLR = 0x0000;
export const GICR_IIDR = 0x0004;
export const GICR_TYPER = 0x0008;
export const GICR_STATUSR = 0x0010;
export const GICR_WAKER = 0x0014;
export const GICR_PROPBASER = 0x0070;
export const GICR_PENDBASER = 0x0078;
export const GICR_INVLPIR = 0x00a0;
export const GICR_INVALLR = 0x00b0;
export const GICR_SYNCR = 0x00c0;
export const GICR_IDREGS = 0xffd0;
export const GICR_IGROUPR0 = SGI_BASE + 0x0080;
export const GICR_ISENABLER0 = SGI_BASE + 0x0100;
export const GICR_ICENABLER0 = SGI_BASE + 0x0180;
export const GICR_ISPENDR0 = SGI_BASE + 0x0200;
export const GICR_ICPENDR0 = SGI_BASE + 0x0280;
export const GICR_ISACTIVER0 = SGI_BASE + 0x0300;
export const GICR_ICACTIVER0 = SGI_BASE + 0x0380;
export const GICR_IPRIORITYR0 = SGI_BASE + 0x0400;
export const GICR_ICFGR0 = SGI_BASE + 0x0c00;
export const GICR_IGRPMODR0 = SGI_BASE + 0x0d00;
export const GICR_NSACR = SGI_BASE + 0x0e00;

/** GICR_CTLR bits. */
export { GICR_CTLR_ENABLE_LPIS } from '../lpi.js';
import { GICR_CTLR_ENABLE_LPIS } from '../lpi.js';
export const GICR_CTLR_CES = 1 << 1;
export const GICR_CTLR_IR = 1 << 2;
/** Register Write Pending: the intermediate value of an EnableLPIs transition. */
export const GICR_CTLR_RWP = 1 << 3;
/** GICR_TYPER low word bits. */
export const GICR_TYPER_PLPIS = 1 << 0;
export const GICR_TYPER_LAST = 1 << 4;

/**
 * GICR_TYPER.Last (vgic_mmio_vcpu_rdist_is_last): this redistributor is the highest placed one of
 * its region, and, if that region is full, no populated region starts right where it ends (then
 * the run of frames continues there and the guest's scan must go on).
 */
export function rdistIsLast(h: Host, v: number): boolean {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const ri = m[vb + VCPU.off.rdRegion]!;
  if (ri < 0) return false;
  const regions = h.g.distBase + DIST.off.regions;
  const o = regions + ri * RDIST_REGION.size;
  const idx = m[vb + VCPU.off.rdIndex]!;
  const count = m[o + RDIST_REGION.off.count]!;
  if (idx < m[o + RDIST_REGION.off.freeIndex]! - 1) return false;
  if (count !== 0 && idx === count - 1) {
    const end = h.f[(o + RDIST_REGION.off.base) / 2]! + count * KVM_VGIC_V3_REDIST_SIZE;
    const n = m[h.g.distBase + DIST.off.nrRdistRegions]!;
    for (let i = 0; i < n; i++) {
      const oi = regions + i * RDIST_REGION.size;
      if (h.f[(oi + RDIST_REGION.off.base) / 2] === end && m[oi + RDIST_REGION.off.freeIndex]! > 0) return false;
    }
  }
  return true;
}

/**
 * GICR_CTLR: the EnableLPIs state (an atomic word: its transitions are CAS-based, spec §12.15)
 * plus IR and CES from implementation revision 3 on.
 */
const readCtlr: RegRead = (c) => {
  const h = c.h;
  let v = Atomics.load(h.m, vcpuOff(h.g, c.vcpu) + VCPU.off.gicrCtlr) & GICR_CTLR_ENABLE_LPIS;
  if (h.m[h.g.distBase + DIST.off.implRev]! >= KVM_VGIC_IMP_REV_3) v |= GICR_CTLR_IR | GICR_CTLR_CES;
  return v >>> 0;
};

/**
 * EnableLPIs 0 -> 1 picks up the pending table; 1 -> 0 (allowed from revision 3 on) drops this
 * vCPU's pending LPIs and every ITS's translation cache. Each transition is one CAS through an
 * intermediate "busy" value (GICR_CTLR_RWP), so a second disable or enable racing with the first
 * is ignored, as the kernel does for a "funky guest".
 */
const writeCtlr: RegWrite = (c, _addr, _len, value) => {
  const h = c.h;
  if (!vgicHasIts(h)) return;
  const w = vcpuOff(h.g, c.vcpu) + VCPU.off.gicrCtlr;
  if (value & GICR_CTLR_ENABLE_LPIS) {
    if (Atomics.compareExchange(h.m, w, 0, GICR_CTLR_RWP) !== 0) return;
    vgicEnableLpis(h, c.vcpu);
    Atomics.store(h.m, w, GICR_CTLR_ENABLE_LPIS);
    return;
  }
  if (h.m[h.g.distBase + DIST.off.implRev]! < KVM_VGIC_IMP_REV_3) return;
  if (Atomics.compareExchange(h.m, w, GICR_CTLR_ENABLE_LPIS, GICR_CTLR_RWP) !== GICR_CTLR_ENABLE_LPIS) return;
  flushPendingLpis(h, c.vcpu);
  itsInvalidateAllCaches(h);
  Atomics.store(h.m, w, 0);
};

/** PROPBASER (one VM-wide value) and this vCPU's PENDBASER: fixed while its LPIs are enabled. */
function baserRow(name: string, offset: number, lo: (c: MmioCtx) => number): RegDesc {
  return {
    name, offset, len: 8, bitsPerIrq: 0, widths: W32 | W64,
    read: (c, addr) => Atomics.load(c.h.m, lo(c) + ((addr & 4) ? 1 : 0)) >>> 0,
    write: (c, addr, _len, value) => {
      if (Atomics.load(c.h.m, vcpuOff(c.h.g, c.vcpu) + VCPU.off.gicrCtlr) !== 0) return;
      Atomics.store(c.h.m, lo(c) + ((addr & 4) ? 1 : 0), value | 0);
    },
  };
}

/** GICR_INVLPIR: re-read one LPI's configuration. */
const writeInvlpir: RegWrite = (c, addr, _len, value) => {
  if (addr & 4 || !lpisEnabled(c.h, c.vcpu)) return;
  const r = lpiRecord(c.h, value >>> 0);
  if (r < 0 || !lpiGet(c.h, r)) return;
  try {
    lpiUpdateConfig(c.h, r);
  } finally {
    lpiPut(c.h, r);
  }
};

/** GICR_INVALLR: re-read the configuration of every LPI targeting this redistributor. */
const writeInvallr: RegWrite = (c, addr) => {
  if (addr & 4 || !lpisEnabled(c.h, c.vcpu)) return;
  forEachLpi(c.h, (r) => {
    if (c.h.m[irqOff(c.h.g, r) + IRQ.off.target] === c.vcpu) lpiUpdateConfig(c.h, r);
  });
};

/** GICR_IIDR: ProductID 'K' [31:24] and the ARM implementer code; no revision (spec §6). */
const readIidr: RegRead = () => ((PRODUCT_ID_KVM << 24) | IMPLEMENTER_ARM) >>> 0;

/**
 * GICR_TYPER, as two words: low = Processor_Number [23:8], Last [4], PLPIS [0]; high = the
 * affinity Aff2.Aff1.Aff0 (bits [55:32] of the register; no Aff3). Processor_Number is the
 * vcpu_id (vgic_mmio_read_v3r_typer), not the creation index that placed the frame; Last follows
 * the frame's slot in its region (rdistIsLast).
 */
const readTyper: RegRead = (c, addr) => {
  const h = c.h;
  const vb = vcpuOff(h.g, c.vcpu);
  if (addr & 4) return h.m[vb + VCPU.off.mpidr]! & 0xffffff;
  let v = (h.m[vb + VCPU.off.vcpuId]! & 0xffff) << 8;
  if (vgicHasIts(h)) v |= GICR_TYPER_PLPIS;
  if (rdistIsLast(h, c.vcpu)) v |= GICR_TYPER_LAST;
  return v >>> 0;
};

const RD_ROWS: RegDesc[] = [
  { name: 'CTLR', offset: GICR_CTLR, len: 4, bitsPerIrq: 0, widths: W32, read: readCtlr, write: writeCtlr },
  { name: 'IIDR', offset: GICR_IIDR, len: 4, bitsPerIrq: 0, widths: W32, read: readIidr, write: wi },
  { name: 'TYPER', offset: GICR_TYPER, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: readTyper, write: wi, uwrite: wi },
  // Redistributors are always awake and report no errors.
  { name: 'STATUSR', offset: GICR_STATUSR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: wi },
  { name: 'WAKER', offset: GICR_WAKER, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: wi },
  baserRow('PROPBASER', GICR_PROPBASER, (c) => c.h.g.distBase + DIST.off.propbaserLo),
  baserRow('PENDBASER', GICR_PENDBASER, (c) => vcpuOff(c.h.g, c.vcpu) + VCPU.off.pendbaserLo),
  { name: 'INVLPIR', offset: GICR_INVLPIR, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: raz, write: writeInvlpir },
  { name: 'INVALLR', offset: GICR_INVALLR, len: 8, bitsPerIrq: 0, widths: W32 | W64, read: raz, write: writeInvallr },
  // Invalidation is synchronous here: SYNCR never reads busy.
  { name: 'SYNCR', offset: GICR_SYNCR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: wi },
  { name: 'IDREGS', offset: GICR_IDREGS, len: 48, bitsPerIrq: 0, widths: W32, read: readIdregs, write: wi },
];

function priv(name: string, offset: number, bpi: number, widths: number, len: number, read: RegRead, write: RegDesc['write'], uread?: RegRead, uwrite?: RegDesc['write']): RegDesc {
  return { name, offset, len, bitsPerIrq: bpi, widths, read, write, uread, uwrite };
}

const SGI_ROWS: RegDesc[] = [
  priv('IGROUPR0', GICR_IGROUPR0, 1, W32, 4, P.readGroup, P.writeGroup),
  priv('ISENABLER0', GICR_ISENABLER0, 1, W32, 4, P.readEnable, P.writeSenable),
  priv('ICENABLER0', GICR_ICENABLER0, 1, W32, 4, P.readEnable, P.writeCenable),
  priv('ISPENDR0', GICR_ISPENDR0, 1, W32, 4, P.readPending, P.writeSpending, P.ureadPendingV3, P.uwritePendingV3),
  priv('ICPENDR0', GICR_ICPENDR0, 1, W32, 4, P.readPending, P.writeCpending, raz, wi),
  priv('ISACTIVER0', GICR_ISACTIVER0, 1, W32, 4, P.readActive, P.writeSactive, P.ureadActive, P.uwriteSactive),
  priv('ICACTIVER0', GICR_ICACTIVER0, 1, W32, 4, P.readActive, P.writeCactive, P.ureadActive, P.uwriteCactive),
  priv('IPRIORITYR0-7', GICR_IPRIORITYR0, 8, W8 | W32, 32, P.readPriority, P.writePriority),
  priv('ICFGR0-1', GICR_ICFGR0, 2, W32, 8, P.readConfig, P.writeConfig),
  priv('IGRPMODR0', GICR_IGRPMODR0, 1, W32, 4, raz, wi),
  priv('NSACR', GICR_NSACR, 2, W32, 4, raz, wi),
];

export const GICR = makeFrame('GICR', KVM_VGIC_V3_REDIST_SIZE, [...RD_ROWS, ...SGI_ROWS]);
