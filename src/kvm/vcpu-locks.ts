/**
 * "Lock all vCPUs" (spec §2.4): under kvm->lock, try-lock every vcpu->mutex in index order; if one
 * is busy (that vCPU is inside KVM_RUN) release the ones taken and fail with EBUSY. Never waits for
 * a running vCPU: userspace attribute access must not stall behind a guest.
 */
import { kvmErr } from '../uapi/errno.js';
import type { Host } from '../vgic/host.js';
import { dw } from '../vgic/host.js';
import { LockSite } from '../sync/lock-sites.js';
import { assertKvmLocked, lockConfig, lockKvm, tryLockVcpuMutex, unlockConfig, unlockKvm, unlockVcpuMutex } from '../vgic/locks.js';

/** kvm_trylock_all_vcpus: the caller holds kvm->lock, which keeps online_vcpus from growing meanwhile. */
export function lockAllVcpus(h: Host): void {
  assertKvmLocked(h, 'lock_all_vcpus');
  const n = h.m[dw(h, 'onlineVcpus')]!;
  for (let v = 0; v < n; v++) {
    if (!tryLockVcpuMutex(h, v, LockSite.Userspace)) {
      for (let u = v - 1; u >= 0; u--) unlockVcpuMutex(h, u);
      kvmErr('EBUSY', `vCPU ${v} is running`);
    }
  }
}

export function unlockAllVcpus(h: Host): void {
  const n = h.m[dw(h, 'onlineVcpus')]!;
  for (let v = n - 1; v >= 0; v--) unlockVcpuMutex(h, v);
}

/** kvm->lock, all vCPU mutexes (EBUSY if one runs), config_lock; then body; then unwind. */
export function withAllVcpusLocked<T>(h: Host, body: () => T): T {
  lockKvm(h);
  try {
    lockAllVcpus(h);
    try {
      lockConfig(h);
      try {
        return body();
      } finally {
        unlockConfig(h);
      }
    } finally {
      unlockAllVcpus(h);
    }
  } finally {
    unlockKvm(h);
  }
}
