/**
 * kvm-unit-tests arm/micro-bench `lpi`, as the issue defines it: vCPU 0 sends an ITS INT command
 * for an LPI whose collection targets vCPU 1, and waits until vCPU 1's handler has seen it;
 * `iters` times, average ns per round. The ITS is configured on the first run only (the VM is
 * reused across repetitions): device 0, event 0 -> LPI 8192 in collection 1 -> vCPU 1.
 *
 * RAM words: ACK (vCPU 1's LPI acks), READY, DONE (reset before each run), CONFIGURED (kept).
 */
import type { GuestCpu } from '../../src/guest/guest-cpu.js';
import { enableLpis, GuestIts, setLpiConfig, type ItsLayout, type LpiLayout } from '../../src/guest/its-driver.js';

export const LPI_BENCH = { ACK: 8, READY: 9, DONE: 10, CONFIGURED: 11 } as const;
const W = LPI_BENCH;
const LPI = 8192;

export default function lpi(cpu: GuestCpu, args: { iters: number; its: ItsLayout; lpi: LpiLayout; itt: number }): { avgNs: number; iters: number } | null {
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    if (iar >= LPI) c.add(W.ACK, 1);
    c.eoi(iar);
  });
  if (cpu.id === 0 && !cpu.load(W.CONFIGURED)) {
    setLpiConfig(cpu, args.lpi, LPI, 0xa0, true);
    cpu.driver.enableDistributor();
  }
  enableLpis(cpu, args.lpi);
  if (cpu.id !== 0) {
    cpu.add(W.READY, 1);
    cpu.enableIrqs();
    // Spin like ipi-pingpong's receiver, so that lpi and ipi compare the delivery, not a wake-up.
    while (!cpu.load(W.DONE)) cpu.relax();
    return null;
  }
  while (cpu.load(W.READY) < cpu.nrVcpus - 1) cpu.relax();
  const its = new GuestIts(cpu, args.its);
  if (!cpu.load(W.CONFIGURED)) {
    its.setupTables();
    its.enable();
    its.mapc(1, 1);
    its.mapd(0, args.itt, 1);
    its.mapti(0, 0, LPI, 1);
    its.waitSync();
    cpu.store(W.CONFIGURED, 1);
  } else its.setupTables(); // CBASER is kept while enabled; this only re-reads CWRITER
  const round = (): void => {
    const before = cpu.load(W.ACK);
    its.int(0, 0);
    while (cpu.load(W.ACK) === before) cpu.relax();
  };
  round(); // warm the path (translation, first wake-up)
  const iters = args.iters;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) round();
  const avgNs = ((performance.now() - t0) * 1e6) / iters;
  cpu.store(W.DONE, 1);
  return { avgNs, iters };
}
