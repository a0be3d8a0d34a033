/**
 * Shared test helpers: VM builders for GICv2/GICv3 (the usual VMM bring-up sequence), bounded
 * waits on guest RAM, and a run handle that makes a failing vCPU fail the wait at once.
 *
 * Synchronisation rule: tests never sleep to let something happen. They wait for a predicate over
 * guest RAM (written by the guest with cpu.store/add) or for `vm.run()`, always with a deadline that
 * fails the test with a message naming what was awaited.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import {
  createVm, KvmError, ERRNO, type Vm, type VmOptions, type VcpuOptions, type KvmDevice, type VcpuRunResult,
  type ErrnoName,
} from '../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V2_ADDR_TYPE_CPU,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_IRQ_TYPE_PPI,
  kvmIrqLineField,
} from '../src/uapi/index.js';

export const V2_DIST = 0x08000000n;
export const V2_CPU = 0x08010000n;
export const V3_DIST = 0x08000000n;
export const V3_REDIST = 0x080a0000n;

/** Guest-physical address outside every GIC frame: an access is a KVM_EXIT_MMIO (a full exit/entry). */
export const USER_MMIO_GPA = 0x0900_0000;

export interface BuildOptions {
  vcpus: number;
  /** Guest for every vCPU (or per-vCPU via `perVcpu`). */
  guest?: VcpuOptions['guest'];
  args?: unknown;
  perVcpu?: (id: number) => VcpuOptions;
  vm?: VmOptions;
  /** NR_IRQS to set before init (total INTIDs incl. 32 private). */
  nrIrqs?: number;
  /** v3 only: skip CTRL_INIT. */
  noInit?: boolean;
}

export interface Built {
  vm: Vm;
  gic: KvmDevice;
}

/**
 * Mutation check: VGIC_EMU_TEST_BUGS=seed1,seed2 builds every helper VM with those bug seeds, to
 * confirm the suites notice them (a suite that passes with a seeded race cannot fail).
 */
function vmOptions(o: BuildOptions): VmOptions {
  const extra = (process.env.VGIC_EMU_TEST_BUGS ?? '').split(',').filter(Boolean);
  const base = o.vm ?? {};
  return extra.length ? { ...base, bugs: [...(base.bugs ?? []), ...extra] } : base;
}

function vcpuOpts(o: BuildOptions, i: number): VcpuOptions {
  return o.perVcpu ? o.perVcpu(i) : { guest: o.guest, args: o.args };
}

/** A GICv3 VM: vCPUs, the device, DIST + legacy REDIST addresses, NR_IRQS, CTRL_INIT. */
export function buildV3(o: BuildOptions): Built {
  const vm = createVm(vmOptions(o));
  try {
    for (let i = 0; i < o.vcpus; i++) vm.createVcpu(i, vcpuOpts(o, i));
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    if (o.nrIrqs !== undefined) gic.setAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, o.nrIrqs);
    if (!o.noInit) gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    return { vm, gic };
  } catch (e) {
    void vm.destroy();
    throw e;
  }
}

/** A GICv2 VM: vCPUs, the device, DIST + CPU addresses, NR_IRQS; initialised lazily. */
export function buildV2(o: BuildOptions): Built {
  const vm = createVm(vmOptions(o));
  try {
    for (let i = 0; i < o.vcpus; i++) vm.createVcpu(i, vcpuOpts(o, i));
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, V2_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, V2_CPU);
    if (o.nrIrqs !== undefined) gic.setAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, o.nrIrqs);
    return { vm, gic };
  } catch (e) {
    void vm.destroy();
    throw e;
  }
}

export function build(model: 2 | 3, o: BuildOptions): Built {
  return model === 2 ? buildV2(o) : buildV3(o);
}

/** KVM_IRQ_LINE field for an SPI (the uapi encoding, spec §8.1). */
export const spiLine = (intid: number): number => kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, intid);
export const ppiLine = (vcpu: number, intid: number): number => kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, vcpu, intid);

/** One rising edge (edge SPI): raise then lower the line. */
export function pulseSpi(vm: Vm, intid: number): void {
  vm.irqLine(spiLine(intid), 1);
  vm.irqLine(spiLine(intid), 0);
}

/** A started `vm.run()` whose outcome tests can look at while they wait. */
export interface RunHandle {
  readonly promise: Promise<VcpuRunResult[]>;
  done: boolean;
  error: unknown;
  results: VcpuRunResult[] | undefined;
}

