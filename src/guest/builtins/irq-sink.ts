/**
 * IRQ-SINK: every vCPU takes interrupts as fast as it can, acknowledging and EOIing each one, and
 * counts them per INTID in RAM; it waits either spinning with interrupts unmasked or in WFI. With `latency`, the handler also records, for each
 * interrupt, the time since the VMM stamped it (absolute time: performance.timeOrigin + now(),
 * comparable across threads) into a ring of f64 samples.
 *
 * vCPU 0 configures the distributor (SPIs routed round-robin to the vCPUs) and, with `its`, the
 * ITS: device 0, events 0..n-1 -> LPIs 8192.. in collections alternating between the vCPUs.
 *
 * RAM (Int32 words): READY, DONE, per-INTID ack counters at SPI_ACKS + intid and
 * LPI_ACKS + (intid - 8192); f64 stamp and latency ring (see SINK). The guest returns once DONE
 * is set (a WFI sleeper looks at it when an interrupt wakes it). Used by the data-plane
 * benchmarks (bench/dataplane.ts) and by tests that need a guest that only counts.
 */
import type { GuestCpu } from '../guest-cpu.js';
import { enableLpis, GuestIts, setLpiConfig, type ItsLayout, type LpiLayout } from '../its-driver.js';

export const SINK = {
  READY: 0,
  DONE: 1,
  /** Latency samples written (the ring index is this modulo LAT_CAP). */
  LAT_N: 2,
  SPI_ACKS: 1024,
  LPI_ACKS: 2048,
  /** Byte offsets of the f64 stamp (set by the VMM before each injection) and the latency ring. */
  STAMP_BYTE: 16384,
  LAT_BYTE: 16384 + 64,
  LAT_CAP: 1 << 14,
} as const;
export const LPI_BASE = 8192;

export interface SinkArgs {
  wait: 'spin' | 'wfi';
  spis: number[];
  latency: boolean;
  its?: { its: ItsLayout; lpi: LpiLayout; itt: number; events: number };
}

export default function irqSink(cpu: GuestCpu, a: SinkArgs): { acks: number } {
  const stamp = new Float64Array(cpu.ram.buffer, SINK.STAMP_BYTE, 1);
  const lat = new Float64Array(cpu.ram.buffer, SINK.LAT_BYTE, SINK.LAT_CAP);
  const origin = performance.timeOrigin;
  let acks = 0;
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    if (a.latency) {
      const k = Atomics.add(c.ram, SINK.LAT_N, 1);
      lat[k & (SINK.LAT_CAP - 1)] = origin + performance.now() - stamp[0]!;
    }
    acks++;
    Atomics.add(c.ram, iar >= LPI_BASE ? SINK.LPI_ACKS + iar - LPI_BASE : SINK.SPI_ACKS + iar, 1);
    c.eoi(iar);
  });
  if (cpu.id === 0) {
    a.spis.forEach((intid, i) => {
      cpu.driver.setPriority(intid, 0xa0);
      cpu.driver.route(intid, i % cpu.nrVcpus);
      cpu.driver.enable(intid);
    });
    if (a.its) for (let e = 0; e < a.its.events; e++) setLpiConfig(cpu, a.its.lpi, LPI_BASE + e, 0xa0, true);
    cpu.driver.enableDistributor();
  }
  if (a.its) enableLpis(cpu, a.its.lpi);
  if (cpu.id === 0 && a.its) {
    while (cpu.load(SINK.READY) < cpu.nrVcpus - 1) cpu.relax();
    const its = new GuestIts(cpu, a.its.its);
    its.setupTables();
    its.enable();
    for (let v = 0; v < cpu.nrVcpus; v++) its.mapc(v, v);
    its.mapd(0, a.its.itt, Math.max(1, Math.ceil(Math.log2(a.its.events))));
    for (let e = 0; e < a.its.events; e++) its.mapti(0, e, LPI_BASE + e, e % cpu.nrVcpus);
    its.waitSync();
  }
  cpu.add(SINK.READY, 1);
  if (a.wait === 'wfi') cpu.wfiUntil(() => cpu.load(SINK.DONE) !== 0);
  else {
    cpu.enableIrqs();
    while (!cpu.load(SINK.DONE)) cpu.relax();
  }
  return { acks };
}
