/**
 * The GICv2 distributor frame (kernel vgic-mmio-v2.c vgic_v2_dist_registers; spec §5.4, §6).
 * Private INTIDs (0-31) are banked: they are the accessing vCPU's (the attr's vCPU for userspace).
 */
import { traceIrq, tracePend } from '../trace.js';
import { EventKind } from '../../record/events.js';
import { kvmErr } from '../../uapi/errno.js';
import { IMPLEMENTER_ARM, KVM_VGIC_V2_DIST_SIZE, PRODUCT_ID_KVM, VGIC_NR_PRIVATE_IRQS } from '../../uapi/kvm.js';
import { DIST, IRQ } from '../../shm/layouts.js';
import { vcpuIdOf } from '../vcpu-id.js';
import { irqOff } from '../../shm/vm-memory.js';
import { schedPoint, SchedPoint } from '../../sync/sched.js';
import { lockIrq, unlockIrq } from '../locks.js';
import { queueIrqUnlock } from '../queue.js';
import { vgicKickVcpus } from '../kick-all.js';
import * as P from './per-irq.js';
import { makeFrame, raz, W32, W8, type MmioCtx, type RegDesc, type RegRead, type RegWrite } from './table.js';
import { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_SGIR, GICD_CPENDSGIR, GICD_SPENDSGIR } from './offsets.js';
import { LockSite } from '../../sync/lock-sites.js';
export { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_SGIR, GICD_CPENDSGIR, GICD_SPENDSGIR };


// Field offsets resolved once: these handlers are on the MMIO hot path.
const ENABLED = DIST.off.enabled;
const NR_SPIS = DIST.off.nrSpis;
const IMPL_REV = DIST.off.implRev;
const ONLINE = DIST.off.onlineVcpus;

/** GICD_IIDR / GICR_IIDR layout: ProductID [31:24], Revision [15:12], Implementer [11:0]. */
export function gicdIidr(rev: number): number {
  return ((PRODUCT_ID_KVM << 24) | (rev << 12) | IMPLEMENTER_ARM) >>> 0;
}

/** CTLR (Enable), TYPER (ITLinesNumber [4:0], CPUNumber [7:5]), IIDR. */
const readMisc: RegRead = (c, addr) => {
  const m = c.h.m;
  const db = c.h.g.distBase;
  switch (addr & ~3) {
    case GICD_CTLR:
      return Atomics.load(m, db + ENABLED) ? 1 : 0;
    case GICD_TYPER:
      return (((m[db + ONLINE]! - 1) & 7) << 5) | ((((m[db + NR_SPIS]! + 32) >> 5) - 1) & 0x1f);
    case GICD_IIDR:
      return gicdIidr(m[db + IMPL_REV]!);
  }
  return 0;
};

/**
 * GICD_CTLR: bit 0 is the distributor enable. On a 0->1 transition kick vCPUs that already hold
 * deliverable IRQs (vgic_kick_vcpus). No config_lock for v2 (S16), unlike v3. TYPER/IIDR writes
 * are ignored.
 */
const writeMisc: RegWrite = (c, addr, _len, val) => {
  if ((addr & ~3) !== GICD_CTLR) return;
  const h = c.h;
  const idx = h.g.distBase + ENABLED;
  // Published with a store: the oracle and kvm_vgic_vcpu_pending_irq read it without a lock.
  const was = Atomics.exchange(h.m, idx, val & 1);
  if (h.hist) h.hist.record(EventKind.DIST, -1, -1, val & 1, 0);
  if (!was && val & 1) vgicKickVcpus(h);
};

/**
 * Userspace GICD_IIDR write: must equal what a read returns (-EINVAL otherwise). A VMM that writes
 * it has been updated to save/restore IGROUPR, so IGROUPR becomes user-writable (spec §6).
 */
