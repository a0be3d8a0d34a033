/**
 * The world switch: flushing the ap_list into list registers before entry, folding LR state back
 * into the records after exit, and pruning/migrating the ap_list (kernel vgic.c, vgic-v2.c,
 * vgic-v3.c; spec §4.3-4.7). This file holds the classic (~6.1-6.6) flush of spec §4.3 (sort when
 * the list does not fit or holds a multi-source SGI, active IRQs first; UIE when entries remain)
 * and what both policies share; lr-mainline.ts holds the mainline flush, its EOIcount walk and the
 * DIR trap (VmOptions.lrPolicy picks one).
 */
import { KVM_REQ_IRQ_PENDING, VGIC_NR_PRIVATE_IRQS, VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { IRQ, LR, LR_ACTIVE, LR_PENDING, MAX_LRS, VCPU, CTR } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import { BUG } from './bugs.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { EDGE, irqIsPending, irqLrCount, irqRecord, isV2Sgi, LEVEL } from './irq.js';
import { lockApList, lockIrq, unlockApList, unlockIrq } from './locks.js';
import { apListAppend, apListUnlink, kickVcpu, makeRequest, oracle } from './queue.js';
import { bumpCounter } from './stats.js';
import { traceMigrate } from './trace.js';
import { apListProblem, InvariantError } from '../check/invariants.js';
import { releaseAll } from '../sync/lock.js';
import { EventKind, FOLD_DROPPED, LR_CPUID_SHIFT } from '../record/events.js';
import { physLineLevel, physResampledLow } from './phys-irq.js';
import { lpiGet, lpiPut, lpiPutLocked, lpiReleaseDeferred } from './lpi.js';
import { activeSpiDone, flushEmptyMainline, flushLrsMainline, foldEoiCount } from './lr-mainline.js';
import { LockSite } from '../sync/lock-sites.js';

/**
 * A walk of vCPU v's ap_list went on longer than there are records: the list is corrupt (a
 * cycle). Release the locks this thread holds and fail loudly rather than loop forever.
 */
export function cyclic(h: Host, v: number): never {
  releaseAll(h.t);
  throw new InvariantError(`vcpu${v}'s ap_list is corrupt: the walk does not end (a record linked twice?)`);
}

export function lrOff(h: Host, v: number, i: number): number {
  return vcpuOff(h.g, v) + VCPU.off.lr + i * LR.size;
}

export function clearLr(m: Int32Array, lb: number): void {
  for (let k = 0; k < LR.size; k++) m[lb + k] = 0;
}

/** vgic_v2/v3_populate_lr (spec §4.4). Caller holds the IRQ's irq_lock and the vCPU's ap_list_lock. */
export function populateLr(h: Host, v: number, b: number, i: number): void {
  const m = h.m;
  const lb = lrOff(h, v, i);
  const v2sgi = isV2Sgi(h, b);
  const active = m[b + IRQ.off.active] !== 0;
  const level = m[b + IRQ.off.config] === LEVEL;
  const hw = m[b + IRQ.off.hw] !== 0;
  let state = 0;
  let eoi = 0;
  let cpuid = 0;
  let allowPending = true;
  if (active) {
    state |= LR_ACTIVE;
    if (v2sgi) {
      cpuid = m[b + IRQ.off.activeSource]!;
      // Multi-source SGI still active: do not also mark it pending; ask for maintenance at
      // deactivation so the next source can be presented.
      if (m[b + IRQ.off.source] !== 0) {
        allowPending = false;
        eoi = 1;
      }
    }
  }
  if (hw) {
    if (active) allowPending = false; // pending lives in the physical distributor
  } else if (level) {
    eoi = 1; // software resampling needs to see the deactivation
    if (active) allowPending = false; // never pending+active for level
  }
  if (allowPending && irqIsPending(m, b)) {
    if (v2sgi) {
      const src = m[b + IRQ.off.source]!;
      if (src === 0) {
        // A pending v2 SGI without a source is a bug in the caller (the kernel warns and skips).
        allowPending = false;
      } else {
        const s = 31 - Math.clz32(src & -src);
        cpuid = s;
        const rest = src & ~(1 << s);
        m[b + IRQ.off.source] = rest;
        state |= LR_PENDING;
        m[b + IRQ.off.pendingLatch] = rest !== 0 ? 1 : 0;
        if (rest !== 0) eoi = 1;
      }
    } else {
      state |= LR_PENDING;
      if (!level) m[b + IRQ.off.pendingLatch] = 0; // the pending state now lives in the LR
      if (hw && level) m[b + IRQ.off.lineLevel] = 0; // mapped level: only rising edges are seen
    }
  }
  // No two LRs anywhere may hold the same SPI: an SPI is on one ap_list, and only its holder
  // populates it, after folding its own LRs (spec §3.6 invariants).
  if (m[b + IRQ.off.onLr] && m[b + IRQ.off.intid]! >= 32) throw new InvariantError(`SPI ${m[b + IRQ.off.intid]} populated into vcpu${v}'s LR while it is already in an LR`);
  m[b + IRQ.off.onLr] = 1;
  m[lb + LR.off.intid] = m[b + IRQ.off.intid]!;
  m[lb + LR.off.state] = state;
  m[lb + LR.off.priority] = m[b + IRQ.off.priority]!;
  m[lb + LR.off.group] = m[b + IRQ.off.group]!;
  m[lb + LR.off.hw] = hw ? 1 : 0;
  m[lb + LR.off.pintid] = hw ? m[b + IRQ.off.hwintid]! : 0;
  m[lb + LR.off.eoi] = eoi;
  m[lb + LR.off.cpuid] = cpuid;
  if (h.hist) h.hist.record(EventKind.LR, m[b + IRQ.off.intid]!, v, i, state | (cpuid << LR_CPUID_SHIFT));
}

// Sort scratch, per thread (the sort runs under one ap_list_lock at a time on this thread).
let sortIdx = new Int32Array(64);
let sortKey = new Float64Array(64);

/**
 * vgic_sort_ap_list's order, as a key to snapshot (caller holds b's irq_lock); stable. Classic
 * comparator (spec §4.3.1): active first, then enabled&pending, then ascending priority. Mainline
 * (vgic_irq_cmp): enabled&pending&!active first, then ascending priority, then HW before non-HW,
 * so a guest can always be presented the next pending interrupt however many are active.
 *
 * The kernel compares under both records' irq locks; we snapshot each record's key under its own
 * irq_lock and sort the snapshot: the same order, without ever holding two irq locks (which is
 * also why the self-comparison deadlock of §12.24 cannot arise here). The flush takes the snapshot
 * in the walk that sizes the list (compute_ap_list_depth / summarize_ap_list), which holds each
 * irq_lock anyway, instead of a third walk taking every irq_lock again: the ap_list_lock is held
 * from that walk to the sort, so the membership the snapshot saw is the one sorted, and a key that
 * changes in between (an injector holds only the irq_lock) is no staler than one the kernel's
 * list_sort read at its own comparison.
 */
export function snapshotSortKey(h: Host, b: number, n: number, r: number, mainline: boolean): void {
  const m = h.m;
  if (n === sortIdx.length) {
    const ni = new Int32Array(n * 2);
    ni.set(sortIdx);
    sortIdx = ni;
    const nk = new Float64Array(n * 2);
    nk.set(sortKey);
    sortKey = nk;
  }
  const active = m[b + IRQ.off.active] !== 0;
  const pend = m[b + IRQ.off.enabled] !== 0 && irqIsPending(m, b);
  const prio = m[b + IRQ.off.priority]!;
  // n in the low bits: stability (ties keep list order).
  if (mainline) sortKey[n] = (((pend && !active ? 0 : 1) * 256 + prio) * 2 + (m[b + IRQ.off.hw] ? 0 : 1)) * 65536 + n;
  else sortKey[n] = ((active ? 0 : pend ? 1 : 2) * 256 + prio) * 65536 + n;
  sortIdx[n] = r;
}

/**
 * vgic_sort_ap_list on the snapshot of vCPU v's whole list (n entries, in list order, taken by
 * snapshotSortKey under the ap_list_lock the caller still holds): relink the list in key order.
 */
export function sortApListSnapshot(h: Host, v: number, n: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  // Insertion sort on the snapshot keys: stable (ties keep list order via the low bits), no
  // allocation on this path, and ap_lists are short.
  for (let i = 1; i < n; i++) {
    const k = sortKey[i]!;
    const r = sortIdx[i]!;
    let j = i - 1;
    while (j >= 0 && sortKey[j]! > k) {
      sortKey[j + 1] = sortKey[j]!;
      sortIdx[j + 1] = sortIdx[j]!;
      j--;
    }
    sortKey[j + 1] = k;
    sortIdx[j + 1] = r;
  }
  let prev = -1;
  for (let k = 0; k < n; k++) {
    const r = sortIdx[k]!;
    const b = irqOff(h.g, r);
    m[b + IRQ.off.prev] = prev;
    if (prev >= 0) m[irqOff(h.g, prev) + IRQ.off.next] = r;
    else m[vb + VCPU.off.apHead] = r;
    prev = r;
  }
  if (prev >= 0) m[irqOff(h.g, prev) + IRQ.off.next] = -1;
  m[vb + VCPU.off.apTail] = prev;
}

/**
 * kvm_vgic_flush_hwstate + vgic_flush_lr_state. Returns the number of LRs populated.
 * An empty ap_list is skipped without the lock, as the classic kernel does: the race with a
 * concurrent injector is benign because the injector kicks us after queueing (spec §4.3, §12.4).
 */
export function flushLrs(h: Host, v: number): number {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (!h.classicLr) return m[vb + VCPU.off.apHead]! < 0 ? flushEmptyMainline(m, vb) : flushLrsMainline(h, v);
  if (m[vb + VCPU.off.apHead]! < 0) {
    m[vb + VCPU.off.usedLrs] = 0;
    m[vb + VCPU.off.uie] = 0;
    return 0;
  }
  const nrLr = m[vb + VCPU.off.nrLr]!;
  lockApList(h, v, LockSite.FlushLrs);
  let depth = 0;
  let multiSgi = false;
  let guard = 0;
  // compute_ap_list_depth. Shortcut: without GICv2 SGIs every record wants at most one LR, so a
  // list no longer than nrLr cannot overflow and its depth needs no per-IRQ locking. (List
  // membership is stable: we hold the ap_list_lock.)
  let length = 0;
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0 && length <= nrLr; r = m[irqOff(h.g, r) + IRQ.off.next]!) length++;
  const mayOverflow = length > nrLr || m[D.model] === VGIC_MODEL_V2;
  for (let r = mayOverflow ? m[vb + VCPU.off.apHead]! : -1; r >= 0; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.FlushLrs);
    const w = irqLrCount(h, b);
    snapshotSortKey(h, b, guard - 1, r, false);
    const next = m[b + IRQ.off.next]!;
    unlockIrq(h, r);
    depth += w;
    if (w > 1) multiSgi = true;
    r = next;
  }
  if (depth > nrLr || multiSgi) {
    sortApListSnapshot(h, v, guard);
    bumpCounter(h, v, CTR.lrOverflows);
  }
  let count = 0;
  let prio = 0xff;
  let uie = 0;
  guard = 0;
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.FlushLrs);
    // Multi-source SGIs must all be seen before anything of lower priority (sorted list).
    if (multiSgi && m[b + IRQ.off.priority]! > prio) {
      unlockIrq(h, r);
      break;
    }
    if (oracle(h, b) === v) {
      populateLr(h, v, b, count++);
      if (m[b + IRQ.off.source] !== 0) prio = m[b + IRQ.off.priority]!;
    }
    const next = m[b + IRQ.off.next]!;
    unlockIrq(h, r);
    if (count === nrLr) {
      if (next >= 0) uie = 1; // underflow maintenance: come back for the rest
      break;
    }
    r = next;
  }
  for (let i = count; i < nrLr; i++) clearLr(m, lrOff(h, v, i));
  m[vb + VCPU.off.usedLrs] = count;
  m[vb + VCPU.off.uie] = uie;
  unlockApList(h, v);
  return count;
}

