/**
 * THE lock order. One table, read by the locks, the lock-order checker and the reports.
 *
 * Ranks run from outermost (taken first) to innermost, as in the header comment of the kernel's
 * arch/arm64/kvm/vgic/vgic.c (spec §2.1):
 *
 *   kvm->lock > vcpu->mutex > config_lock > its->cmd_lock > its->its_lock > lpi_xa lock
 *     > ap_list_lock > irq_lock
 *
 * A thread may only acquire a lock whose rank is strictly greater than every lock it holds, with
 * two exceptions the kernel also makes:
 *  - two ap_list_locks, lower vCPU id first (vgic_prune_ap_list's migration);
 *  - `dist_lock` (the 2014 vgic's single distributor lock, used in `locking: 'global'`) replaces
 *    both ap_list_lock and irq_lock; a nested acquisition of it by its holder is elided, exactly as
 *    dist->lock covered whole paths in 2014, so the checker never sees it nested.
 */
export const enum LockClass {
  KvmLock = 0,
  VcpuMutex = 1,
  ConfigLock = 2,
  ItsCmdLock = 3,
  ItsLock = 4,
  LpiLock = 5,
  ApListLock = 6,
  IrqLock = 7,
  DistLock = 8,
}

export type LockKind = 'mutex' | 'spin';

export interface LockClassInfo {
  readonly id: LockClass;
  readonly name: string;
  readonly rank: number;
  readonly kind: LockKind;
  /** What the lock protects, for reports. */
  readonly protects: string;
}

export const LOCK_CLASSES: readonly LockClassInfo[] = [
  { id: LockClass.KvmLock, name: 'kvm->lock', rank: 1, kind: 'mutex', protects: 'VM-wide configuration, device creation' },
  { id: LockClass.VcpuMutex, name: 'vcpu->mutex', rank: 2, kind: 'mutex', protects: 'a vCPU; held for the whole KVM_RUN' },
  { id: LockClass.ConfigLock, name: 'config_lock', rank: 3, kind: 'mutex', protects: 'vgic configuration and init state' },
  { id: LockClass.ItsCmdLock, name: 'its->cmd_lock', rank: 4, kind: 'mutex', protects: 'ITS command queue' },
  { id: LockClass.ItsLock, name: 'its->its_lock', rank: 5, kind: 'mutex', protects: 'ITS device/collection tables' },
  { id: LockClass.LpiLock, name: 'lpi_xa lock', rank: 6, kind: 'spin', protects: 'LPI insertion/erasure' },
  { id: LockClass.ApListLock, name: 'ap_list_lock', rank: 7, kind: 'spin', protects: "one vCPU's ap_list and its LR population" },
  { id: LockClass.IrqLock, name: 'irq_lock', rank: 8, kind: 'spin', protects: 'every field of one interrupt record' },
  // Rank of the innermost lock it replaces, so that config_lock etc. still order above it.
  { id: LockClass.DistLock, name: 'dist->lock', rank: 7, kind: 'spin', protects: 'all vgic state (2014 design)' },
];

export const NR_LOCK_CLASSES = LOCK_CLASSES.length;

export function lockClassName(c: LockClass): string {
  return LOCK_CLASSES[c]!.name;
}
