/**
 * How a field of the shared VM state is protected: the declared discipline the lockset checker
 * (check/lockset) holds every access to, in checking mode (VmOptions.checkAccess).
 *
 * Lock names resolve to an instance from the record the field lives in: `irq_lock` is the
 * record's own lock; `ap_list_lock` and `vcpu->mutex` are the vCPU record's own (in an IRQ record,
 * any ap_list_lock: the list that holds the record changes under both locks while it migrates; in a
 * VM-wide record, any vCPU's mutex: a vCPU ioctl of whichever vCPU);
 * `its_lock` / `cmd_lock` are the ITS instance's; `kvm->lock`, `config_lock` and `lpi_lock` are
 * VM-wide; `all vcpu->mutex` is every online vCPU's mutex at once (lock_all_vcpus). In
 * `locking: 'global'` dist->lock stands for irq_lock and ap_list_lock.
 */
export type LockName = 'irq_lock' | 'ap_list_lock' | 'vcpu->mutex' | 'all vcpu->mutex' | 'kvm->lock' | 'config_lock' | 'its_lock' | 'cmd_lock' | 'lpi_lock';

/**
 * `racyRead` (where allowed): plain reads without the protection are intended, as the kernel's
 * READ_ONCE / data_race peeks are; the string says why the race is benign.
 */
export type Protection =
  /**
   * Writes hold every lock listed, or every lock of `orLocks` (a second discipline for the same
   * field: the ITS command queue registers are written under cmd_lock by the guest's MMIO and
   * under kvm->lock plus every vCPU's mutex by userspace save/restore); reads hold at least one
   * lock of either list.
   */
  | { readonly by: 'lock'; readonly locks: readonly LockName[]; readonly orLocks?: readonly LockName[]; readonly racyRead?: string }
  /** Only ever accessed with Atomics (a plain write is always a violation). */
  | { readonly by: 'atomic'; readonly racyRead?: string }
  /**
   * Owner-thread-only. 'vcpu': the vCPU's own thread, or any thread holding that vCPU's mutex
   * (userspace with the vCPU stopped: KVM_SET_ONE_REG, lock_all_vcpus). 'main': the VMM thread.
   */
  | { readonly by: 'owner'; readonly owner: 'vcpu' | 'main'; readonly racyRead?: string }
  /** Written under `writer` with a sequence count odd meanwhile; read lock-free (retrying). */
  | { readonly by: 'seqlock'; readonly writer: LockName }
  /**
   * Immutable after initialisation: written while configuring, under any one of `writer`
   * (none: only before a second thread ever touched it), then read without locks.
   */
  | { readonly by: 'init'; readonly writer: readonly LockName[] }
  /** Statistics: racy counters, never used for a decision. */
  | { readonly by: 'stats' };

export const locked = (...locks: LockName[]): Protection => ({ by: 'lock', locks });
export const lockedRacyRead = (racyRead: string, ...locks: LockName[]): Protection => ({ by: 'lock', locks, racyRead });
/** Written holding all of `locks` or all of `orLocks`; read racily (see `racyRead`). */
export const lockedEitherRacyRead = (racyRead: string, locks: readonly LockName[], orLocks: readonly LockName[]): Protection => ({ by: 'lock', locks, orLocks, racyRead });
export const ATOMIC: Protection = { by: 'atomic' };
export const atomicRacyRead = (racyRead: string): Protection => ({ by: 'atomic', racyRead });
export const VCPU_OWNER: Protection = { by: 'owner', owner: 'vcpu' };
export const vcpuOwnerRacyRead = (racyRead: string): Protection => ({ by: 'owner', owner: 'vcpu', racyRead });
export const MAIN_OWNER: Protection = { by: 'owner', owner: 'main' };
export const initUnder = (...writer: LockName[]): Protection => ({ by: 'init', writer });
export const STATS: Protection = { by: 'stats' };

/** Short text for tables: `irq_lock`, `irq_lock+ap_list_lock`, `atomic`, `owner(vcpu)` … */
export function describeProtection(p: Protection): string {
  const racy = 'racyRead' in p && p.racyRead ? ' racy-read' : '';
  switch (p.by) {
    case 'lock': return p.locks.join('+') + (p.orLocks ? ` | ${p.orLocks.join('+')}` : '') + racy;
    case 'atomic': return 'atomic' + racy;
    case 'owner': return `owner(${p.owner})${racy}`;
    case 'seqlock': return `seqlock(${p.writer})`;
    case 'init': return `init(${p.writer.join('|') || 'before sharing'})`;
    case 'stats': return 'stats';
  }
}