/** vgic_v2/v3_fold_lr_state (spec §4.6). Runs on the vCPU's own thread after the guest exits. */
export function foldLrs(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const used = m[vb + VCPU.off.usedLrs]!;
  for (let i = 0; i < used; i++) {
    const lb = lrOff(h, v, i);
    const intid = m[lb + LR.off.intid]!;
    const state = m[lb + LR.off.state]!;
    // EOI maintenance on an SPI: notify the ack notifiers (irqfd resamplers) before the irq lock.
    if (state === 0 && m[lb + LR.off.eoi] && !m[lb + LR.off.hw] && intid >= VGIC_NR_PRIVATE_IRQS && intid < 1020 && h.onAckedSpi) {
      h.onAckedSpi(intid - VGIC_NR_PRIVATE_IRQS);
    }
    const r = irqRecord(h, v, intid);
    // An LPI may have been unmapped and freed meanwhile (DISCARD, EnableLPIs cleared): fold only
    // a live one, under a reference of our own (vgic_get_vcpu_irq is "get unless zero").
    const lpi = r >= h.g.lpiRecordBase;
    if (r < 0 || (lpi && !lpiGet(h, r))) {
      if (h.hist) h.hist.record(EventKind.FOLD, intid, v, i, FOLD_DROPPED);
      clearLr(m, lb);
      continue;
    }
    const b = irqOff(h.g, r);
    if (!h.classicLr) foldedRecs[i] = r;
    lockIrq(h, r, LockSite.FoldLrs);
    // Under the irq_lock, like the writes below: ordered against every other change of r.
    if (h.hist) h.hist.record(EventKind.FOLD, intid, v, i, state | (m[lb + LR.off.cpuid]! << LR_CPUID_SHIFT));
    // Mainline keeps the LR's active bit for everything but LPIs ("any LPI active state is removed
    // on exit", spec §4.8, §5.6): a virtual LPI's active state goes with the guest's priority drop,
    // and nothing else would ever deactivate it. Kept, it strands the LPI two ways. An EOI the CPU
    // interface ignores (the LR was repopulated at a priority INV changed since the acknowledgement)
    // leaves it pending+active, which kvm_vgic_vcpu_pending_irq never counts, so a vCPU in WFI
    // sleeps on it forever (found by its-cmds, pct seed 0x9a50761e). And an active LPI the flush
    // left outside the LRs (pending ones go first) cannot be reached by the guest's EOI at all (no
    // EOIcount for LPIs): it came back pending+active, never acknowledged ("stale LPI active",
    // found by the data-plane benchmark). The classic policy keeps the older kernels' behaviour.
    const act = state & LR_ACTIVE && (h.classicLr || !lpi) ? 1 : 0;
    const deactivated = m[b + IRQ.off.active] !== 0 && !act;
    m[b + IRQ.off.active] = act;
    const v2sgi = isV2Sgi(h, b);
    if (v2sgi && act) m[b + IRQ.off.activeSource] = m[lb + LR.off.cpuid]!;
    if (m[b + IRQ.off.config] === EDGE && state & LR_PENDING && !(h.bugs & BUG.foldDropsEdgePending)) {
      m[b + IRQ.off.pendingLatch] = 1;
      if (v2sgi) m[b + IRQ.off.source] = m[b + IRQ.off.source]! | (1 << m[lb + LR.off.cpuid]!);
    }
    // A level interrupt fully handled by the guest loses its soft-pending latch; its pending state
    // is otherwise recomputed from the line, never copied back from the LR.
    if (m[b + IRQ.off.config] === LEVEL && state === 0) m[b + IRQ.off.pendingLatch] = 0;
    // A mapped level interrupt still pending in the LR: its line_level was cleared when it was
    // populated (only rising edges are seen), so re-sample the physical line, or a pending
    // interrupt unforwarded (or migrated) now would be forgotten (vgic_irq_handle_resampling).
    if (m[lb + LR.off.hw] && m[b + IRQ.off.config] === LEVEL && state & LR_PENDING) {
      m[b + IRQ.off.lineLevel] = physLineLevel(h, m[lb + LR.off.pintid]!) ? 1 : 0;
      if (!m[b + IRQ.off.lineLevel]) physResampledLow(h, m[lb + LR.off.pintid]!);
    }
    m[b + IRQ.off.onLr] = 0;
    unlockIrq(h, r);
    if (lpi) lpiPut(h, r);
    // An SPI in flight ended with its EOI maintenance: one fewer reason to trap DIR everywhere.
    if (!h.classicLr && deactivated && state === 0 && m[lb + LR.off.eoi] && !m[lb + LR.off.hw] && intid >= VGIC_NR_PRIVATE_IRQS && intid < 1020) activeSpiDone(h);
    clearLr(m, lb);
  }
  m[vb + VCPU.off.usedLrs] = 0;
  m[vb + VCPU.off.uie] = 0;
  // EOIcount: EOIs (EOImode=0) or DIRs of interrupts that were not in an LR.
  if (!h.classicLr && m[vb + VCPU.off.eoiCount] !== 0) foldEoiCount(h, v, foldedRecs, used);
}

