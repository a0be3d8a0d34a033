/**
 * KVM_IRQFD (spec §8.3-8.6): argument checks, delivery through the writer-thread fast path and the
 * injector worker's slow path, level SPIs with a resamplefd, deassign against a concurrent writer,
 * POLLHUP and VM teardown.
 *
 * Guests run the irq-echo builtin: it counts every SPI acknowledgement in guest RAM word
 * ECHO.SPI_ACKS + intid. Exact counts use credits (the next signal only after the previous one was
 * acknowledged), since coalescing of edge SPIs is legal otherwise. Writer threads run
 * irqfd-writer-worker.mjs, which imports the compiled eventfd from dist/ and does not map the VM.
 * Nothing sleeps to let something happen: every wait is a bounded poll of an observable condition.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventFd } from '../../src/eventfd/eventfd.js';
import { ECHO } from '../../src/guest/builtins/irq-echo.js';
import { createVm, type Vm } from '../../src/kvm/vm.js';
import {
  KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_MAX_IRQ_ROUTES, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../src/uapi/kvm.js';
import { IRQ, IRQFD, IRQFD_FREE, IRQFD_HUP, NR_IRQFDS } from '../../src/shm/layouts.js';
import { irqfdOff, irqOff } from '../../src/shm/vm-memory.js';
import { irqRecord } from '../../src/vgic/irq.js';
import { NR_SPIS_DEFAULT } from '../../src/vgic/init.js';
import {
  VmTracker, build, expectErrno, startRun, waitFor, waitRam, within, type RunHandle, withRun, useAccessChecking } from '../helpers.js';
import { unchecked } from '../../src/check/lockset/index.js';

// Real threads race here on purpose: every VM of this file checks its accesses (lockset).
useAccessChecking();

const WORKER_URL = new URL('./irqfd-writer-worker.mjs', import.meta.url);
const DIST_EVENTFD = new URL('../../dist/src/eventfd/eventfd.js', import.meta.url);
const DIST_IRQFD = new URL('../../dist/src/kvm/irqfd.js', import.meta.url);
const DIST_INJECTOR = new URL('../../dist/workers/irqfd-injector.js', import.meta.url);
/** Bound for one wake-up / one delivery / a worker start. */
const T = 10_000;

const tracker = new VmTracker();
const live: Worker[] = [];

afterEach(async () => {
  // Writers first (a looping writer would otherwise keep signalling during teardown), then VMs.
  await within(Promise.all(live.splice(0).map((w) => w.terminate())), T, 'the writer workers to terminate');
  await tracker.destroyAll();
});

beforeAll(() => {
  for (const u of [DIST_EVENTFD, DIST_IRQFD, DIST_INJECTOR]) {
    if (!existsSync(fileURLToPath(u))) throw new Error(`${fileURLToPath(u)} is missing: dist/ is stale (run \`npm run build\`)`);
  }
});

// ---------------------------------------------------------------------------------------------
// Helpers

const gsiOf = (intid: number): number => intid - 32;

interface Echo {
  vm: Vm;
  run: RunHandle;
  /** The guest's acknowledgement count for SPI `intid`. */
  acks: (intid: number) => number;
}

/** A 2-vCPU GICv3 VM (initialised) running irq-echo on `spis` (of which `level` are level), both vCPUs ready. */
async function bootEcho(spis: number[], level: number[] = []): Promise<Echo> {
  const { vm } = tracker.track(build(3, { vcpus: 2, guest: 'irq-echo', args: { spis, forwardSgi: -1, level } }));
  const run = startRun(vm);
  await waitRam(vm, ECHO.READY, T, 'both vCPUs to be ready', run, (v) => v === 2);
  const ram = vm.ram;
  return { vm, run, acks: (intid) => Atomics.load(ram, ECHO.SPI_ACKS + intid) };
}

/** A GICv3 VM with 2 vCPUs that never run (argument checks only). */
function idleV3(noInit = false): Vm {
  return tracker.track(build(3, { vcpus: 2, noInit })).vm;
}

function info(vm: Vm, fd: EventFd) {
  const all = vm.irqfds().filter((i) => i.token === fd.token);
  expect(all, `exactly one irqfd listed for eventfd ${fd.token}`).toHaveLength(1);
  return all[0]!;
}

