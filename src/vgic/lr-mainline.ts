/**
 * LR overflow as mainline handles it (kernel vgic.c vgic_flush_lr_state and the "black magic"
 * comment above it, vgic-v3.c / vgic-v2.c fold and vgic_v{2,3}_deactivate, hyp/vgic-v3-sr.c DIR;
 * spec §4.8). VmOptions.lrPolicy 'mainline' selects it; lr.ts keeps the classic flush.
 *
 * - Flush: summarise the ap_list (pending-only vs active, counting only IRQs whose oracle is this
 *   vCPU); if they do not all fit, sort pending first (so a guest that has priority-dropped any
 *   number of actives is still presented the next pending one), then by priority. Then program
 *   the maintenance controls: NPIE (more pending than LRs: exit once no LR is pending), LRENPIE
 *   (actives outside the LRs: exit when EOIcount moves), UIE (more than fit: exit once the LRs are
 *   nearly empty), and TDIR (trap DIR while actives live outside the LRs, or while any SPI is in
 *   flight in the VM, since an SPI may be deactivated on a vCPU other than the one that acked it).
 * - Fold: EOIcount counts EOIs (EOImode=0) and DIRs of interrupts that were in no LR. With EOImode=0
 *   deactivation follows acknowledge order in reverse, and the list is sorted by priority, so the
 *   interrupts to deactivate are the first EOIcount active entries past those that were in LRs.
 *   An EOIR with EOImode=1 deactivates nothing and is not counted (the ICH_HCR_EL2.EOIcount
 *   description, and the premise of mainline's EOImode=1 handling; the kernel's own trap emulation
 *   in vgic-v3-sr.c counts it, which would make the walk deactivate at EOI time).
 * - SPIs in flight (dist->active_spis) end only with an EOI-maintenance LR, i.e. level SPIs, as
 *   in the kernel: once an edge SPI has been queued, TDIR stays set (conservative, never wrong).
 * - DIR trap (dir-trap.ts): the INTID is not in this vCPU's LRs; find it on the ap_list it is
 *   queued on (ours, or for an SPI whichever vCPU acked it) and deactivate it there, or, if it
 *   sits in a running vCPU's LR, fall back to a guest ICACTIVER write, which halts every vCPU.
 */
