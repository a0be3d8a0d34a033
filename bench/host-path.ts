/**
 * The host side of one interrupt, phase by phase, on one thread: KVM_IRQ_LINE (inject and queue),
 * the flush before entry, the guest's IAR + EOI on the list registers, and the fold + prune after
 * exit. The main thread plays the vCPU's host code on vCPU 0's state (the vCPU workers exist but
 * are never run), with 8 edge SPIs in flight on 4 LRs: each round injects 8, then flushes 4,
 * takes them, folds, twice, so every other flush overflows and sorts.
 *
 * What it shows is the CPU cost of the model's algorithm without cross-thread traffic: each phase
 * is timed per round and the median round is reported, so that a preemption on a shared machine
 * (which the cross-thread data-plane figures cannot escape) does not count. The baseline of the
 * same run is a raw uncontended CAS + sub pair on a SAB word (one lock/unlock's atomics).
 *
 *   node dist/bench/host-path.js [--rounds N]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createVm } from '../src/index.js';
import {
  KVM_ARM_IRQ_TYPE_SPI, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField,
} from '../src/uapi/index.js';
import { IRQ, VCPU } from '../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../src/shm/vm-memory.js';
import { D } from '../src/vgic/host.js';
import type { LockingMode } from '../src/vgic/host.js';
import { flushLrs, syncHwstate } from '../src/vgic/lr.js';
import { cpuEoir, cpuIar } from '../src/vgic/cpu-interface.js';
import { GICD_BASE, GICR_BASE } from './micro.js';
import { median } from './report.js';

const IN_FLIGHT = 8;

export interface HostPathResult {
  locking: LockingMode;
  lockdep: boolean;
  /** Median ns per interrupt of each phase. */
  inject: number;
  flush: number;
  ackEoi: number;
  foldPrune: number;
  total: number;
  rounds: number;
}

export async function hostPath(locking: LockingMode, lockdep: boolean, rounds: number): Promise<HostPathResult> {
  const vm = createVm({ maxVcpus: 2, lockdep, lockStats: 'off', locking });
  try {
    for (let id = 0; id < 2; id++) vm.createVcpu(id, { guest: 'idle' });
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, GICD_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, GICR_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    const h = vm.host;
    const m = h.m;
    const spis = Array.from({ length: IN_FLIGHT }, (_, i) => 32 + i);
    // What the guest's GIC driver would have programmed: enabled, group 1, priority 0xa0, to vCPU 0.
    for (const s of spis) {
      const b = irqOff(h.g, h.g.spiRecordBase + s - 32);
      m[b + IRQ.off.enabled] = 1;
      m[b + IRQ.off.target] = 0;
      m[b + IRQ.off.priority] = 0xa0;
      m[b + IRQ.off.group] = 1;
    }
    m[D.enabled] = 1;
    const vb = vcpuOff(h.g, 0);
    m[vb + VCPU.off.pmr] = 0xf8;
    m[vb + VCPU.off.eng1] = 1;
    const lines = spis.map((s) => kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, s));
    const nrLr = vm.options.nrLr;
    const ph = { inject: [] as number[], flush: [] as number[], ackEoi: [] as number[], foldPrune: [] as number[] };
    // The first half warms up (JIT tiers); the second half is measured.
    for (let r = 0; r < 2 * rounds; r++) {
      let t0 = performance.now();
      for (const l of lines) vm.irqLine(l, 1);
      let t1 = performance.now();
      const inject = t1 - t0;
      let flush = 0;
      let ack = 0;
      let fold = 0;
      for (let done = 0; done < IN_FLIGHT; done += nrLr) {
        t0 = performance.now();
        flushLrs(h, 0);
        t1 = performance.now();
        flush += t1 - t0;
        for (let i = 0; i < nrLr; i++) {
          const id = cpuIar(h, 0, 1);
          if (id === 1023) throw new Error('host-path: spurious acknowledge (an interrupt was lost)');
          cpuEoir(h, 0, id, 1);
        }
        t0 = performance.now();
        ack += t0 - t1;
        syncHwstate(h, 0);
        t1 = performance.now();
        fold += t1 - t0;
      }
      // The kicks' requests are for a vCPU that never runs here.
      m[vb + VCPU.off.requests] = 0;
      if (r >= rounds) {
        ph.inject.push(inject);
        ph.flush.push(flush);
        ph.ackEoi.push(ack);
        ph.foldPrune.push(fold);
      }
    }
    const per = (xs: number[]): number => (median(xs) * 1e6) / IN_FLIGHT;
    const res = { locking, lockdep, inject: per(ph.inject), flush: per(ph.flush), ackEoi: per(ph.ackEoi), foldPrune: per(ph.foldPrune), total: 0, rounds };
    res.total = res.inject + res.flush + res.ackEoi + res.foldPrune;
    return res;
  } finally {
    await vm.destroy();
  }
}

/**
 * The same run's baseline: ns per uncontended CAS + sub pair on a SAB word. Short blocks (a few
 * µs) and their median, like the phases, so that preemption does not count either.
 */
export function rawLockPairNs(): number {
  const w = new Int32Array(new SharedArrayBuffer(64));
  const n = 256;
  const xs: number[] = [];
  for (let rep = 0; rep < 4000; rep++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (Atomics.compareExchange(w, 0, 0, 1) !== 0) throw new Error('raw lock pair: word not free');
      Atomics.sub(w, 0, 1);
    }
    xs.push(((performance.now() - t0) * 1e6) / n);
  }
  return median(xs);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' } } });
  const rounds = Number(values.rounds);
  const raw = rawLockPairNs();
  console.log(`raw CAS+sub pair: ${raw.toFixed(1)} ns`);
  for (const locking of ['fine', 'global'] as const) {
    for (const lockdep of [false, true]) {
      const r = await hostPath(locking, lockdep, rounds);
      console.log(`${locking} lockdep=${lockdep}: inject ${r.inject.toFixed(0)} flush ${r.flush.toFixed(0)} iar+eoi ${r.ackEoi.toFixed(0)} fold+prune ${r.foldPrune.toFixed(0)} total ${r.total.toFixed(0)} ns per interrupt (${(r.total / raw).toFixed(1)}x the raw pair)`);
    }
  }
}