const uwriteMisc: RegWrite = (c, addr, len, val) => {
  if ((addr & ~3) === GICD_IIDR) {
    if (val >>> 0 !== readMisc(c, addr, len)) kvmErr('EINVAL', 'GICD_IIDR does not match');
    c.h.m[c.h.g.distBase + DIST.off.v2GroupsUserWritable] = 1;
    return;
  }
  writeMisc(c, addr, len, val);
};

/** ITARGETSR: a byte per IRQ, the raw target mask (private ones read as their own vCPU). */
const readTarget: RegRead = (c, _a, len) => P.readByteField(c, P.recOf(c, c.intid), len, IRQ.off.targets);

/**
 * ITARGETSR write: private bytes are read-only; for SPIs keep only existing vCPUs' bits and
 * target the lowest one (vCPU 0 if none). Only target_vcpu changes: an IRQ already queued migrates
 * at its holder's next prune, an unqueued pending one is not requeued (spec §3.8).
 */
const writeTarget: RegWrite = (c, _a, len, val) => {
  const h = c.h;
  const m = h.m;
  const online = m[h.g.distBase + ONLINE]!;
  const mask = online >= 8 ? 0xff : (1 << online) - 1;
  for (let i = 0; i < len; i++) {
    const intid = c.intid + i;
    if (intid < VGIC_NR_PRIVATE_IRQS) continue;
    const r = P.recOf(c, intid);
    const b = irqOff(h.g, r);
    const t = (val >>> (i * 8)) & mask;
    lockIrq(h, r, LockSite.MmioPerIrq);
    m[b + IRQ.off.targets] = t;
    m[b + IRQ.off.target] = t ? 31 - Math.clz32(t & -t) : 0;
    if (h.hist) traceIrq(h, r, EventKind.TARGET, m[b + IRQ.off.target]!);
    unlockIrq(h, r);
  }
};

/** Set SGI `sgi` of vCPU `target` pending from `source` (one bit of GICD_SGIR). */
function sendSgi(c: MmioCtx, target: number, sgi: number, source: number): void {
  const h = c.h;
  const r = target * 32 + sgi;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.QueueSgi);
  h.m[b + IRQ.off.pendingLatch] = 1;
  h.m[b + IRQ.off.source] = h.m[b + IRQ.off.source]! | (1 << source);
  if (h.hist) tracePend(h, r, source);
  schedPoint(SchedPoint.PublishLatch, r);
  queueIrqUnlock(h, r);
}

/**
 * GICD_SGIR (spec §5.4): INTID [3:0], target list [23:16], filter [25:24]: 0 list, 1 all but
 * the sender, 2 the sender only, 3 reserved (ignored). Targets that are not online are skipped.
 * The sender is the accessing vCPU (the attr's vCPU for a userspace write). As in
 * vgic_mmio_write_sgir, target-list bits are CPU interface numbers (vcpu_idx, kvm_for_each_vcpu),
 * while the sender's own bit (filters 1 and 2) and its bit in the SGI's source mask (what GICC_IAR
 * reports as CPUID) are its vcpu_id; the two agree when vCPUs were created in id order.
 */
const writeSgir: RegWrite = (c, _a, _len, val) => {
  const online = c.h.m[c.h.g.distBase + ONLINE]!;
  const src = vcpuIdOf(c.h, c.vcpu);
  const sgi = val & 0xf;
  let targets = (val >>> 16) & 0xff;
  switch ((val >>> 24) & 3) {
    case 1:
      targets = ((1 << online) - 1) & ~(1 << src);
      break;
    case 2:
      targets = 1 << src;
      break;
    case 3:
      return;
  }
  for (let t = 0; t < online && t < 8; t++) if (targets & (1 << t)) sendSgi(c, t, sgi, src);
};

/** GICD_{S,C}PENDSGIR: a byte per SGI (4 per word) holding its source mask. */
const readSgiPend: RegRead = (c, addr, len) => P.readByteField(c, c.vcpu * 32 + (addr & 0xf), len, IRQ.off.source);