/**
 * Writes made by a thread that maps the VM are injected by its fast path. The injector's backstop
 * poll can, very rarely, take a count in the microseconds between a write's add and its callback
 * (a writer preempted there): every count is still injected exactly once, by one of the paths.
 */
function expectMostlyFast(c: { fastInjections: number; slowInjections: number }, n: number): void {
  expect(c.fastInjections + c.slowInjections).toBe(n);
  expect(c.slowInjections).toBeLessThanOrEqual(2);
}

/** The shared-memory row of irqfd slot `slot`: readable even after deassign (until the slot is reused). */
function raw(vm: Vm, slot: number) {
  const m = unchecked(vm.host.m);
  const e = irqfdOff(vm.geometry, slot);
  const f = (k: keyof typeof IRQFD.off): number => Atomics.load(m, e + IRQFD.off[k]);
  return {
    state: f('state'), inflight: f('inflight'), consumed: f('consumed'), fastInjections: f('fastInjections'),
    slowInjections: f('slowInjections'), dropped: f('dropped'), resamples: f('resamples'),
  };
}

/**
 * SPI `intid` is quiescent: not pending, not active, its line low, in no list register and on no
 * vCPU's ap_list. With no injection in flight, every instance raised so far has been taken.
 * (An unlocked look at the record: used only as a poll condition.)
 */
function spiIdle(vm: Vm, intid: number): boolean {
  const h = vm.host;
  const r = irqRecord(h, -1, intid);
  if (r < 0) throw new Error(`SPI ${intid} does not exist`);
  const b = irqOff(h.g, r);
  const f = (k: keyof typeof IRQ.off): number => Atomics.load(unchecked(h.m), b + IRQ.off[k]);
  return f('vcpu') === -1 && f('pendingLatch') === 0 && f('active') === 0 && f('lineLevel') === 0 && f('onLr') === 0;
}

/** Every count written to this irqfd's eventfd was consumed, nothing is in flight, and its SPI is idle. */
async function settle(vm: Vm, slot: number, intid: number, written: number, run: RunHandle, what: string): Promise<void> {
  await waitFor(() => raw(vm, slot).consumed === written, T, `${what}: all ${written} counts to be consumed`, run);
  await waitFor(() => raw(vm, slot).inflight === 0 && spiIdle(vm, intid), T, `${what}: SPI ${intid} to be taken (idle)`, run);
}

interface WorkerResult {
  type: 'result';
  writes?: number;
  error?: string;
  errno?: string;
  closed?: boolean;
}

/** Start a writer thread that only has the eventfd (not the VM). */
function spawnWriter(op: string, fd: EventFd, extra: Record<string, unknown> = {}): { result: Promise<WorkerResult> } {
  const w = new Worker(WORKER_URL, { workerData: { op, handle: fd.share(), ...extra } });
  live.push(w);
  const result = new Promise<WorkerResult>((resolve, reject) => {
    w.once('message', (m: WorkerResult) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`writer '${op}' exited (code ${code}) without a result`)));
  });
  result.catch(() => undefined); // observed by the test; avoid an unhandled rejection on terminate
  return { result };
}


// ---------------------------------------------------------------------------------------------

