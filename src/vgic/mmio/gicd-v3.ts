/**
 * The GICv3 distributor frame (kernel vgic-mmio-v3.c vgic_v3_dist_registers; spec §6).
 * Affinity routing is always on, so the per-IRQ registers ignore INTIDs 0-31 (RAZ/WI): those live
 * in each redistributor's SGI frame. Each family therefore has two rows, a RAZ/WI one for the
 * private INTIDs and the real one for SPIs (REGISTER_DESC_WITH_BITS_PER_IRQ_SHARED).
 */
import { traceIrq } from '../trace.js';
import { EventKind } from '../../record/events.js';
import { kvmErr } from '../../uapi/errno.js';
import { KVM_VGIC_IMP_REV_2, KVM_VGIC_IMP_REV_3, KVM_VGIC_V3_DIST_SIZE } from '../../uapi/kvm.js';
import { DIST, IRQ } from '../../shm/layouts.js';
import { irqOff } from '../../shm/vm-memory.js';
import { mpidrToVcpu } from '../affinity.js';
import type { Host } from '../host.js';
import { lockConfig, lockIrq, unlockConfig, unlockIrq } from '../locks.js';
import { vgicKickVcpus } from '../kick-all.js';
import { gicdIidr } from './gicd-v2.js';
import * as P from './per-irq.js';
import { makeFrame, rao, raz, W32, W64, W8, wi, type RegDesc, type RegRead, type RegWrite } from './table.js';
import { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_TYPER2, GICD_STATUSR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_IGRPMODR, GICD_IROUTER, GICD_IDREGS, GICD_PIDR2 } from './offsets.js';
import { LockSite } from '../../sync/lock-sites.js';
export { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_TYPER2, GICD_STATUSR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_IGRPMODR, GICD_IROUTER, GICD_IDREGS, GICD_PIDR2 };


/** GICD_CTLR bits with DS=1 (single security state). */
export const CTLR_ENABLE_G1 = 1 << 1;
export const CTLR_ARE = 1 << 4;
export const CTLR_DS = 1 << 6;
export const CTLR_NASSGIREQ = 1 << 8;
/** GICD_TYPER: IDbits [23:19], LPIS bit 17. */
export const TYPER_LPIS = 1 << 17;
/** GICD_TYPER2.nASSGIcap [8]: SGIs without an active state can be offered (GICv4.1). */
const GICD_TYPER2_NASSGICAP = 1 << 8;
/** GICD_IIDR.Revision [15:12]. */
const IIDR_REV_MASK = 0xf000;
/** PIDR2 of a GICv3: ArchRev 3 in [7:4], plus JEP106 bits (spec §6). */
export const PIDR2_GICV3 = 0x3b;

// Field offsets resolved once: these handlers are on the MMIO hot path.
const ENABLED = DIST.off.enabled;
const NR_SPIS = DIST.off.nrSpis;
const IMPL_REV = DIST.off.implRev;

/** Does the VM have an ITS (dist->has_its)? Then LPIs are advertised (GICD_TYPER.LPIS, GICR_TYPER.PLPIS). */
export function vgicHasIts(h: Host): boolean {
  return h.m[h.g.distBase + DIST.off.nrIts]! > 0;
}

/** CTLR, TYPER, IIDR, TYPER2. nASSGIreq/nASSGIcap need GICv4.1, which is not modelled. */
const readMisc: RegRead = (c, addr) => {
  const h = c.h;
  const m = h.m;
  const db = h.g.distBase;
  switch (addr & ~3) {
    case GICD_CTLR:
      return ((Atomics.load(m, db + ENABLED) ? CTLR_ENABLE_G1 : 0) | CTLR_ARE | CTLR_DS) >>> 0;
    case GICD_TYPER: {
      const itLines = ((m[db + NR_SPIS]! + 32) >> 5) - 1;
      const idBits = vgicHasIts(h) ? 16 : 10; // INTERRUPT_ID_BITS_ITS / _SPIS
      return (itLines | ((idBits - 1) << 19) | (vgicHasIts(h) ? TYPER_LPIS : 0)) >>> 0;
    }
    case GICD_IIDR:
      return gicdIidr(m[db + IMPL_REV]!);
    case GICD_TYPER2:
      return 0;
  }
  return 0;
};

