/**
 * Data-plane benchmarks (issue 11): the path of one interrupt end to end, through the public API.
 *
 *  - Throughput: the VMM thread keeps one instance of each of 8 interrupts outstanding (it injects
 *    an interrupt again only once the guest acknowledged the previous one, so every injection is
 *    one IAR + EOI: nothing coalesces) on a 2-vCPU GICv3 VM, for edge SPIs through KVM_IRQ_LINE,
 *    LPIs through KVM_SIGNAL_MSI, and LPIs through irqfds on MSI routes; guests spin with IRQs
 *    unmasked, or sleep in WFI.
 *  - irqfd latency, eventfd write -> guest IAR, one interrupt in flight: the fast path (the writer
 *    maps the VM) to a running vCPU and to a vCPU parked in WFI, and the slow path (a plain worker
 *    thread that does not map the VM: the injector's work item).
 *
 * Each figure comes with its baseline from the same run (bench/baseline.ts): throughput as ns per
 * interrupt against the busy-poll round trip; latencies against the raw one-way wait/notify wake.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { createVm, EventFd, type Vm } from '../src/index.js';
import {
  KVM_ARM_IRQ_TYPE_SPI, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID, KVM_VGIC_ITS_ADDR_TYPE,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField,
} from '../src/uapi/index.js';
import { IRQ, LR, VCPU } from '../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../src/shm/vm-memory.js';
import { defaultItsLayout, defaultItt } from '../src/guest/builtins/its-lpi.js';
import { SINK, type SinkArgs } from '../src/guest/builtins/irq-sink.js';
import { GICD_BASE, GICR_BASE, ITS_BASE } from './micro.js';
import { median } from './report.js';

const DOORBELL = ITS_BASE + 0x10040;
/** Interrupts kept in flight by the throughput benchmarks. */
const IN_FLIGHT = 8;
const SPIS = Array.from({ length: IN_FLIGHT }, (_, i) => 32 + i);
/** Bound on every wait for the guest, so a lost interrupt fails the benchmark instead of hanging. */
// Generous: a loaded machine (other jobs on 2 cores) can hold a guest off its core for seconds.
const WAIT_MS = 20_000;

export type Source = 'spi' | 'lpi-msi' | 'lpi-irqfd';
export type Wait = 'spin' | 'wfi';

export interface ThroughputResult {
  source: Source;
  wait: Wait;
  vcpus: number;
  /** vCPU threads plus the injecting VMM thread exceed the cores: the OS time-slices them. */
  oversubscribed: boolean;
  /** Median interrupts acknowledged per second over the repetitions, null if it failed. */
  perSecond: number | null;
  samples: number[];
  /** Interrupts injected (and acknowledged) in all measured windows. */
  total: number;
  /**
   * vCPU work per acknowledged interrupt over the measured windows, all vCPUs summed: what a
   * change in interrupts/s is made of (fewer exits per interrupt, or cheaper ones).
   */
  perIrq?: PerIrq;
  error?: string;
}

/** Counters of all vCPUs over the measured windows, divided by the interrupts acknowledged. */
export interface PerIrq {
  /** Guest entries (KVM_RUN inner-loop entries, each one flush). */
  entries: number;
  /** Exits for a kick (mode flipped to EXITING by an injector): the kicks that landed. */
  kicks: number;
  /** Exits for a maintenance interrupt. */
  maintenance: number;
  /** Exits of every reason (kicks, maintenance, trapped MMIO/sysregs, WFI ...). */
  exits: number;
  /** WFI exits (WFI guests: each is one block, polled or parked). */
  wfi: number;
}

function counterTotals(vm: Vm): PerIrq {
  const t: PerIrq = { entries: 0, kicks: 0, maintenance: 0, exits: 0, wfi: 0 };
  for (const v of vm.vcpus) {
    const s = v.stats();
    t.entries += s.entries;
    t.kicks += s.exits.irq;
    t.maintenance += s.exits.maintenance;
    t.exits += Object.values(s.exits).reduce((a, b) => a + b, 0);
    t.wfi += s.exits.wfi;
  }
  return t;
}

