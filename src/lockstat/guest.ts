/**
 * The lockstat guest: every vCPU acknowledges and EOIs as fast as it can (it spins with
 * interrupts enabled, so no WFI wake-up sits on the path) and records each interrupt's
 * inject->ack latency from the timestamp its injector wrote into guest RAM just before injecting
 * (lockstat/ram.ts; the clock is the main thread's, each thread adds its own timeOrigin offset).
 * vCPU 0 configures: SPIs (edge or level, routed), LPIs through the ITS (its-lpi's tables), and
 * during the run it "churns": every `churn` acknowledgements it retargets one SPI to the next
 * vCPU and disables and re-enables it (trapped distributor writes taking the same irq_locks as
 * the injections). With `sgiRing`, each vCPU keeps one SGI in flight to its neighbour.
 */
import type { GuestCpu } from '../guest/guest-cpu.js';
import { enableLpis, GuestIts, LPI_BASE, setLpiConfig, type ItsLayout, type LpiLayout } from '../guest/its-driver.js';
import { LAT_BUCKETS, LAT_MAX, LS, latencyBucket, tsLpi, tsSgi, tsSpi } from './ram.js';

export interface LockstatGuestArgs {
  /** performance.timeOrigin of the main thread: the shared clock. */
  clockBase: number;
  spis: { intid: number; target: number; level: boolean }[];
  /** SGI number each vCPU keeps in flight to the next one; -1 for none. */
  sgiRing: number;
  /** vCPU 0 retargets and flips one SPI every `churn` acknowledgements; 0 never. */
  churn: number;
  its: null | {
    its: ItsLayout;
    lpi: LpiLayout;
    collections: { icid: number; vcpu: number }[];
    devices: { devId: number; itt: number; eventBits: number; events: { eventId: number; intid: number; icid: number }[] }[];
  };
}

export default function lockstatGuest(cpu: GuestCpu, a: LockstatGuestArgs): { acks: number } {
  const n = cpu.nrVcpus;
  const me = cpu.id;
  const ram = cpu.ram;
  const ts = new Float64Array(ram.buffer, 0, ram.length >> 1);
  const offset = performance.timeOrigin - a.clockBase;
  const hist = LS.LAT_HIST + me * LAT_BUCKETS;
  let acks = 0;
  let churnAt = a.churn;
  let churnNext = 0;
  const targets = a.spis.map((s) => s.target % n);
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const now = performance.now() + offset;
    let tsIdx: number;
    let ackIdx: number;
    if (iar >= LPI_BASE) {
      tsIdx = tsLpi(iar);
      ackIdx = LS.LPI_ACKS + iar - LPI_BASE;
    } else {
      const id = iar & 0x3ff;
      if (id >= 32) {
        tsIdx = tsSpi(id);
        ackIdx = LS.SPI_ACKS + id;
      } else {
        tsIdx = tsSgi(me, id);
        ackIdx = LS.SGI_ACKS + 16 * me + id;
      }
    }
    const t0 = ts[tsIdx]!;
    if (t0 > 0) {
      const ns = (now - t0) * 1e6;
      ram[hist + latencyBucket(ns)]!++;
      if (ns > ts[LAT_MAX + me]!) ts[LAT_MAX + me] = ns;
    }
    c.eoi(iar);
    Atomics.add(ram, ackIdx, 1);
    Atomics.add(ram, LS.VCPU_ACKS + me, 1);
    acks++;
    if (me === 0 && churnAt > 0 && --churnAt === 0) {
      churnAt = a.churn;
      const k = churnNext++ % a.spis.length;
      targets[k] = (targets[k]! + 1) % n;
      const s = a.spis[k]!.intid;
      c.driver.route(s, targets[k]!);
      c.driver.disable(s);
      c.driver.enable(s);
    }
  });
  if (me === 0) {
    for (const s of a.spis) {
      if (s.level) cpu.driver.setEdge(s.intid, false);
      cpu.driver.route(s.intid, s.target % n);
      cpu.driver.enable(s.intid);
    }
    if (a.its) for (const d of a.its.devices) for (const e of d.events) setLpiConfig(cpu, a.its.lpi, e.intid, 0xa0, true);
    cpu.driver.enableDistributor();
  }
  if (a.its) {
    enableLpis(cpu, a.its.lpi);
    if (me === 0) {
      // Every redistributor must have LPIs on before the ITS maps collections onto them.
      while (cpu.load(LS.READY) < n - 1) cpu.relax();
      const its = new GuestIts(cpu, a.its.its);
      its.setupTables();
      its.enable();
      for (const c of a.its.collections) its.mapc(c.icid, c.vcpu);
      for (const d of a.its.devices) {
        its.mapd(d.devId, d.itt, d.eventBits);
        for (const e of d.events) its.mapti(d.devId, e.eventId, e.intid, e.icid);
      }
      its.waitSync();
    }
  }
  if (me === 0) cpu.store(LS.CONFIGURED, 1);
  cpu.add(LS.READY, 1);
  cpu.enableIrqs();
  const next = (me + 1) % n;
  const ring = a.sgiRing >= 0 && n > 1;
  while (cpu.load(LS.STOP) === 0) {
    if (ring && cpu.load(LS.CONFIGURED) === 1 && cpu.load(LS.SGI_ACKS + 16 * next + a.sgiRing) === cpu.load(LS.SGI_SENT + me)) {
      ts[tsSgi(next, a.sgiRing)] = performance.now() + offset;
      cpu.add(LS.SGI_SENT + me, 1);
      cpu.sendSgi(a.sgiRing, [next]);
    }
    cpu.relax();
  }
  return { acks };
}
