/**
 * IPI ping-pong, measured like kvm-unit-tests' arm/micro-bench `ipi`: vCPU 0 sends an SGI to
 * vCPU 1, which spins with interrupts unmasked, and waits until vCPU 1's handler has run; the
 * average over `rounds` is returned by vCPU 0 in ns. Other vCPUs return at once.
 *
 * RAM words: [READY] vCPU 1 is spinning; [COUNT] handler runs; [DONE] stop spinning.
 */
import type { GuestCpu } from '../guest-cpu.js';

export const PINGPONG = { READY: 8, COUNT: 9, DONE: 10 } as const;

export interface PingPongArgs {
  rounds?: number;
  sgi?: number;
}

export default function ipiPingPong(cpu: GuestCpu, args: PingPongArgs = {}): { avgNs: number; rounds: number } | null {
  const rounds = args.rounds ?? 65536;
  const sgi = args.sgi ?? 0;
  cpu.initCpuInterface();
  if (cpu.id === 1) {
    cpu.onIrq((c) => {
      const iar = c.iar();
      if (iar === 1023) return;
      c.add(PINGPONG.COUNT, 1);
      c.eoi(iar);
    });
    cpu.enableIrqs();
    cpu.store(PINGPONG.READY, 1);
    while (cpu.load(PINGPONG.DONE) === 0) cpu.relax();
    return null;
  }
  if (cpu.id !== 0) return null;
  cpu.driver.enableDistributor();
  while (cpu.load(PINGPONG.READY) === 0) cpu.relax();
  const t0 = performance.now();
  for (let i = 1; i <= rounds; i++) {
    cpu.sendSgi(sgi, [1]);
    while (cpu.load(PINGPONG.COUNT) < i) cpu.relax();
  }
  const avgNs = ((performance.now() - t0) * 1e6) / rounds;
  cpu.store(PINGPONG.DONE, 1);
  return { avgNs, rounds };
}
