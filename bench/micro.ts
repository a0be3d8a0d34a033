/**
 * Guest-timed micro-benchmarks, measured the way kvm-unit-tests arm/micro-bench measures them: the
 * guest loops `iters` times over the operation and returns the average ns per iteration (timed
 * inside the guest). On a 2-vCPU GICv3 VM (dist 0x08000000, redist 0x080a0000, CTRL_INIT); every
 * repetition is one KVM_RUN of both vCPUs on the same VM, the reported figure is the median.
 * A benchmark that faults or times out is reported as failed; the others still run.
 */
import { createVm, PINGPONG, type GuestRef, type LockClassStats, type Vm, type VcpuStats } from '../src/index.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_VGIC_ITS_ADDR_TYPE,
} from '../src/uapi/index.js';
import { median } from './report.js';
import { defaultItsLayout, defaultItt } from '../src/guest/builtins/its-lpi.js';
import { LPI_BENCH } from './guests/lpi.js';

export const GICD_BASE = 0x08000000n;
export const GICR_BASE = 0x080a0000n;
const GICD_IIDR = 0x8;
const USER_MMIO_GPA = 0x0a000000;

export type Locking = 'fine' | 'global';
export type MicroName = 'mmio_read_user' | 'mmio_read_vgic' | 'eoi' | 'ipi' | 'lpi';

export interface MicroResult {
  name: MicroName;
  locking: Locking;
  iters: number;
  /** Median ns per iteration, or null if the benchmark failed. */
  ns: number | null;
  samples: number[];
  error?: string;
  lockStats?: LockClassStats[];
  /** Per-vCPU counters after all repetitions (exits by reason, acks, ...). */
  vcpuStats?: VcpuStats[];
  /** Guest iterations run in total on this VM (warm-up included), to normalise the counters. */
  totalIters?: number;
}

export interface MicroOptions {
  iters: number;
  reps: number;
  warmupRuns: number;
  timeoutMs: number;
  /** Lockset checking (VmOptions.checkAccess); default off. */
  checkAccess?: boolean;
}

const guestUrl = (file: string): string => new URL(`./guests/${file}`, import.meta.url).href;

export const ITS_BASE = 0x08080000;

function spec(name: MicroName, iters: number): { guest: GuestRef; args: unknown; beforeRun?: (vm: Vm) => void; its?: boolean } {
  switch (name) {
    case 'lpi':
      return {
        guest: guestUrl('lpi.js'),
        its: true,
        args: { iters, ...defaultItsLayout(ITS_BASE), itt: defaultItt(0) },
        beforeRun: (vm) => {
          const ram = vm.ram;
          for (const w of [LPI_BENCH.ACK, LPI_BENCH.READY, LPI_BENCH.DONE]) Atomics.store(ram, w, 0);
        },
      };
    case 'mmio_read_vgic':
      return { guest: guestUrl('mmio-read.js'), args: { iters, gicdOffset: GICD_IIDR } };
    case 'mmio_read_user':
      return { guest: guestUrl('mmio-read.js'), args: { iters, gpa: USER_MMIO_GPA } };
    case 'eoi':
      return { guest: guestUrl('eoi.js'), args: { iters } };
    case 'ipi':
      return {
        guest: 'ipi-pingpong',
        args: { rounds: iters },
        // The built-in guest keeps its handshake in RAM: clear it before each KVM_RUN.
        beforeRun: (vm) => {
          const ram = vm.ram;
          for (const w of [PINGPONG.READY, PINGPONG.COUNT, PINGPONG.DONE]) Atomics.store(ram, w, 0);
        },
      };
  }
}

function makeGicV3Vm(locking: Locking, guest: GuestRef, args: unknown, its = false, checkAccess = false): Vm {
  const vm = createVm({ maxVcpus: 2, locking, lockdep: false, lockStats: 'counts', ramBytes: its ? 4 << 20 : undefined, checkAccess });
  try {
    for (let id = 0; id < 2; id++) vm.createVcpu(id, { guest, args });
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, GICD_BASE);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, GICR_BASE);
    if (its) {
      const dev = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
      dev.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
      dev.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    }
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    return vm;
  } catch (e) {
    void vm.destroy();
    throw e;
  }
}

async function runOnce(vm: Vm, timeoutMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const res = await Promise.race([vm.run(), timeout]);
    const out = res[0]?.result as { avgNs?: number } | null | undefined;
    if (typeof out?.avgNs !== 'number') throw new Error(`vCPU 0 returned no avgNs (${JSON.stringify(out)})`);
    return out.avgNs;
  } finally {
    clearTimeout(timer);
  }
}

export async function runMicro(name: MicroName, locking: Locking, o: MicroOptions): Promise<MicroResult> {
  const s = spec(name, o.iters);
  const result: MicroResult = { name, locking, iters: o.iters, ns: null, samples: [] };
  let vm: Vm | null = null;
  let runs = 0;
  try {
    vm = makeGicV3Vm(locking, s.guest, s.args, s.its, o.checkAccess);
    for (let r = 0; r < o.warmupRuns + o.reps; r++) {
      s.beforeRun?.(vm);
      runs++;
      const ns = await runOnce(vm, o.timeoutMs);
      if (r >= o.warmupRuns) result.samples.push(ns);
    }
    result.ns = median(result.samples);
    result.lockStats = vm.lockStats();
    result.vcpuStats = vm.vcpus.map((v) => v.stats());
    result.totalIters = runs * o.iters;
  } catch (e) {
    const err = e as Error;
    result.error = `${err.name}: ${err.message.split('\n')[0]}`;
  } finally {
    await vm?.destroy();
  }
  return result;
}
