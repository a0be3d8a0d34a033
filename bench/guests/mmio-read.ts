/**
 * kvm-unit-tests arm/micro-bench `mmio_read_vgic` / `mmio_read_user`: vCPU 0 reads one MMIO
 * address `iters` times and returns the average ns per read, timed inside the guest. Give either
 * `gicdOffset` (a distributor register: trapped, handled by the host vgic) or `gpa` (outside the
 * GIC frames: KVM_EXIT_MMIO to the VMM's handler). Other vCPUs return at once.
 */
import type { GuestCpu } from '../../src/guest/guest-cpu.js';

export interface MmioReadArgs {
  iters: number;
  gicdOffset?: number;
  gpa?: number;
}

export default function mmioRead(cpu: GuestCpu, args: MmioReadArgs): { avgNs: number; iters: number; sink: number } | null {
  if (cpu.id !== 0) return null;
  const gpa = args.gicdOffset !== undefined ? cpu.gicdBase + args.gicdOffset : args.gpa!;
  const iters = args.iters;
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) sink ^= cpu.mmioRead(gpa, 4);
  const avgNs = ((performance.now() - t0) * 1e6) / iters;
  return { avgNs, iters, sink };
}