/**
 * Guest GICD_CTLR write, under config_lock (S17): EnableGrp1 is the distributor enable; enabling
 * kicks vCPUs with deliverable IRQs already queued. Without GICv4.1 nASSGIreq is RES0. The lock
 * serialises against userspace restore and vgic init, which also write `enabled`.
 */
const writeMisc: RegWrite = (c, addr, _len, val) => {
  if ((addr & ~3) !== GICD_CTLR) return; // TYPER, TYPER2, IIDR: read-only for the guest
  const h = c.h;
  lockConfig(h);
  try {
    const en = val & CTLR_ENABLE_G1 ? 1 : 0;
    const was = Atomics.exchange(h.m, h.g.distBase + ENABLED, en);
    if (h.hist) h.hist.record(EventKind.DIST, -1, -1, en, 0);
    if (!was && en) vgicKickVcpus(h);
  } finally {
    unlockConfig(h);
  }
};

/**
 * Userspace writes (caller holds config_lock): CTLR sets the enable without side effects; IIDR may
 * differ from the current value only in Revision, which must be 2 or 3 (no stage test: allowed
 * before and after CTRL_INIT); TYPER2 as below (spec §6). IIDR and TYPER2 are reachable before
 * CTRL_INIT (reg_allowed_pre_init) and touch only scalar distributor words.
 */
const uwriteMisc: RegWrite = (c, addr, len, val) => {
  const h = c.h;
  switch (addr & ~3) {
    case GICD_CTLR:
      Atomics.store(h.m, h.g.distBase + ENABLED, val & CTLR_ENABLE_G1 ? 1 : 0);
      return;
    case GICD_IIDR: {
      const cur = readMisc(c, addr, len);
      if (((cur ^ val) & ~IIDR_REV_MASK) !== 0) kvmErr('EINVAL', 'GICD_IIDR: only Revision may change');
      const rev = (val & IIDR_REV_MASK) >>> 12;
      if (rev !== KVM_VGIC_IMP_REV_2 && rev !== KVM_VGIC_IMP_REV_3) kvmErr('EINVAL', `GICD_IIDR: unsupported revision ${rev}`);
      h.m[h.g.distBase + IMPL_REV] = rev;
      return;
    }
    case GICD_TYPER2: {
      // vgic_mmio_uaccess_write_v3_misc, in the kernel's order: the value read back is accepted;
      // a change once vgic_init has read nassgicap is EBUSY; only nASSGIcap may change; and
      // setting it needs GICv4.1 direct SGIs, which this host (the model) does not have. Clearing
      // it is always allowed, and it always reads 0 here, so no accepted change is left.
      const cur = readMisc(c, addr, len);
      const v = val >>> 0;
      if (v === cur) return;
      if (Atomics.load(h.m, h.g.distBase + DIST.off.initialized)) kvmErr('EBUSY', 'GICD_TYPER2: cannot change after CTRL_INIT');
      if (((cur ^ v) & ~GICD_TYPER2_NASSGICAP) !== 0) kvmErr('EINVAL', 'GICD_TYPER2: only nASSGIcap may change');
      kvmErr('EINVAL', 'GICD_TYPER2.nASSGIcap: the host has no GICv4.1 direct SGIs');
    }
  }
};

/**
 * GICD_IROUTER<n>: 64 bits, of which the upper word (Aff3) is RAZ/WI. The lower word keeps
 * Aff2.Aff1.Aff0 only (IRM is ignored: no 1-of-N). The stored affinity is in `targets`.
 */
const readIrouter: RegRead = (c, addr) => {
  if (addr & 4) return 0;
  const h = c.h;
  const r = P.recOf(c, c.intid);
  lockIrq(h, r, LockSite.MmioPerIrq);
  const aff = h.m[irqOff(h.g, r) + IRQ.off.targets]! & 0xffffff;
  unlockIrq(h, r);
  return aff;
};