describe('KVM_IRQFD argument checks', () => {
  it('unknown flag bits -> EINVAL', () => {
    const vm = idleV3();
    const fd = new EventFd();
    for (const flags of [4, 8, 1 << 30, -1, 1.5, KVM_IRQFD_FLAG_DEASSIGN | 4, KVM_IRQFD_FLAG_RESAMPLE | 16]) {
      expectErrno(() => vm.irqfd({ fd, gsi: 0, flags, resamplefd: new EventFd() }), 'EINVAL');
    }
    expect(vm.irqfds()).toEqual([]);
    expect(fd.wakeBinding()).toBeNull();
  });

  it('gsi: kvm_irqfd_assign never checks it, so any u32 is assigned (past KVM_MAX_IRQ_ROUTES too); only a value no u32 field can hold is EINVAL', () => {
    const vm = idleV3();
    const fd = new EventFd();
    for (const gsi of [-1, 1.5, Number.NaN, Infinity, 2 ** 32]) {
      expectErrno(() => vm.irqfd({ fd, gsi }), 'EINVAL');
      expectErrno(() => vm.irqfd({ fd, gsi, flags: KVM_IRQFD_FLAG_DEASSIGN }), 'EINVAL');
    }
    expect(vm.irqfds()).toEqual([]);
    // Past the routing table and past every SPI: assigned all the same (mainline virt/kvm/eventfd.c).
    const gsis = [KVM_MAX_IRQ_ROUTES - 1, KVM_MAX_IRQ_ROUTES, KVM_MAX_IRQ_ROUTES + 1, 0xffff_ffff];
    const fds = gsis.map(() => new EventFd());
    gsis.forEach((gsi, i) => vm.irqfd({ fd: fds[i]!, gsi }));
    expect(vm.irqfds().map((i) => i.gsi)).toEqual(gsis);
    // Deassign matches (fd, gsi) exactly.
    vm.irqfd({ fd: fds[3]!, gsi: 0xffff_ffff, flags: KVM_IRQFD_FLAG_DEASSIGN });
    expect(vm.irqfds().map((i) => i.gsi)).toEqual(gsis.slice(0, 3));
  });

  it('assign before the vgic is initialised -> EAGAIN (no vgic, GICv3 before CTRL_INIT, GICv2 not yet run)', () => {
    const noGic = tracker.track(createVm({ maxVcpus: 2 }));
    noGic.createVcpu(0);
    const v3 = idleV3(true);
    const v2 = tracker.track(build(2, { vcpus: 2 })).vm;
    for (const vm of [noGic, v3, v2]) {
      const fd = new EventFd(1);
      expectErrno(() => vm.irqfd({ fd, gsi: 0 }), 'EAGAIN');
      expectErrno(() => vm.irqfd({ fd, gsi: 0, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: new EventFd() }), 'EAGAIN');
      // EAGAIN comes before the fd checks, as in kvm_irqfd_assign
      expectErrno(() => vm.irqfd({ fd: {} as unknown as EventFd, gsi: 0 }), 'EAGAIN');
      expect(vm.irqfds()).toEqual([]);
      expect(fd.wakeBinding()).toBeNull();
      expect(fd.value).toBe(1n);
    }
    // The same GICv3 VM accepts it once CTRL_INIT has run.
    const { vm } = tracker.track({ vm: createVm({ maxVcpus: 2 }) });
    vm.createVcpu(0);
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x08000000n);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
    const fd = new EventFd();
    expectErrno(() => vm.irqfd({ fd, gsi: 0 }), 'EAGAIN');
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    vm.irqfd({ fd, gsi: 0 });
    expect(vm.irqfds()).toHaveLength(1);
  });

  it('fd or resamplefd not a usable eventfd -> EBADF, and nothing stays bound', () => {
    const vm = idleV3();
    const closed = new EventFd();
    closed.close();
    for (const bad of [undefined, null, 3, {}, { kind: 'eventfd', sab: new SharedArrayBuffer(64) }, closed.share(), closed]) {
      expectErrno(() => vm.irqfd({ fd: bad as unknown as EventFd, gsi: 1 }), 'EBADF');
    }
    const fd = new EventFd();
    for (const bad of [undefined, null, 3, {}, closed]) {
      expectErrno(() => vm.irqfd({ fd, gsi: 1, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: bad as unknown as EventFd }), 'EBADF');
    }
    expect(vm.irqfds()).toEqual([]);
    expect(fd.wakeBinding()).toBeNull();
    // The eventfd refused with a bad resamplefd is still free to assign.
    vm.irqfd({ fd, gsi: 1 });
    expect(info(vm, fd)).toMatchObject({ gsi: 1, resample: false });
  });

  it('the same eventfd twice (same gsi, other gsi, other object for it) -> EBUSY; the first stays intact', () => {
    const vm = idleV3();
    const fd = new EventFd();
    const rfd = new EventFd();
    vm.irqfd({ fd, gsi: 3, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    expectErrno(() => vm.irqfd({ fd, gsi: 3 }), 'EBUSY');
    expectErrno(() => vm.irqfd({ fd, gsi: 4 }), 'EBUSY');
    expectErrno(() => vm.irqfd({ fd, gsi: 4, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: new EventFd() }), 'EBUSY');
    expectErrno(() => vm.irqfd({ fd: EventFd.from(fd.share()), gsi: 5 }), 'EBUSY');
    expect(vm.irqfds()).toEqual([expect.objectContaining({ gsi: 3, resample: true, token: fd.token })]);
    // A resamplefd may be shared; it is not the bound trigger.
    const fd2 = new EventFd();
    vm.irqfd({ fd: fd2, gsi: 3, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    expect(vm.irqfds()).toHaveLength(2);
  });

  it(`a full table (${NR_IRQFDS} irqfds) -> ENOMEM; the refused eventfd is not bound and fits once a slot frees`, () => {
    const vm = idleV3();
    const fds = Array.from({ length: NR_IRQFDS }, () => new EventFd());
    fds.forEach((fd, i) => vm.irqfd({ fd, gsi: i }));
    expect(vm.irqfds()).toHaveLength(NR_IRQFDS);
    const extra = new EventFd();
    expectErrno(() => vm.irqfd({ fd: extra, gsi: 100 }), 'ENOMEM');
    expect(extra.wakeBinding()).toBeNull();
    vm.irqfd({ fd: fds[10]!, gsi: 10, flags: KVM_IRQFD_FLAG_DEASSIGN });
    expect(vm.irqfds()).toHaveLength(NR_IRQFDS - 1);
    vm.irqfd({ fd: extra, gsi: 100 });
    expect(vm.irqfds()).toHaveLength(NR_IRQFDS);
  });

  it('deassign: non-eventfd -> EBADF; no match (other gsi, other fd) returns normally; a rebuilt handle matches', () => {
    const vm = idleV3();
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: 7 });
    for (const bad of [undefined, 7, {}, fd.share()]) {
      expectErrno(() => vm.irqfd({ fd: bad as unknown as EventFd, gsi: 7, flags: KVM_IRQFD_FLAG_DEASSIGN }), 'EBADF');
    }
    vm.irqfd({ fd, gsi: 8, flags: KVM_IRQFD_FLAG_DEASSIGN });
    vm.irqfd({ fd: new EventFd(), gsi: 7, flags: KVM_IRQFD_FLAG_DEASSIGN });
    expect(vm.irqfds()).toEqual([expect.objectContaining({ gsi: 7, token: fd.token })]);
    // Identity is the eventfd (its token), not the JS object.
    vm.irqfd({ fd: EventFd.from(fd.share()), gsi: 7, flags: KVM_IRQFD_FLAG_DEASSIGN });
    expect(vm.irqfds()).toEqual([]);
    expect(fd.wakeBinding()).toBeNull();
    // A second deassign finds nothing and still succeeds; the eventfd can be assigned again.
    vm.irqfd({ fd, gsi: 7, flags: KVM_IRQFD_FLAG_DEASSIGN });
    vm.irqfd({ fd, gsi: 9 });
    expect(info(vm, fd).gsi).toBe(9);
  });
});

describe('irqfd delivery (edge SPIs)', () => {
  it('a count already in the eventfd is injected after the assign (injector work item)', async () => {
    const SPI = 40;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd(3);
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    await waitFor(() => acks(SPI) >= 1, T, 'the pre-signalled count to be acknowledged', run);
    await settle(vm, slot, SPI, 3, run, 'pre-signalled');
    expect(fd.value).toBe(0n);
    // One read of 3 -> one injection -> one interrupt.
    expect(info(vm, fd)).toMatchObject({ consumed: 3, slowInjections: 1, fastInjections: 0, dropped: 0 });
    expect(acks(SPI)).toBe(1);
  });

  it('fast path: 300 credit-based writes on the VMM thread -> exactly 300 acks, all injected in the writer thread', async () => {
    const SPI = 41;
    const N = 300;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    for (let i = 0; i < N; i++) {
      const before = acks(SPI);
      fd.write(1n);
      // The fast path consumes synchronously, inside write().
      expect(fd.value, `write #${i + 1} left a count for the slow path`).toBe(0n);
      await waitFor(() => acks(SPI) !== before, T, `ack of write #${i + 1}`, run);
      expect(acks(SPI), `write #${i + 1}`).toBe(before + 1);
    }
    await settle(vm, slot, SPI, N, run, 'fast-path storm');
    expect(acks(SPI)).toBe(N);
    expectMostlyFast(info(vm, fd), N);
    expect(info(vm, fd)).toMatchObject({ consumed: N, dropped: 0, resamples: 0 });
  });

  it('slow path: 300 credit-based writes from a thread without the VM -> exactly 300 acks, all by the injector', async () => {
    const SPI = 42;
    const N = 300;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    const w = spawnWriter('credit', fd, { ram: vm.ram.buffer, ackIdx: ECHO.SPI_ACKS + SPI, n: N, timeoutMs: T });
    const r = await withRun(w.result, run, 60_000, 'the credit writer to finish');
    expect(r.error).toBeUndefined();
    expect(r.writes).toBe(N);
    await settle(vm, slot, SPI, N, run, 'slow-path storm');
    expect(acks(SPI)).toBe(N);
    expect(info(vm, fd)).toMatchObject({ consumed: N, slowInjections: N, fastInjections: 0, dropped: 0, resamples: 0 });
  });

  it('free-running storm from 2 writer threads on 2 irqfds: no count lost, no spurious interrupt, the last one delivered', async () => {
    const SPIS = [43, 44];
    const W = 20_000;
    const { vm, run, acks } = await bootEcho(SPIS);
    const fds = SPIS.map(() => new EventFd());
    SPIS.forEach((s, i) => vm.irqfd({ fd: fds[i]!, gsi: gsiOf(s) }));
    const slots = fds.map((fd) => info(vm, fd).slot);
    const writers = fds.map((fd) => spawnWriter('free', fd, { n: W }));
    for (const w of writers) {
      const r = await withRun(w.result, run, 60_000, 'a free-running writer');
      expect(r).toEqual({ type: 'result', writes: W });
    }
    for (const [i, s] of SPIS.entries()) await settle(vm, slots[i]!, s, W, run, `storm on SPI ${s}`);
    for (const [i, s] of SPIS.entries()) {
      const c = info(vm, fds[i]!);
      expect(fds[i]!.value).toBe(0n);
      expect(c.consumed).toBe(W);
      expect(c.dropped).toBe(0);
      expect(c.fastInjections).toBe(0); // the writers do not map the VM
      // Every read of a non-zero count is one injection: at least one, at most one per count.
      expect(c.slowInjections).toBeGreaterThanOrEqual(1);
      expect(c.slowInjections).toBeLessThanOrEqual(W);
      // Coalescing is legal, inventing interrupts is not.
      expect(acks(s)).toBeGreaterThanOrEqual(1);
      expect(acks(s)).toBeLessThanOrEqual(c.slowInjections);
      expect(acks(s)).toBeLessThanOrEqual(W);
    }
    // The SPIs are idle, so nothing from the storm is left over: one more signal is exactly one more ack.
    for (const [i, s] of SPIS.entries()) {
      const before = acks(s);
      fds[i]!.write(1n);
      await waitFor(() => acks(s) !== before, T, `the post-storm ack on SPI ${s}`, run);
      await settle(vm, slots[i]!, s, W + 1, run, `post-storm on SPI ${s}`);
      expect(acks(s)).toBe(before + 1);
      expect(info(vm, fds[i]!)).toMatchObject({ consumed: W + 1, fastInjections: 1 });
    }
  });

  it('a GSI without an SPI (gsi 1000, the first one past NR_IRQS, past the routing table, the largest u32): assign succeeds, signals are counted as dropped', async () => {
    const SPI = 45;
    const { vm, run, acks } = await bootEcho([SPI]);
    // Past the SPIs, past NR_IRQS, past the routing table (KVM_MAX_IRQ_ROUTES), the largest u32.
    const beyond = [1000, NR_SPIS_DEFAULT, KVM_MAX_IRQ_ROUTES + 7, 0xffff_ffff];
    const fds = beyond.map(() => new EventFd());
    beyond.forEach((gsi, i) => vm.irqfd({ fd: fds[i]!, gsi }));
    // fast path (this thread)
    fds[0]!.write(1n);
    expect(info(vm, fds[0]!)).toMatchObject({ consumed: 1, dropped: 1, fastInjections: 0, slowInjections: 0 });
    // slow path (a writer thread)
    const w = spawnWriter('free', fds[1]!, { n: 1 });
    expect(await withRun(w.result, run, T, 'the one-write writer')).toMatchObject({ writes: 1 });
    await waitFor(() => info(vm, fds[1]!).dropped === 1, T, 'the injector to drop the count for the missing SPI', run);
    expect(info(vm, fds[1]!)).toMatchObject({ consumed: 1, dropped: 1, fastInjections: 0, slowInjections: 0 });
    for (const f of fds.slice(2)) {
      f.write(1n);
      expect(info(vm, f)).toMatchObject({ consumed: 1, dropped: 1, fastInjections: 0, slowInjections: 0 });
    }
    // Nothing broke: a valid irqfd still delivers.
    const ok = new EventFd();
    vm.irqfd({ fd: ok, gsi: gsiOf(SPI) });
    ok.write(1n);
    await waitFor(() => acks(SPI) === 1, T, 'delivery on a valid irqfd after the drops', run);
    expect(run.error).toBeUndefined();
  });
});

describe('irqfd with KVM_IRQFD_FLAG_RESAMPLE (level SPI)', () => {
  it('VMM loop of 200: signal, ack, one resample per EOI (value 1), none extra', async () => {
    const SPI = 50;
    const N = 200;
    const { vm, run, acks } = await bootEcho([SPI], [SPI]);
    const fd = new EventFd();
    const rfd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI), flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    const slot = info(vm, fd).slot;
    expect(info(vm, fd).resample).toBe(true);
    for (let i = 0; i < N; i++) {
      const before = acks(SPI);
      fd.write(1n);
      await waitFor(() => acks(SPI) !== before, T, `ack of level signal #${i + 1}`, run);
      await waitFor(() => rfd.value !== 0n, T, `resamplefd after EOI #${i + 1}`, run);
      expect(rfd.tryRead(), `resample #${i + 1}`).toBe(1n);
      expect(acks(SPI), `level signal #${i + 1} taken more than once`).toBe(before + 1);
    }
    // The resampler lowered the line at the last EOI: the SPI ends idle (line low).
    await settle(vm, slot, SPI, N, run, 'resample loop');
    expect(acks(SPI)).toBe(N);
    expectMostlyFast(info(vm, fd), N);
    expect(info(vm, fd)).toMatchObject({ consumed: N, resamples: N, dropped: 0 });
    expect(rfd.value).toBe(0n);
    // With every thread gone, still no late resample.
    await within(vm.destroy(), T, 'vm.destroy()');
    expect(rfd.value).toBe(0n);
    expect(raw(vm, slot).resamples).toBe(N);
  });

  it('an edge SPI never resamples', async () => {
    const SPI = 51;
    const N = 20;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    const rfd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI), flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    const slot = info(vm, fd).slot;
    for (let i = 0; i < N; i++) {
      const before = acks(SPI);
      fd.write(1n);
      await waitFor(() => acks(SPI) !== before, T, `ack of edge signal #${i + 1}`, run);
    }
    await settle(vm, slot, SPI, N, run, 'edge with a resamplefd');
    expect(acks(SPI)).toBe(N);
    expect(info(vm, fd).resamples).toBe(0);
    expect(rfd.value).toBe(0n);
  });
});