export interface LatencyResult {
  name: 'fast-running' | 'fast-wfi' | 'slow-worker';
  /** Microseconds, eventfd write -> IAR; null if it failed. */
  p50: number | null;
  p99: number | null;
  max: number | null;
  samples: number;
  error?: string;
}

function buildVm(vcpus: number, args: SinkArgs): Vm {
  const vm = createVm({ maxVcpus: vcpus, lockdep: false, lockStats: 'off', ramBytes: 4 << 20 });
  try {
    for (let id = 0; id < vcpus; id++) vm.createVcpu(id, { guest: 'irq-sink', args });
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, GICD_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, GICR_BASE);
    if (args.its) {
      const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
      its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
      its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    }
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    return vm;
  } catch (e) {
    void vm.destroy();
    throw e;
  }
}

/** Spin (bounded) until `pred` holds; throws naming what was awaited. */
function spinUntil(pred: () => boolean, what: string, vm: Vm, run: { error: unknown }): void {
  const deadline = performance.now() + WAIT_MS;
  for (let i = 0; !pred(); i++) {
    if ((i & 1023) === 0) {
      if (run.error) throw run.error as Error;
      if (performance.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    }
  }
  void vm;
}

function startRun(vm: Vm): { done: Promise<unknown>; error: unknown } {
  const r: { done: Promise<unknown>; error: unknown } = { done: Promise.resolve(), error: null };
  r.done = vm.run().catch((e: unknown) => {
    r.error = e;
  });
  return r;
}

/** Stop the guests: DONE, then one more interrupt per vCPU so that WFI sleepers look at it. */
async function stopGuests(vm: Vm, run: { done: Promise<unknown> }, vcpus: number): Promise<void> {
  Atomics.store(vm.ram, SINK.DONE, 1);
  for (let v = 0; v < vcpus; v++) vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, SPIS[v]!), 1);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([run.done, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('guests did not return')), WAIT_MS)))]).finally(() => clearTimeout(timer));
}