/**
 * IROUTER write: target_vcpu := the vCPU with that affinity, or none (-1: never delivered until
 * retargeted). No requeue (spec §3.8): an IRQ already queued migrates at its holder's next prune.
 */
const writeIrouter: RegWrite = (c, addr, _len, val) => {
  if (addr & 4) return;
  const h = c.h;
  const aff = val & 0xffffff;
  const t = mpidrToVcpu(h, aff);
  const r = P.recOf(c, c.intid);
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.MmioPerIrq);
  h.m[b + IRQ.off.targets] = aff;
  h.m[b + IRQ.off.target] = t;
  if (h.hist) traceIrq(h, r, EventKind.TARGET, t);
  unlockIrq(h, r);
};

/** ID registers: PIDR2 identifies a GICv3; the rest read as zero. */
export const readIdregs: RegRead = (_c, addr) => ((addr & ~3) === GICD_PIDR2 ? PIDR2_GICV3 : 0);

/** A per-IRQ family: RAZ/WI for INTIDs 0-31, the real handlers from INTID 32 on. */
function shared(name: string, offset: number, bpi: number, widths: number, read: RegRead, write: RegWrite, uread?: RegRead, uwrite?: RegWrite): RegDesc[] {
  const privLen = (bpi * 32) / 8;
  return [
    { name: `${name}(private)`, offset, len: privLen, bitsPerIrq: bpi, widths, irqBase: offset, read: raz, write: wi },
    { name, offset: offset + privLen, len: (bpi * (1024 - 32)) / 8, bitsPerIrq: bpi, widths, irqBase: offset, read, write, uread, uwrite },
  ];
}

const ROWS: RegDesc[] = [
  { name: 'CTLR/TYPER/IIDR/TYPER2', offset: GICD_CTLR, len: 16, bitsPerIrq: 0, widths: W32, read: readMisc, write: writeMisc, uwrite: uwriteMisc },
  // Reads all-ones and ignores writes in the kernel version read (spec §6).
  { name: 'STATUSR', offset: GICD_STATUSR, len: 4, bitsPerIrq: 0, widths: W32, read: rao, write: wi },
  ...shared('IGROUPR', GICD_IGROUPR, 1, W32, P.readGroup, P.writeGroup),
  ...shared('ISENABLER', GICD_ISENABLER, 1, W32, P.readEnable, P.writeSenable),
  ...shared('ICENABLER', GICD_ICENABLER, 1, W32, P.readEnable, P.writeCenable),
  ...shared('ISPENDR', GICD_ISPENDR, 1, W32, P.readPending, P.writeSpending, P.ureadPendingV3, P.uwritePendingV3),
  ...shared('ICPENDR', GICD_ICPENDR, 1, W32, P.readPending, P.writeCpending, raz, wi),
  ...shared('ISACTIVER', GICD_ISACTIVER, 1, W32, P.readActive, P.writeSactive, P.ureadActive, P.uwriteSactive),
  ...shared('ICACTIVER', GICD_ICACTIVER, 1, W32, P.readActive, P.writeCactive, P.ureadActive, P.uwriteCactive),
  ...shared('IPRIORITYR', GICD_IPRIORITYR, 8, W8 | W32, P.readPriority, P.writePriority),
  // ITARGETSR is RAZ/WI with affinity routing.
  ...shared('ITARGETSR', GICD_ITARGETSR, 8, W8 | W32, raz, wi),
  ...shared('ICFGR', GICD_ICFGR, 2, W32, P.readConfig, P.writeConfig),
  ...shared('IGRPMODR', GICD_IGRPMODR, 1, W32, raz, wi),
  ...shared('IROUTER', GICD_IROUTER, 64, W32 | W64, readIrouter, writeIrouter),
  { name: 'IDREGS', offset: GICD_IDREGS, len: 48, bitsPerIrq: 0, widths: W32, read: readIdregs, write: wi },
];

export const GICD_V3 = makeFrame('GICD(v3)', KVM_VGIC_V3_DIST_SIZE, ROWS);