import { KVM_REQ_IRQ_PENDING, VGIC_NR_PRIVATE_IRQS, VGIC_MODEL_V3 } from '../uapi/kvm.js';
import { CTR, IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { isV2Sgi, LEVEL } from './irq.js';
import { lockApList, lockIrq, unlockApList, unlockIrq } from './locks.js';
import { clearLr, cyclic, lrOff, populateLr, snapshotSortKey, sortApListSnapshot } from './lr.js';
import { physDeactivate, physLineLevel } from './phys-irq.js';
import { kickVcpu, makeRequest, oracle } from './queue.js';
import { bumpCounter } from './stats.js';
import { DEACT_BY_EOICOUNT, EventKind } from '../record/events.js';
import { LockSite } from '../sync/lock-sites.js';

/** ICH_HCR_EL2.EOIcount is a 5-bit field. */
export const EOICOUNT_MAX = 31;

/**
 * The flush of an empty ap_list: nothing to load; still trap DIR while SPIs are in flight
 * elsewhere. The unlocked look at an empty list is the classic kernel's benign race: an injector
 * kicks us after queueing. Its own small function so that it inlines into every guest entry (the
 * MMIO round trip is mostly this path).
 */
export function flushEmptyMainline(m: Int32Array, vb: number): number {
  m[vb + VCPU.off.eoiCount] = 0;
  m[vb + VCPU.off.usedLrs] = 0;
  m[vb + VCPU.off.uie] = 0;
  m[vb + VCPU.off.npie] = 0;
  m[vb + VCPU.off.lrenpie] = 0;
  // Plain load (atomic_read): a hint, racy by design (layouts.ts, DIST.activeSpis).
  m[vb + VCPU.off.tdir] = m[D.activeSpis] !== 0 ? 1 : 0;
  return 0;
}

/**
 * kvm_vgic_flush_hwstate + vgic_flush_lr_state (mainline). Returns the number of LRs populated.
 * ICH_HCR is rewritten at every entry, so EOIcount starts again at zero.
 */
export function flushLrsMainline(h: Host, v: number): number {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (m[vb + VCPU.off.apHead]! < 0) return flushEmptyMainline(m, vb);
  m[vb + VCPU.off.eoiCount] = 0;
  const nrLr = m[vb + VCPU.off.nrLr]!;
  lockApList(h, v, LockSite.FlushLrsMainline);
  // summarize_ap_list
  let nrPend = 0;
  let nrAct = 0;
  let guard = 0;
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.FlushLrsMainline);
    if (oracle(h, b) === v) {
      if (m[b + IRQ.off.active]) nrAct++;
      else nrPend++;
    }
    // vgic_sort_ap_list's key, in case the list does not fit (lr.ts: one walk, not two).
    snapshotSortKey(h, b, guard - 1, r, true);
    const next = m[b + IRQ.off.next]!;
    unlockIrq(h, r);
    r = next;
  }
  const outside = nrPend + nrAct > nrLr;
  if (outside) {
    sortApListSnapshot(h, v, guard);
    bumpCounter(h, v, CTR.lrOverflows);
  }
  let count = 0;
  guard = 0;
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0 && count < nrLr; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.FlushLrsMainline);
    if (oracle(h, b) === v) populateLr(h, v, b, count++);
    const next = m[b + IRQ.off.next]!;
    unlockIrq(h, r);
    r = next;
  }
  for (let i = count; i < nrLr; i++) clearLr(m, lrOff(h, v, i));
  m[vb + VCPU.off.usedLrs] = count;
  // vgic_v3_configure_hcr / vgic_v2_configure_hcr
  const activeOutside = nrAct > 0 && outside;
  m[vb + VCPU.off.uie] = outside ? 1 : 0;
  m[vb + VCPU.off.npie] = nrPend > nrLr ? 1 : 0;
  m[vb + VCPU.off.lrenpie] = activeOutside ? 1 : 0;
  m[vb + VCPU.off.tdir] = activeOutside || m[D.activeSpis] !== 0 ? 1 : 0;
  unlockApList(h, v);
  return count;
}

/**
 * Deactivate record b, which is in no LR, as the CPU interface would have: the kernel builds the
 * LR it would populate, clears its active bit and folds it. Caller holds b's irq_lock. Returns
 * whether that LR signals EOI maintenance on an SPI (level, not HW): the caller then notifies the
 * ack notifiers and ends the SPI's flight, after dropping its locks.
 */
export function deactivateRecord(h: Host, b: number): boolean {
  const m = h.m;
  m[b + IRQ.off.active] = 0;
  const level = m[b + IRQ.off.config] === LEVEL;
  if (m[b + IRQ.off.hw]) {
    const pintid = m[b + IRQ.off.hwintid]!;
    physDeactivate(h, pintid);
    // A mapped level IRQ: never pending+active, so the LR is now invalid; a line still seen high
    // is re-sampled (vgic_irq_handle_resampling with lr_deactivated).
    if (level) {
      m[b + IRQ.off.pendingLatch] = 0;
      if (m[b + IRQ.off.lineLevel]) m[b + IRQ.off.lineLevel] = physLineLevel(h, pintid) ? 1 : 0;
    }
    return false;
  }
  if (!level) return false; // an edge's pending state (latch, v2 SGI sources) is left as it is
  m[b + IRQ.off.pendingLatch] = 0;
  const intid = m[b + IRQ.off.intid]!;
  return intid >= VGIC_NR_PRIVATE_IRQS && intid < 1020;
}