export async function throughput(source: Source, wait: Wait, vcpus: number, seconds: number, reps: number): Promise<ThroughputResult> {
  const lpis = source !== 'spi';
  const layout = defaultItsLayout(ITS_BASE);
  const args: SinkArgs = { wait, spis: SPIS, latency: false, its: lpis ? { ...layout, itt: defaultItt(0), events: IN_FLIGHT } : undefined };
  // A WFI guest gives its core back while it waits; a spinning one does not.
  const busy = (wait === 'spin' ? vcpus : 0) + 1;
  const res: ThroughputResult = { source, wait, vcpus, oversubscribed: busy > availableParallelism(), perSecond: null, samples: [], total: 0 };
  const vm = buildVm(vcpus, args);
  try {
    const ram = vm.ram;
    const fds: EventFd[] = [];
    if (source === 'lpi-irqfd') {
      vm.setGsiRouting(Array.from({ length: IN_FLIGHT }, (_, e) => ({ gsi: e, type: KVM_IRQ_ROUTING_MSI, flags: KVM_MSI_VALID_DEVID, addressLo: DOORBELL, data: e, devid: 0 })));
      for (let e = 0; e < IN_FLIGHT; e++) {
        const fd = new EventFd();
        vm.irqfd({ fd, gsi: e });
        fds.push(fd);
      }
    }
    const run = startRun(vm);
    spinUntil(() => Atomics.load(ram, SINK.READY) === vcpus, 'the guests to be ready', vm, run);
    const ackIdx = Array.from({ length: IN_FLIGHT }, (_, i) => (lpis ? SINK.LPI_ACKS + i : SINK.SPI_ACKS + SPIS[i]!));
    const lines = SPIS.map((s) => kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, s));
    const inject = (i: number): void => {
      if (source === 'spi') vm.irqLine(lines[i]!, 1);
      else if (source === 'lpi-msi') {
        if (vm.signalMsi({ addressLo: DOORBELL, data: i, flags: KVM_MSI_VALID_DEVID, devid: 0 }) !== 1) throw new Error(`KVM_SIGNAL_MSI of event ${i} was not delivered`);
      } else fds[i]!.write(1n);
    };
    const sent = new Int32Array(IN_FLIGHT);
    let c0: PerIrq | null = null;
    // Warm-up window, then `reps` measured windows; the credit rule holds across them.
    for (let r = 0; r <= reps; r++) {
      if (r === 1) c0 = counterTotals(vm);
      const ack0 = ackIdx.reduce((s, k) => s + Atomics.load(ram, k), 0);
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      let lastProgress = t0;
      let seen = ack0;
      for (let n = 0; ; n++) {
        for (let i = 0; i < IN_FLIGHT; i++) {
          if (Atomics.load(ram, ackIdx[i]!) === sent[i]) {
            sent[i]!++;
            inject(i);
          }
        }
        if ((n & 255) === 0) {
          const now = performance.now();
          if (now >= end) break;
          const acked = ackIdx.reduce((s, k) => s + Atomics.load(ram, k), 0);
          if (acked !== seen) {
            seen = acked;
            lastProgress = now;
          } else if (now - lastProgress > WAIT_MS) throw new Error(`no interrupt acknowledged for ${WAIT_MS} ms (an interrupt was lost)`);
          if (run.error) throw run.error as Error;
        }
      }
      const dt = (performance.now() - t0) / 1000;
      const acked = ackIdx.reduce((s, k) => s + Atomics.load(ram, k), 0) - ack0;
      if (r > 0) {
        res.samples.push(acked / dt);
        res.total += acked;
      }
    }
    // Read before the drain below, as close to the last window's end as the acks were.
    const c1 = counterTotals(vm);
    if (c0 && res.total > 0) {
      const k = Object.keys(c1) as (keyof PerIrq)[];
      res.perIrq = Object.fromEntries(k.map((n) => [n, (c1[n] - c0![n]) / res.total])) as unknown as PerIrq;
    }
    // Exact accounting: every injection was acknowledged once, none twice.
    try {
      spinUntil(() => ackIdx.every((k, i) => Atomics.load(ram, k) >= sent[i]!), 'the last interrupts to be acknowledged', vm, run);
    } catch (e) {
      const owed = ackIdx.flatMap((k, i) => (Atomics.load(ram, k) < sent[i]! ? [`${lpis ? `LPI ${8192 + i}` : `SPI ${SPIS[i]}`} (${sent[i]} sent, ${Atomics.load(ram, k)} acked): ${describeIrq(vm, lpis ? 8192 + i : SPIS[i]!)}`] : []));
      throw new Error(`${(e as Error).message}; owed: ${owed.join('; ')}; ${describeVcpus(vm)}`);
    }
    ackIdx.forEach((k, i) => {
      if (Atomics.load(ram, k) !== sent[i]) throw new Error(`interrupt ${i}: ${sent[i]} injected, ${Atomics.load(ram, k)} acknowledged`);
    });
    await stopGuests(vm, run, vcpus);
    res.perSecond = median(res.samples);
  } catch (e) {
    res.error = `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    await vm.destroy();
  }
  return res;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The source of the slow-path writer: a thread that holds the eventfd but does not map the VM. */
function writerSource(eventfdUrl: string): string {
  return `
import { parentPort, workerData as wd } from 'node:worker_threads';
import { EventFd } from ${JSON.stringify(eventfdUrl)};
const fd = EventFd.from(wd.fd);
const ram = new Int32Array(wd.ram);
const stamp = new Float64Array(wd.ram, wd.stampByte, 1);
const origin = performance.timeOrigin;
let error = null;
for (let k = 0; k < wd.count && !error; k++) {
  stamp[0] = origin + performance.now();
  fd.write(1n);
  const deadline = performance.now() + wd.waitMs;
  while (Atomics.load(ram, wd.latN) !== k + 1) if (performance.now() > deadline) { error = 'interrupt ' + k + ' was not acknowledged'; break; }
}
parentPort.postMessage({ error });
`;
}

export async function irqfdLatency(name: LatencyResult['name'], count: number): Promise<LatencyResult> {
  const res: LatencyResult = { name, p50: null, p99: null, max: null, samples: 0 };
  const wait: Wait = name === 'fast-wfi' ? 'wfi' : 'spin';
  const vm = buildVm(1, { wait, spis: [SPIS[0]!], latency: true });
  try {
    const ram = vm.ram;
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: SPIS[0]! - 32 });
    const run = startRun(vm);
    spinUntil(() => Atomics.load(ram, SINK.READY) === 1, 'the guest to be ready', vm, run);
    const stamp = new Float64Array(ram.buffer, SINK.STAMP_BYTE, 1);
    const origin = performance.timeOrigin;
    const n = Math.min(count, SINK.LAT_CAP);
    if (name === 'slow-worker') {
      const url = new URL(`data:text/javascript,${encodeURIComponent(writerSource(new URL('../src/eventfd/eventfd.js', import.meta.url).href))}`);
      const w = new Worker(url, { workerData: { fd: fd.share(), ram: ram.buffer, stampByte: SINK.STAMP_BYTE, latN: SINK.LAT_N, count: n, waitMs: WAIT_MS } });
      const [msg] = (await Promise.race([once(w, 'message'), once(w, 'error').then(([e]) => Promise.reject(e as Error))])) as [{ error: string | null }];
      if (msg.error) throw new Error(msg.error);
    } else {
      const m = vm.host.m;
      const parkedIdx = vcpuOff(vm.geometry, 0) + VCPU.off.parked;
      for (let k = 0; k < n; k++) {
        // Parked: past the halt-poll window, asleep in Atomics.wait (the wake is a notify).
        if (wait === 'wfi') spinUntil(() => Atomics.load(m, parkedIdx) === 1, 'the vCPU to park in WFI', vm, run);
        stamp[0] = origin + performance.now();
        fd.write(1n);
        spinUntil(() => Atomics.load(ram, SINK.LAT_N) === k + 1, `interrupt ${k} to be acknowledged`, vm, run);
      }
    }
    // The first samples warm the path (JIT tiers, first translation): not measured.
    const warm = Math.min(64, n >> 3);
    const lat = Array.from(new Float64Array(ram.buffer, SINK.LAT_BYTE + 8 * warm, n - warm)).map((ms) => ms * 1000).sort((a, b) => a - b);
    res.samples = lat.length;
    res.p50 = percentile(lat, 50);
    res.p99 = percentile(lat, 99);
    res.max = lat[lat.length - 1]!;
    await stopGuests(vm, run, 1);
  } catch (e) {
    res.error = `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    await vm.destroy();
  }
  return res;
}

