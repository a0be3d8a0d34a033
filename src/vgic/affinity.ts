/**
 * kvm_mpidr_to_vcpu: the vCPU whose affinity (Aff2.Aff1.Aff0, as stored in VCPU.mpidr) equals
 * `aff`, or -1. Used by GICD_IROUTER writes and GICv3 SGI generation (spec §5.5, §6).
 *
 * Affinity is built from the vcpu_id (Aff0 = id[3:0], Aff1 = id[11:4], Aff2 = id[19:12], KVM's
 * reset MPIDR), so the id is computed and tried as the vcpu_idx, verified against the stored
 * affinity; only a mismatch (vCPUs created out of id order) falls back to a scan, like the
 * kernel's lookup table with its slow path. Returns a vcpu_idx.
 */
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';

export function mpidrToVcpu(h: Host, aff: number): number {
  const m = h.m;
  const online = m[D.onlineVcpus]!;
  const aff0 = aff & 0xff;
  if (aff0 < 16) {
    const guess = (((aff >>> 16) & 0xff) << 12) | (((aff >>> 8) & 0xff) << 4) | aff0;
    if (guess < online && m[vcpuOff(h.g, guess) + VCPU.off.mpidr] === aff) return guess;
  }
  for (let v = 0; v < online; v++) if (m[vcpuOff(h.g, v) + VCPU.off.mpidr] === aff) return v;
  return -1;
}
