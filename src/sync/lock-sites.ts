/**
 * Lock call sites: the small integer a lock wrapper passes with each acquisition so that lock_stat
 * can name the code path that waited and the one that held (the kernel's contention_point[] and
 * contending_point[] per class, which record return addresses; we have no cheap return address,
 * so each annotated caller names itself from this table). The id travels in the lock's owner word
 * (sync/lock.ts), so a waiter learns the holder's site without touching another cache line.
 *
 * Ids are dense and < 2^15 (the owner word's site field). 0 is "not annotated": a caller that
 * passes no site.
 */
export const enum LockSite {
  Other = 0,
  /** vgic_queue_irq_unlock: take ap_list_lock after dropping irq_lock, then retake irq_lock. */
  QueueIrqUnlock,
  /** kvm_vgic_inject_irq / vgic_update_irq_pending: the injection's irq_lock. */
  InjectIrq,
  /** vgic_v3_dispatch_sgi / the GICv2 SGI register: queue an SGI on its target. */
  QueueSgi,
  /** vgic_flush_lr_state: populate the LRs from the ap_list (classic LR policy). */
  FlushLrs,
  /** vgic_flush_lr_state under the 2025 LR-overflow rework (mainline LR policy). */
  FlushLrsMainline,
  /** vgic_fold_lr_state: read the LRs back into the records. */
  FoldLrs,
  /** The mainline fold's EOIcount walk over the ap_list. */
  FoldEoiCount,
  /** vgic_prune_ap_list, including the two-ap_list migration. */
  PruneApList,
  /** vgic_sort_ap_list (no longer takes locks of its own: its keys are snapshotted in the flush walk, lr.ts). Kept so that site numbers keep their meaning. */
  SortApList,
  /** kvm_vgic_vcpu_pending_irq: the WFI check. */
  VcpuPendingIrq,
  /** Trapped distributor/redistributor per-IRQ registers (enable, pending, active, priority, …). */
  MmioPerIrq,
  /** ICC_DIR_EL1 / GICC_DIR trapped deactivation. */
  Deactivate,
  /** vgic_its_trigger_msi -> the LPI's pending bit. */
  LpiInject,
  /** LPI configuration/pending-table sync and LPI insertion. */
  LpiConfig,
  /** ITS commands that move or clear an LPI (MOVI, MOVALL, CLEAR, INV). */
  ItsCommand,
  /** The arch timer: mapped-interrupt active state, timer enable. */
  Timer,
  /** VFIO forwarding / level-info userspace accesses. */
  Userspace,
}

/** Names for reports, indexed by LockSite (kernel function names where there is one). */
export const LOCK_SITE_NAMES: readonly string[] = [
  'other',
  'queueIrqUnlock',
  'injectIrq',
  'queueSgi',
  'flushLrs',
  'flushLrsMainline',
  'foldLrs',
  'foldEoiCount',
  'pruneApList',
  'sortApList',
  'vcpuPendingIrq',
  'mmioPerIrq',
  'deactivate',
  'lpiInject',
  'lpiConfig',
  'itsCommand',
  'timer',
  'userspace',
];

export function lockSiteName(s: number): string {
  return LOCK_SITE_NAMES[s] ?? `site${s}`;
}
