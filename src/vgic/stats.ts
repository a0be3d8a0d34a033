/** Per-vCPU statistics counters (VCPU_COUNTERS), written by the vCPU's own thread. */
import { VCPU, VCPU_COUNTERS, type VcpuCounter } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';

const INDEX = Object.fromEntries(VCPU_COUNTERS.map((c, i) => [c, i])) as { [K in VcpuCounter]: number };

export function counterIndex(h: Host, v: number, c: VcpuCounter): number {
  return vcpuOff(h.g, v) + VCPU.off.counters + INDEX[c];
}

/** Plain increment when on the owning thread; Atomics.add otherwise. */
export function bumpCounter(h: Host, v: number, c: VcpuCounter): void {
  const i = counterIndex(h, v, c);
  if (v === h.selfVcpu) h.m[i]!++;
  else Atomics.add(h.m, i, 1);
}