/** Records of the LRs just folded, per thread (a vCPU folds only on its own thread). */
const foldedRecs = new Int32Array(MAX_LRS);

/**
 * vgic_prune_ap_list (spec §4.7). Only the owning vCPU removes or migrates entries of its list.
 * Migration must hold both ap_list locks, lower vCPU id first, so it drops everything, re-takes in
 * order, re-checks the oracle (the IRQ may have been retargeted meanwhile, race §12.2), and then
 * restarts from the list head because the list may have changed while unlocked.
 */
export function pruneApList(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  retry: for (;;) {
    lockApList(h, v, LockSite.PruneApList);
    if (h.cfg.lockdep) {
      // Checking mode: the list we own must be well formed before we walk and edit it.
      const p = apListProblem(m, h.g, v);
      if (p) {
        unlockApList(h, v);
        throw new InvariantError(p);
      }
    }
    for (let r = m[vb + VCPU.off.apHead]!; r >= 0; ) {
      const b = irqOff(h.g, r);
      const next = m[b + IRQ.off.next]!;
      lockIrq(h, r, LockSite.PruneApList);
      const t = oracle(h, b);
      if (t < 0) {
        apListUnlink(h, v, r);
        m[b + IRQ.off.vcpu] = -1;
        unlockIrq(h, r);
        // An LPI's ap_list reference goes with it; freeing waits until the lock is dropped.
        if (r >= h.g.lpiRecordBase) lpiPutLocked(h, r);
        r = next;
        continue;
      }
      if (t === v) {
        unlockIrq(h, r);
        r = next;
        continue;
      }
      // Must migrate to t.
      unlockIrq(h, r);
      unlockApList(h, v);
      lpiReleaseDeferred(h);
      // The seeded bug takes its own lock, then the target's, whatever their ids: two vCPUs
      // migrating towards each other deadlock ABBA (and lockdep reports the order at once).
      const unordered = (h.bugs & BUG.pruneSingleLock) !== 0;
      const lo = unordered ? v : Math.min(v, t);
      const hi = unordered ? t : Math.max(v, t);
      lockApList(h, lo, LockSite.PruneApList);
      lockApList(h, hi, LockSite.PruneApList);
      lockIrq(h, r, LockSite.PruneApList);
      const moved = m[b + IRQ.off.vcpu] === v && oracle(h, b) === t;
      if (moved) {
        apListUnlink(h, v, r);
        m[b + IRQ.off.vcpu] = t;
        apListAppend(h, t, r);
        if (h.hist) traceMigrate(h, r, v, t);
      }
      unlockIrq(h, r);
      unlockApList(h, hi);
      unlockApList(h, lo);
      if (moved) {
        bumpCounter(h, v, CTR.migrations);
        makeRequest(h, t, KVM_REQ_IRQ_PENDING);
        kickVcpu(h, t);
      }
      continue retry;
    }
    unlockApList(h, v);
    lpiReleaseDeferred(h);
    return;
  }
}

