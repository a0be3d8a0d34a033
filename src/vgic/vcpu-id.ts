/**
 * The kernel's two vCPU numbers (include/linux/kvm_host.h): `vcpu_id`, chosen by userspace at
 * KVM_CREATE_VCPU in any order (MPIDR affinity, GICR_TYPER.Processor_Number, KVM_IRQ_LINE's vcpu
 * field, GICv2 register attributes' cpuid, GICv2 SGI source, ITS RDbase), and `vcpu_idx`, the
 * creation order (kvm_get_vcpu: per-vCPU memory here, redistributor placement, ITARGETSR bits,
 * kvm_for_each_vcpu). Every per-vCPU record in shared memory is indexed by vcpu_idx.
 */
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';

/** vcpu_id of the vCPU at index `idx`. */
export function vcpuIdOf(h: Host, idx: number): number {
  return h.m[vcpuOff(h.g, idx) + VCPU.off.vcpuId]!;
}

/**
 * kvm_get_vcpu_by_id: the vcpu_idx of the online vCPU whose vcpu_id is `id`, or -1. VMMs almost
 * always create vCPUs in id order, so idx = id is tried first (verified), then the scan.
 */
export function vcpuIdxById(h: Host, id: number): number {
  const m = h.m;
  const online = Atomics.load(m, D.onlineVcpus);
  if (!Number.isInteger(id) || id < 0) return -1;
  if (id < online && m[vcpuOff(h.g, id) + VCPU.off.vcpuId] === id) return id;
  for (let v = 0; v < online; v++) if (m[vcpuOff(h.g, v) + VCPU.off.vcpuId] === id) return v;
  return -1;
}

/** KVM's reset MPIDR affinity for `vcpuId` (sys_regs.c reset_mpidr): Aff0 = id[3:0], Aff1 = id[11:4], Aff2 = id[19:12]. */
export function mpidrAffOf(vcpuId: number): number {
  return (vcpuId & 0xf) | (((vcpuId >> 4) & 0xff) << 8) | (((vcpuId >> 12) & 0xff) << 16);
}
