/**
 * SGI generation with a GICv3 model (spec §5.5; kernel vgic_v3_dispatch_sgi, vgic_v3_queue_sgi):
 * a trapped write of ICC_SGI1R_EL1 / ICC_ASGI1R_EL1 / ICC_SGI0R_EL1, run on the writer's vCPU
 * thread after it left the guest.
 *
 * Register layout: Aff3 [55:48], IRM [40], Aff2 [39:32], INTID [27:24], Aff1 [23:16],
 * TargetList [15:0]. The range selector [47:44] is not used (as in the kernel).
 * v3 SGIs keep no source: a second request before delivery merges with the first.
 */
import { IRQ } from '../shm/layouts.js';
import { irqOff } from '../shm/vm-memory.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { mpidrToVcpu } from './affinity.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { lockIrq, unlockIrq } from './locks.js';
import { queueIrqUnlock } from './queue.js';
import { tracePend } from './trace.js';
import { LockSite } from '../sync/lock-sites.js';

/**
 * Make SGI `sgi` of vCPU `t` pending if the access may raise its group: a group-0 access raises
 * only group-0 SGIs, a group-1 access either group (GICD_CTLR.DS=1).
 */
function queueSgi(h: Host, t: number, sgi: number, allowGroup1: boolean): void {
  const r = t * 32 + sgi;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.QueueSgi);
  // HW (GICv4.1 vSGI) records would have the physical GIC make them pending; not modelled.
  if ((h.m[b + IRQ.off.group] === 0 || allowGroup1) && h.m[b + IRQ.off.hw] === 0) {
    h.m[b + IRQ.off.pendingLatch] = 1;
    if (h.hist) tracePend(h, r);
    schedPoint(SchedPoint.PublishLatch, r);
    queueIrqUnlock(h, r);
  } else unlockIrq(h, r);
}

export function vgicV3DispatchSgi(h: Host, v: number, value: bigint, allowGroup1: boolean): void {
  dispatchSgiWords(h, v, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn), allowGroup1);
}

/** The same, from the register's two 32-bit halves: no BigInt on the IPI path. */
export function dispatchSgiWords(h: Host, v: number, lo: number, hi: number, allowGroup1: boolean): void {
  const sgi = (lo >>> 24) & 0xf;
  const online = h.m[D.onlineVcpus]!;
  if (hi & (1 << 8)) {
    // IRM: every vCPU but the writer.
    for (let t = 0; t < online; t++) if (t !== v) queueSgi(h, t, sgi, allowGroup1);
    return;
  }
  // vCPUs have no Aff3 here (their affinity is Aff2.Aff1.Aff0), so a non-zero Aff3 names nobody.
  if ((hi >>> 16) & 0xff) return;
  const cluster = ((hi & 0xff) << 16) | (((lo >>> 16) & 0xff) << 8);
  for (let list = lo & 0xffff; list !== 0; ) {
    const low = list & -list;
    list ^= low;
    const t = mpidrToVcpu(h, cluster | (31 - Math.clz32(low)));
    if (t >= 0) queueSgi(h, t, sgi, allowGroup1); // targets with no matching vCPU are skipped
  }
}