/** kvm_vgic_sync_hwstate: fold then prune; skipped when the ap_list is empty (no LRs in use then). */
export function syncHwstate(h: Host, v: number): void {
  const vb = vcpuOff(h.g, v);
  if (h.m[vb + VCPU.off.apHead]! < 0 && h.m[vb + VCPU.off.usedLrs] === 0) return;
  foldLrs(h, v);
  pruneApList(h, v);
}

/**
 * kvm_vgic_vcpu_pending_irq (spec §4.9): under the ap_list_lock, is some IRQ on THIS vCPU's list
 * pending, enabled, not active and of priority < PMR? False while the distributor is disabled.
 */
export function vcpuHasPendingIrq(h: Host, v: number): boolean {
  const m = h.m;
  if (m[D.enabled] === 0) return false;
  const vb = vcpuOff(h.g, v);
  const pmr = m[vb + VCPU.off.pmr]!;
  let found = false;
  let guard = 0;
  lockApList(h, v, LockSite.VcpuPendingIrq);
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0 && !found; ) {
    if (++guard > h.g.nrRecords) cyclic(h, v);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.VcpuPendingIrq);
    found = irqIsPending(m, b) && m[b + IRQ.off.enabled] !== 0 && m[b + IRQ.off.active] === 0 && m[b + IRQ.off.priority]! < pmr;
    const next = m[b + IRQ.off.next]!;
    unlockIrq(h, r);
    r = next;
  }
  unlockApList(h, v);
  return found;
}
