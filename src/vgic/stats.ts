/** Per-vCPU statistics counters (VCPU_COUNTERS), written by the vCPU's own thread. */
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';

/** Bump counter `c` (a CTR index) of vCPU v: plain on the owning thread, Atomics.add otherwise. */
export function bumpCounter(h: Host, v: number, c: number): void {
  const i = vcpuOff(h.g, v) + VCPU.off.counters + c;
  if (v === h.selfVcpu) h.m[i]!++;
  else Atomics.add(h.m, i, 1);
}
