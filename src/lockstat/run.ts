/**
 * One lockstat measurement: a VM with `vcpus` vCPUs running the lockstat guest, the workload's
 * injectors (main thread, device workers), a measured window of `seconds` after the guests are
 * up, and what the window produced: acknowledged interrupts per second, inject->ack latency,
 * the lock_stat table (vm.lockStats, reset at the window's start), exits per reason, and
 * optionally a swimlane trace of a few milliseconds in the middle of the window.
 */
import { Worker } from 'node:worker_threads';
import { EventFd } from '../eventfd/eventfd.js';
import { createVm, type LockClassStats, type Vm } from '../kvm/vm.js';
import { distPath } from '../kvm/worker-path.js';
import { EXIT_REASONS } from '../shm/layouts.js';
import { deviceSlot } from '../shm/vm-memory.js';
import { slotName } from '../sync/lockdep.js';
import type { LockStatsMode } from '../sync/thread.js';
import {
  KVM_ARM_IRQ_TYPE_SPI, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_ITS,
  KVM_DEV_TYPE_ARM_VGIC_V3, KVM_IRQFD_FLAG_RESAMPLE, KVM_MSI_VALID_DEVID, KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField,
} from '../uapi/kvm.js';
import type { LockingMode } from '../vgic/host.js';
import { defaultItsLayout, defaultItt } from '../guest/builtins/its-lpi.js';
import { LPI_BASE } from '../guest/its-driver.js';
import type { LockstatGuestArgs } from './guest.js';
import { DEV_CTL, type LockstatDeviceData } from './device-ctl.js';
import { LAT_BUCKETS, LAT_MAX, LS, RAM_BYTES, tsLpi, tsSpi } from './ram.js';
import { TraceWindow, type LockTrace } from './trace.js';
import type { WorkloadPlan } from './workloads.js';

const DIST_BASE = 0x08000000n;
const REDIST_BASE = 0x080a0000n;
const ITS_BASE = 0x08080000;
const DOORBELL = ITS_BASE + 0x10040;
const LPI_DEVID = 1;
const SGI_RING = 1;
const BOOT_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
/**
 * The swimlane window: long enough for many lock round trips, short enough for the ring. On a
 * loaded machine a few ms can pass with no thread scheduled: the window then stays open until
 * TRACE_MIN_EVENTS were recorded, up to TRACE_WINDOW_MAX_MS.
 */
export const TRACE_WINDOW_MS = 5;
const TRACE_MIN_EVENTS = 64;
const TRACE_WINDOW_MAX_MS = 200;

export interface RunOptions {
  plan: WorkloadPlan;
  locking: LockingMode;
  vcpus: number;
  seconds: number;
  statsMode: LockStatsMode;
  /** Record a swimlane window in the middle of the measurement (timed mode only). */
  trace?: boolean;
  /** Polled while measuring: true ends the window early (Ctrl-C). */
  aborted?: () => boolean;
  /** Called every ~100 ms with the fraction of the window done. */
  onProgress?: (fraction: number) => void;
}