/** CPENDSGIR: clear source bits; no source left means no longer pending. */
const writeSgiPendC: RegWrite = (c, addr, len, val) => {
  const h = c.h;
  const m = h.m;
  const first = addr & 0xf;
  for (let i = 0; i < len; i++) {
    const r = c.vcpu * 32 + first + i;
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.QueueSgi);
    m[b + IRQ.off.source] = m[b + IRQ.off.source]! & ~((val >>> (i * 8)) & 0xff);
    if (m[b + IRQ.off.source] === 0) m[b + IRQ.off.pendingLatch] = 0;
    if (h.hist && (val >>> (i * 8)) & 0xff) traceIrq(h, r, EventKind.UNPEND, 0, (val >>> (i * 8)) & 0xff);
    unlockIrq(h, r);
  }
};

/** SPENDSGIR: add source bits; pending and queued if any source is set. */
const writeSgiPendS: RegWrite = (c, addr, len, val) => {
  const h = c.h;
  const m = h.m;
  const first = addr & 0xf;
  for (let i = 0; i < len; i++) {
    const r = c.vcpu * 32 + first + i;
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.QueueSgi);
    const added = (val >>> (i * 8)) & 0xff;
    m[b + IRQ.off.source] = m[b + IRQ.off.source]! | added;
    if (h.hist) for (let s = 0; s < 8; s++) if (added & (1 << s)) tracePend(h, r, s);
    if (m[b + IRQ.off.source] !== 0) {
      m[b + IRQ.off.pendingLatch] = 1;
      queueIrqUnlock(h, r);
    } else unlockIrq(h, r);
  }
};

function bits(name: string, offset: number, read: RegRead, write: RegWrite, uread?: RegRead, uwrite?: RegWrite): RegDesc {
  return { name, offset, len: 128, bitsPerIrq: 1, widths: W32, read, write, uread, uwrite };
}

const ROWS: RegDesc[] = [
  { name: 'CTLR/TYPER/IIDR', offset: GICD_CTLR, len: 12, bitsPerIrq: 0, widths: W32, read: readMisc, write: writeMisc, uwrite: uwriteMisc },
  bits('IGROUPR', GICD_IGROUPR, P.readGroup, P.writeGroup, undefined, P.uwriteGroupV2),
  bits('ISENABLER', GICD_ISENABLER, P.readEnable, P.writeSenable),
  bits('ICENABLER', GICD_ICENABLER, P.readEnable, P.writeCenable),
  bits('ISPENDR', GICD_ISPENDR, P.readPending, P.writeSpending, undefined, P.uwriteSpendingV2),
  bits('ICPENDR', GICD_ICPENDR, P.readPending, P.writeCpending, undefined, P.uwriteCpendingV2),
  bits('ISACTIVER', GICD_ISACTIVER, P.readActive, P.writeSactive, P.ureadActive, P.uwriteSactive),
  bits('ICACTIVER', GICD_ICACTIVER, P.readActive, P.writeCactive, P.ureadActive, P.uwriteCactive),
  { name: 'IPRIORITYR', offset: GICD_IPRIORITYR, len: 1024, bitsPerIrq: 8, widths: W8 | W32, read: P.readPriority, write: P.writePriority },
  { name: 'ITARGETSR', offset: GICD_ITARGETSR, len: 1024, bitsPerIrq: 8, widths: W8 | W32, read: readTarget, write: writeTarget },
  { name: 'ICFGR', offset: GICD_ICFGR, len: 256, bitsPerIrq: 2, widths: W32, read: P.readConfig, write: P.writeConfig },
  { name: 'SGIR', offset: GICD_SGIR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: writeSgir },
  { name: 'CPENDSGIR', offset: GICD_CPENDSGIR, len: 16, bitsPerIrq: 0, widths: W8 | W32, read: readSgiPend, write: writeSgiPendC },
  { name: 'SPENDSGIR', offset: GICD_SPENDSGIR, len: 16, bitsPerIrq: 0, widths: W8 | W32, read: readSgiPend, write: writeSgiPendS },
];

export const GICD_V2 = makeFrame('GICD(v2)', KVM_VGIC_V2_DIST_SIZE, ROWS);