/** Diagnostics for a lost interrupt: its record and every vCPU's state. */
function describeIrq(vm: Vm, intid: number): string {
  const g = vm.geometry;
  const r = intid >= 8192 ? g.lpiRecordBase + intid - 8192 : g.spiRecordBase + intid - 32;
  const b = irqOff(g, r);
  const m = vm.host.m;
  return IRQ.fields.filter((f) => f.kind !== 'lock').map((f) => `${f.name}=${m[b + f.offset]}`).join(' ');
}
function describeVcpus(vm: Vm): string {
  const m = vm.host.m;
  return vm.vcpus.map((v, i) => {
    const vb = vcpuOff(vm.geometry, i);
    const lrs = Array.from({ length: m[vb + VCPU.off.nrLr]! }, (_, k) => { const o = vb + VCPU.off.lr + k * LR.size; return `${m[o + LR.off.intid]}:${m[o + LR.off.state]}`; }).join(',');
    return `vcpu${i}: mode ${m[vb + VCPU.off.mode]} req ${m[vb + VCPU.off.requests]} apHead ${m[vb + VCPU.off.apHead]} usedLrs ${m[vb + VCPU.off.usedLrs]} LRs ${lrs} pmr ${m[vb + VCPU.off.pmr]} ap1r ${m[vb + VCPU.off.ap1r]} stats ${JSON.stringify(v.stats())}`;
  }).join('; ');
}
