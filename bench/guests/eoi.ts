/**
 * kvm-unit-tests arm/micro-bench `eoi`: vCPU 0 writes the EOI register with the spurious INTID
 * 1023 `iters` times (the CPU interface ignores it; no trap) and returns the average ns per write.
 * Other vCPUs return at once.
 */
import type { GuestCpu } from '../../src/guest/guest-cpu.js';

export default function eoi(cpu: GuestCpu, args: { iters: number }): { avgNs: number; iters: number } | null {
  if (cpu.id !== 0) return null;
  cpu.initCpuInterface();
  const iters = args.iters;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) cpu.eoi(1023);
  const avgNs = ((performance.now() - t0) * 1e6) / iters;
  return { avgNs, iters };
}