export function startRun(vm: Vm): RunHandle {
  const h = { done: false, error: undefined as unknown, results: undefined as VcpuRunResult[] | undefined } as RunHandle;
  const p = vm.run().then(
    (r) => {
      h.done = true;
      h.results = r;
      return r;
    },
    (e: unknown) => {
      h.done = true;
      h.error = e;
      throw e;
    },
  );
  p.catch(() => undefined); // observed through the handle; avoid an unhandled rejection
  (h as { promise: Promise<VcpuRunResult[]> }).promise = p;
  return h;
}

/**
 * Poll `pred` until it holds, at most `ms` milliseconds; fail with `what` otherwise. If `run` is
 * given and the VM's run failed or ended meanwhile, fail at once with its error.
 */
export async function waitFor(pred: () => boolean, ms: number, what: string, run?: RunHandle): Promise<void> {
  const deadline = Date.now() + ms;
  let spins = 0;
  for (;;) {
    if (pred()) return;
    if (run?.error) throw new Error(`while waiting for ${what}: the VM run failed: ${String((run.error as Error).stack ?? run.error)}`);
    if (run?.done && !pred()) throw new Error(`while waiting for ${what}: every guest returned first`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    // Poll interval (not synchronisation): yield to the event loop, then back off to 1 ms.
    await new Promise<void>((r) => (spins++ < 200 ? setImmediate(r) : setTimeout(r, 1)));
  }
}

/** Wait until RAM word `idx` satisfies `pred` (default: non-zero). */
export function waitRam(vm: Vm, idx: number, ms: number, what: string, run?: RunHandle, pred: (v: number) => boolean = (v) => v !== 0): Promise<void> {
  const ram = vm.ram;
  return waitFor(() => pred(Atomics.load(ram, idx)), ms, what, run);
}

/** Settle `p` within `ms` or fail with `what`. */
/** Resolve `p` while failing early if the VM run fails meanwhile. */
export async function withRun<X>(p: Promise<X>, run: RunHandle, ms: number, what: string): Promise<X> {
  let out: { v: X } | undefined;
  let err: unknown;
  void p.then((v) => (out = { v }), (e: unknown) => (err = e ?? new Error('rejected')));
  await waitFor(() => out !== undefined || err !== undefined, ms, what, run);
  if (err !== undefined) throw err;
  return out!.v;
}

export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run every vCPU to completion, bounded. */
export function runAll(vm: Vm, ms = 20_000, what = 'every guest to return'): Promise<VcpuRunResult[]> {
  return within(vm.run(), ms, what);
}

/** Expect `fn` to throw a KvmError with this errno name as `code` (and the matching negative `errno`). */
export function expectErrno(fn: () => unknown, errno: ErrnoName): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected KvmError ${errno}, nothing was thrown`).toBeDefined();
  expect(thrown).toBeInstanceOf(KvmError);
  expect((thrown as KvmError).code).toBe(errno);
  expect((thrown as KvmError).errno).toBe(-ERRNO[errno]);
}

/** Same for an async operation. */
export async function expectErrnoAsync(p: Promise<unknown>, errno: ErrnoName): Promise<KvmError> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected KvmError ${errno}, the promise resolved`).toBeDefined();
  expect(thrown).toBeInstanceOf(KvmError);
  expect((thrown as KvmError).code).toBe(errno);
  expect((thrown as KvmError).errno).toBe(-ERRNO[errno]);
  return thrown as KvmError;
}

/** Destroy every VM created through `track`, bounded (use in afterEach). */
export class VmTracker {
  private vms: Vm[] = [];
  track<T extends { vm: Vm } | Vm>(x: T): T {
    this.vms.push('vm' in x ? x.vm : (x as Vm));
    return x;
  }
  async destroyAll(): Promise<void> {
    const vms = this.vms;
    this.vms = [];
    await within(Promise.all(vms.map((v) => v.destroy())), 10_000, 'vm.destroy() of the test VMs');
  }
}

export { KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3 };

/**
 * Lockset checking (VmOptions.checkAccess, check/lockset) for every VM this test file creates: on
 * for the files whose threads race on purpose; the whole suite cannot afford the Proxy per access
 * (concurrency.test.ts's 100 000 SPIs would miss their deadline). A violation fails vm.destroy().
 * Unlocked peeks a test makes at the shared state go through `unchecked(vm.host.m)`.
 * VGIC_EMU_CHECK_ACCESS=0 keeps it off (to measure what it costs).
 */
export function useAccessChecking(): void {
  const was = process.env.VGIC_EMU_CHECK_ACCESS;
  beforeAll(() => {
    if (was !== '0') process.env.VGIC_EMU_CHECK_ACCESS = '1';
  });
  afterAll(() => {
    if (was === undefined) delete process.env.VGIC_EMU_CHECK_ACCESS;
    else process.env.VGIC_EMU_CHECK_ACCESS = was;
  });
}