/** The DIR value that names record b's active instance (a v2 SGI carries its active source). */
function deactTraceValue(h: Host, b: number): number {
  const intid = h.m[b + IRQ.off.intid]!;
  return isV2Sgi(h, b) ? intid | (h.m[b + IRQ.off.activeSource]! << 10) : intid;
}

/** An SPI's flight ended (atomic_dec_if_positive(&dist->active_spis)). */
export function activeSpiDone(h: Host): void {
  const m = h.m;
  for (let n = Atomics.load(m, D.activeSpis); n > 0; ) {
    const seen = Atomics.compareExchange(m, D.activeSpis, n, n - 1);
    if (seen === n) return;
    n = seen;
  }
}

/**
 * vgic_queue_irq_unlock, an SPI just inserted on a GICv3 model (caller holds the locks): count it
 * in flight. Returns true for the first one, after which the caller asks every vCPU to re-flush
 * (kvm_make_all_cpus_request, kickAllVcpus) so that all of them trap DIR.
 */
export function activeSpiQueued(h: Host, intid: number): boolean {
  const m = h.m;
  if (h.classicLr || intid < VGIC_NR_PRIVATE_IRQS || intid >= 1020 || m[D.model] !== VGIC_MODEL_V3) return false;
  return Atomics.add(m, D.activeSpis, 1) === 0;
}

/** kvm_make_all_cpus_request(kvm, KVM_REQ_IRQ_PENDING): request and kick every online vCPU. */
export function kickAllVcpus(h: Host): void {
  const n = Atomics.load(h.m, D.onlineVcpus);
  for (let t = 0; t < n; t++) {
    makeRequest(h, t, KVM_REQ_IRQ_PENDING);
    kickVcpu(h, t);
  }
}

// Scratch for the EOIcount walk (one walk at a time per thread; EOIcount is at most 31).
const ackedPins = new Int32Array(EOICOUNT_MAX + 1);

/**
 * The EOIcount half of vgic_v{2,3}_fold_lr_state, after the LRs are folded. `folded` holds the
 * records that were in this run's LRs: EOIcount counts only interrupts outside them, and those
 * that were in an LR and are still active are not the ones to deactivate. (Mainline walks on
 * from the last record it populated; skipping the folded records is the same set, without
 * depending on that record still being on the list: flushPendingLpis, on another thread, may
 * have unlinked it meanwhile.) We walk under our ap_list_lock: queueing appends on other threads.
 */
export function foldEoiCount(h: Host, v: number, folded: Int32Array, nFolded: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  let n = m[vb + VCPU.off.eoiCount]!;
  m[vb + VCPU.off.eoiCount] = 0;
  let acked = 0;
  let guard = 0;
  lockApList(h, v, LockSite.FoldEoiCount);
  walk: for (let r = m[vb + VCPU.off.apHead]!; r >= 0 && n > 0; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    const next = m[b + IRQ.off.next]!;
    for (let i = 0; i < nFolded; i++) {
      if (folded[i] === r) {
        r = next;
        continue walk;
      }
    }
    // LPIs lose their active state at priority drop and never bump EOIcount.
    if (r < h.g.lpiRecordBase) {
      lockIrq(h, r, LockSite.FoldEoiCount);
      if (oracle(h, b) === v && m[b + IRQ.off.active]) {
        if (deactivateRecord(h, b)) ackedPins[acked++] = m[b + IRQ.off.intid]! - 32;
        // The deactivation the guest's EOI meant, as the history would have seen it in an LR.
        if (h.hist) h.hist.record(EventKind.DEACT, deactTraceValue(h, b), v, m[b + IRQ.off.config]!, DEACT_BY_EOICOUNT);
        n--;
      }
      unlockIrq(h, r);
    }
    r = next;
  }
  unlockApList(h, v);
  for (let i = 0; i < acked; i++) {
    if (h.onAckedSpi) h.onAckedSpi(ackedPins[i]!);
    activeSpiDone(h);
  }
}