export interface RunResult {
  /** Length of the measured window, s (shorter than asked when interrupted). */
  seconds: number;
  interrupted: boolean;
  acks: number;
  /** Acknowledged interrupts per second. */
  throughput: number;
  /** Inject->ack latency, ns: histogram (lockstat/ram.ts buckets) and the largest sample. */
  latencyHist: number[];
  latencyMaxNs: number;
  lockStats: LockClassStats[];
  exits: Record<string, number>;
  trace?: LockTrace;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(pred: () => boolean, ms: number, what: string, run: Promise<unknown>): Promise<void> {
  const end = performance.now() + ms;
  let failed: unknown = null;
  run.catch((e: unknown) => (failed = e));
  while (!pred()) {
    if (failed) throw failed instanceof Error ? failed : new Error(String(failed));
    if (performance.now() > end) throw new Error(`lockstat: timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Wiring {
  vm: Vm;
  mainSpis: number[];
  lpis: number[];
  devices: { worker: Worker; ctl: Int32Array; exited: Promise<void> }[];
}

function build(o: RunOptions): Wiring {
  const p = o.plan;
  const vm = createVm({ maxVcpus: o.vcpus, locking: o.locking, lockStats: o.statsMode, ramBytes: RAM_BYTES });
  let next = 32;
  const take = (n: number): number[] => Array.from({ length: n }, () => next++);
  const mainSpis = take(p.mainSpis);
  const devLines = p.devices.map((d) => ({ edge: take(d.edge), level: take(d.level) }));
  const spis: LockstatGuestArgs['spis'] = [];
  let k = 0;
  for (const s of mainSpis) spis.push({ intid: s, target: k++, level: false });
  for (const d of devLines) {
    for (const s of d.edge) spis.push({ intid: s, target: k++, level: false });
    for (const s of d.level) spis.push({ intid: s, target: k++, level: true });
  }
  const lpis = Array.from({ length: p.lpis }, (_, i) => LPI_BASE + i);
  const layout = defaultItsLayout(ITS_BASE);
  const args: LockstatGuestArgs = {
    clockBase: performance.timeOrigin,
    spis,
    sgiRing: p.sgi ? SGI_RING : -1,
    churn: p.churn,
    its: lpis.length === 0 ? null : {
      ...layout,
      collections: Array.from({ length: o.vcpus }, (_, v) => ({ icid: v, vcpu: v })),
      devices: [{ devId: LPI_DEVID, itt: defaultItt(0), eventBits: 10, events: lpis.map((intid, i) => ({ eventId: i, intid, icid: i % o.vcpus })) }],
    },
  };
  const guest = distPath('src/lockstat/guest.js');
  for (let v = 0; v < o.vcpus; v++) vm.createVcpu(v, { guest, args });
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, DIST_BASE);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, REDIST_BASE);
  if (lpis.length > 0) {
    const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  }
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  const init = vm.threadInit();
  const devices = devLines.map((d, i) => {
    const slot = deviceSlot(vm.geometry, i);
    if (slot < 0) throw new Error(`lockstat: no thread slot for device ${i}`);
    const edge = d.edge.map((intid) => {
      const fd = new EventFd();
      vm.irqfd({ fd, gsi: intid - 32 });
      return { intid, fd: fd.share() };
    });
    const level = d.level.map((intid) => {
      const fd = new EventFd();
      const resample = new EventFd();
      vm.irqfd({ fd, gsi: intid - 32, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: resample });
      return { intid, fd: fd.share(), resample: resample.share() };
    });
    const ctlBuf = new SharedArrayBuffer(16);
    const wd: LockstatDeviceData = { buffers: init.buffers, cfg: init.cfg, slot, name: `device${i}`, clockBase: performance.timeOrigin, ctl: ctlBuf, edge, level };
    const worker = new Worker(distPath('src/lockstat/device-worker.js'), { workerData: wd });
    const exited = new Promise<void>((res, rej) => {
      worker.once('error', rej);
      worker.once('exit', () => res());
    });
    exited.catch(() => undefined);
    return { worker, ctl: new Int32Array(ctlBuf), exited };
  });
  return { vm, mainSpis, lpis, devices };
}

function vmThreadName(vm: Vm, nrDevices: number): (slot: number) => string {
  const first = deviceSlot(vm.geometry, 0);
  return (s) => (s >= first && s < first + nrDevices ? `device${s - first}` : slotName(s, vm.geometry.maxVcpus));
}

function exitCounts(vm: Vm): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(EXIT_REASONS.map((r) => [r, 0]));
  for (const v of vm.vcpus) {
    const e = v.stats().exits;
    for (const r of EXIT_REASONS) out[r]! += e[r];
  }
  return out;
}

export async function runOnce(o: RunOptions): Promise<RunResult> {
  const w = build(o);
  const { vm } = w;
  const ram = vm.ram;
  const f64 = new Float64Array(ram.buffer);
  const run = vm.run();
  run.catch(() => undefined);
  try {
    await until(() => Atomics.load(ram, LS.READY) === o.vcpus, BOOT_TIMEOUT_MS, 'the guests to come up', run);
    for (const d of w.devices) {
      Atomics.store(d.ctl, DEV_CTL.RUN, 1);
      Atomics.notify(d.ctl, DEV_CTL.RUN);
    }
    const spiFields = w.mainSpis.map((s) => kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, s));
    const spiSent = w.mainSpis.map(() => 0);
    const lpiSent = w.lpis.map(() => 0);
    const inject = (): void => {
      for (let i = 0; i < spiFields.length; i++) {
        const s = w.mainSpis[i]!;
        if (Atomics.load(ram, LS.SPI_ACKS + s) !== spiSent[i]) continue;
        f64[tsSpi(s)] = performance.now();
        spiSent[i]!++;
        vm.irqLine(spiFields[i]!, 1);
      }
      for (let i = 0; i < w.lpis.length; i++) {
        const intid = w.lpis[i]!;
        if (Atomics.load(ram, LS.LPI_ACKS + intid - LPI_BASE) !== lpiSent[i]) continue;
        f64[tsLpi(intid)] = performance.now();
        lpiSent[i]!++;
        vm.signalMsi({ addressLo: DOORBELL, data: i, devid: LPI_DEVID, flags: KVM_MSI_VALID_DEVID });
      }
    };
    const totalAcks = (): number => {
      let n = 0;
      for (let v = 0; v < o.vcpus; v++) n += Atomics.load(ram, LS.VCPU_ACKS + v);
      return n;
    };
    const hist = (): number[] => {
      const out = new Array<number>(LAT_BUCKETS).fill(0);
      for (let v = 0; v < o.vcpus; v++) for (let b = 0; b < LAT_BUCKETS; b++) out[b]! += Atomics.load(ram, LS.LAT_HIST + v * LAT_BUCKETS + b);
      return out;
    };
    // A short warm-up (JIT, first LR round trips) stays out of the window.
    const warm = performance.now() + Math.min(100, o.seconds * 200);
    while (performance.now() < warm && !o.aborted?.()) {
      inject();
      await tick();
    }
    vm.lockStats({ reset: true });
    const exits0 = exitCounts(vm);
    const hist0 = hist();
    for (let v = 0; v < o.vcpus; v++) f64[LAT_MAX + v] = 0;
    const acks0 = totalAcks();
    const t0 = performance.now();
    const end = t0 + o.seconds * 1000;
    let lastProgress = t0;
    let interrupted = false;
    for (;;) {
      const now = performance.now();
      if (now >= end) break;
      if (o.aborted?.()) {
        interrupted = true;
        break;
      }
      // Bursts between event-loop turns: Ctrl-C and progress need the loop; the window's
      // injections need the main thread's time.
      for (let k = 0; k < 32; k++) inject();
      if (now - lastProgress > 100) {
        lastProgress = now;
        o.onProgress?.((now - t0) / (end - t0));
      }
      await tick();
    }
    const t1 = performance.now();
    const acks = totalAcks() - acks0;
    const lockStats = vm.lockStats({ instances: 8 });
    const exits1 = exitCounts(vm);
    const hist1 = hist();
    let latencyMaxNs = 0;
    for (let v = 0; v < o.vcpus; v++) latencyMaxNs = Math.max(latencyMaxNs, f64[LAT_MAX + v]!);
    const seconds = (t1 - t0) / 1000;
    // The swimlane comes after the measured window, in the same steady state: its recording
    // (one more clock read and ring store per lock event) stays out of the figures above.
    let trace: LockTrace | undefined;
    if (o.trace && o.statsMode === 'timed' && !interrupted) {
      const tracer = new TraceWindow(vm.threadInit().buffers.stats, vm.geometry.threadSlots, 'timed', vmThreadName(vm, w.devices.length));
      tracer.open();
      const open = performance.now();
      for (;;) {
        for (let k = 0; k < 32; k++) inject();
        const el = performance.now() - open;
        if ((el >= TRACE_WINDOW_MS && tracer.recorded() >= TRACE_MIN_EVENTS) || el >= TRACE_WINDOW_MAX_MS) break;
      }
      trace = tracer.close();
    }
    return {
      seconds,
      interrupted,
      acks,
      throughput: seconds > 0 ? acks / seconds : 0,
      latencyHist: hist1.map((n, b) => n - hist0[b]!),
      latencyMaxNs: Math.round(latencyMaxNs),
      lockStats,
      exits: Object.fromEntries(EXIT_REASONS.map((r) => [r, exits1[r]! - exits0[r]!])),
      ...(trace ? { trace } : {}),
    };
  } finally {
    for (const d of w.devices) {
      Atomics.store(d.ctl, DEV_CTL.RUN, 2);
      Atomics.notify(d.ctl, DEV_CTL.RUN);
    }
    Atomics.store(ram, LS.STOP, 1);
    await Promise.race([run.catch(() => undefined), new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS).unref())]);
    await Promise.all(w.devices.map((d) => Promise.race([d.exited.catch(() => undefined), new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS).unref())])));
    for (const d of w.devices) await d.worker.terminate();
    await vm.destroy();
  }
}