describe('deassign, POLLHUP and teardown', () => {
  it('deassign during a tight writer loop: nothing injects for it once deassign returned', async () => {
    const SPI = 46;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    const ctl = new Int32Array(new SharedArrayBuffer(8)); // [stop, writes]
    const w = spawnWriter('loop', fd, { ctl: ctl.buffer });
    await waitFor(() => acks(SPI) >= 20, T, '20 acks from the looping writer', run);

    vm.irqfd({ fd, gsi: gsiOf(SPI), flags: KVM_IRQFD_FLAG_DEASSIGN });
    const c0 = raw(vm, slot);
    const a0 = acks(SPI);
    expect(c0.state).toBe(IRQFD_FREE);
    expect(c0.inflight).toBe(0);
    expect(vm.irqfds()).toEqual([]);
    expect(fd.wakeBinding()).toBeNull();

    // An instance raised before deassign returned may still be pending (and one may be between
    // IAR and the guest's count): at most two more acks, then the SPI goes idle.
    const w0 = Atomics.load(ctl, 1);
    await waitFor(() => Atomics.load(ctl, 1) >= w0 + 1000 && spiIdle(vm, SPI), T, '1000 more writes and the SPI idle', run);
    expect(acks(SPI)).toBeLessThanOrEqual(a0 + 2);
    expect(raw(vm, slot)).toEqual(c0);

    // From now on: not a single ack, not a single count consumed, while the writer goes on.
    const a1 = acks(SPI);
    const w1 = Atomics.load(ctl, 1);
    await waitFor(() => Atomics.load(ctl, 1) >= w1 + 1000, T, '1000 further writes after deassign', run);
    expect(acks(SPI)).toBe(a1);
    expect(raw(vm, slot)).toEqual(c0);
    expect(spiIdle(vm, SPI)).toBe(true);
    expect(fd.value).toBeGreaterThan(0n); // nobody consumes the eventfd any more

    Atomics.store(ctl, 0, 1);
    const r = await within(w.result, T, 'the looping writer to stop');
    expect(r.errno).toBeUndefined();
    expect(r.writes).toBe(Atomics.load(ctl, 1));
    // Every write is accounted for: consumed before deassign, or still in the eventfd.
    expect(BigInt(c0.consumed) + fd.value).toBe(BigInt(r.writes!));
  });

  it('POLLHUP: closing the eventfd on the VMM thread removes the irqfd at once; the gsi can be reused', async () => {
    const SPI = 47;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    fd.write(1n);
    await waitFor(() => acks(SPI) === 1, T, 'the first ack', run);
    fd.close();
    expect(raw(vm, slot).state).toBe(IRQFD_FREE);
    expect(vm.irqfds()).toEqual([]);
    // Deassigning it afterwards finds nothing: not an error.
    vm.irqfd({ fd, gsi: gsiOf(SPI), flags: KVM_IRQFD_FLAG_DEASSIGN });
    const fd2 = new EventFd();
    vm.irqfd({ fd: fd2, gsi: gsiOf(SPI) });
    fd2.write(1n);
    await waitFor(() => acks(SPI) === 2, T, 'an ack through the new irqfd on the same gsi', run);
    expect(info(vm, fd2)).toMatchObject({ gsi: gsiOf(SPI), consumed: 1, fastInjections: 1 });
  });

  // A close in a thread that has no wake-up handler for the VM (a plain worker) runs no POLLHUP
  // callback; the injector's poller sees EBADF and marks the irqfd IRQFD_HUP for the VMM thread.
  it('POLLHUP: closing the eventfd in a thread without the VM also removes the irqfd', async () => {
    const SPI = 48;
    const { vm, run } = await bootEcho([SPI]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    const slot = info(vm, fd).slot;
    const w = spawnWriter('close', fd);
    expect(await withRun(w.result, run, T, 'the closer')).toMatchObject({ closed: true });
    expect(fd.closed).toBe(true);
    // The injector polls each eventfd in 50 ms slices: 3 s is ample and keeps the failing run short.
    await waitFor(() => vm.irqfds().length === 0, 3_000, `irqfd ${slot} to go away after its eventfd was closed (state ${raw(vm, slot).state}; HUP = ${IRQFD_HUP})`, run);
    const fd2 = new EventFd();
    vm.irqfd({ fd: fd2, gsi: gsiOf(SPI) });
    expect(vm.irqfds()).toHaveLength(1);
  });

  it('vm.destroy() releases irqfds first, and unbinds the eventfds: they can serve a new VM', async () => {
    const SPI = 49;
    const { vm, run, acks } = await bootEcho([SPI]);
    const fd = new EventFd();
    const rfd = new EventFd();
    const lvl = new EventFd();
    vm.irqfd({ fd, gsi: gsiOf(SPI) });
    vm.irqfd({ fd: lvl, gsi: gsiOf(SPI) + 1, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    fd.write(1n);
    await waitFor(() => acks(SPI) === 1, T, 'an ack before teardown', run);
    expect(fd.wakeBinding()).not.toBeNull();
    await within(vm.destroy(), T, 'vm.destroy()');
    expect(vm.teardownLog.slice(0, 3)).toEqual(['irqfds', 'vcpus', 'vgic']);
    expect(fd.wakeBinding()).toBeNull();
    expect(lvl.wakeBinding()).toBeNull();
    // A signal now reaches no VM: it stays in the eventfd.
    fd.write(1n);
    expect(fd.value).toBe(1n);
    expect(acks(SPI)).toBe(1);

    const second = await bootEcho([SPI]);
    second.vm.irqfd({ fd, gsi: gsiOf(SPI) }); // no EBUSY
    second.vm.irqfd({ fd: lvl, gsi: gsiOf(SPI) + 1, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: rfd });
    // The count left in the eventfd is injected into the new VM (and only there).
    await waitFor(() => second.acks(SPI) === 1, T, 'the leftover count to reach the new VM', second.run);
    expect(acks(SPI)).toBe(1);
    expect(info(second.vm, fd)).toMatchObject({ consumed: 1, slowInjections: 1 });
  });
});
