/**
 * Teardown and failure propagation: a guest fault stops the whole VM, destroy() is prompt even
 * with guests parked in WFI or spinning, and a lock-order violation surfaces as LockOrderError
 * (spec §2.1 order; lockdep is on in tests, VGIC_EMU_LOCKDEP=1).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GuestFault, LockOrderError, guestFromFunction, type GuestCpu } from '../../src/index.js';
import { VmTracker, build, expectErrno, spiLine, startRun, waitFor, waitRam, within } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

/** vCPU 0 throws once every other vCPU is spinning; the others spin forever (relax loop). */
const faultingGuest = guestFromFunction(function faultingGuest(cpu: GuestCpu) {
  if (cpu.id !== 0) {
    cpu.add(0, 1);
    for (;;) {
      cpu.add(1, 1); // heartbeat
      cpu.relax();
    }
  }
  while (cpu.load(0) < cpu.nrVcpus - 1) cpu.relax();
  throw new Error('boom: guest bug on purpose');
});

describe('a faulting guest', () => {
  it.each([3, 2] as const)('GICv%i: run() rejects with GuestFault (vCPU id, guest stack); spinning vCPUs stop; destroy resolves', async (model) => {
    const { vm } = tracker.track(build(model, { vcpus: 3, guest: faultingGuest }));
    const t0 = Date.now();
    let err: unknown;
    try {
      await within(vm.run(), 10_000, 'run() to reject after the guest fault');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestFault);
    const f = err as GuestFault;
    expect(f.vcpu).toBe(0);
    expect(f.message).toContain('boom: guest bug on purpose');
    expect(f.guestStack).toContain('faultingGuest');
    expect(f.stack).toContain('faultingGuest');
    // run() settles only once every vCPU's KVM_RUN returned: the spinners were stopped.
    await within(Promise.all(vm.vcpus.map((v) => v.idle())), 1000, 'every vCPU to be idle after the fault');
    const beat = Atomics.load(vm.ram, 1);
    expect(beat).toBeGreaterThan(0); // they really were spinning
    await within(vm.destroy(), 2500, 'destroy() after a guest fault');
    expect(Atomics.load(vm.ram, 1)).toBe(beat); // and nothing runs any more
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('a fault on a non-zero vCPU is attributed to that vCPU', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      if (cpu.id === 2) {
        while (cpu.load(0) < 2) cpu.relax();
        throw new TypeError('vcpu two fails');
      }
      cpu.add(0, 1);
      for (;;) cpu.relax();
    });
    const { vm } = tracker.track(build(3, { vcpus: 3, guest }));
    let err: unknown;
    try {
      await within(vm.run(), 10_000, 'run() to reject');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestFault);
    expect((err as GuestFault).vcpu).toBe(2);
    expect((err as GuestFault).message).toContain('vcpu two fails');
  });
});

describe('destroy()', () => {
  it.each([3, 2] as const)('GICv%i: returns promptly while every guest sleeps in WFI; their runs end as "stopped"', async (model) => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.add(0, 1);
      for (;;) cpu.wfi(); // nothing will ever be pending
    });
    const { vm } = tracker.track(build(model, { vcpus: 4, guest }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'all guests to start', run, (v) => v === 4);
    await waitFor(() => vm.vcpus.every((v) => v.stats().wfi >= 1), 10_000, 'every vCPU to enter WFI', run);
    // Let them actually park (halt polling ends after at most ~50 µs): wait for the park counter.
    await waitFor(() => vm.vcpus.every((v) => v.stats().wfiParked >= 1), 10_000, 'every vCPU to park in WFI', run);
    const t0 = performance.now();
    await within(vm.destroy(), 1500, 'destroy() with every vCPU parked in WFI');
    expect(performance.now() - t0).toBeLessThan(1500);
    const res = await within(run.promise, 1000, 'the runs to settle after destroy');
    expect(res.map((r) => r.reason)).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
  });

  it('returns promptly while guests spin without ever touching the GIC', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.add(0, 1);
      for (;;) cpu.relax();
    });
    const { vm } = tracker.track(build(3, { vcpus: 2, guest }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'both guests to spin', run, (v) => v === 2);
    await within(vm.destroy(), 1500, 'destroy() with spinning guests');
    const res = await within(run.promise, 1000, 'the runs to settle after destroy');
    expect(res.map((r) => r.reason)).toEqual(['stopped', 'stopped']);
  });

  it('is idempotent, and the VM refuses ioctls afterwards (EBADF: its fd is closed)', async () => {
    const { vm } = build(3, { vcpus: 1 });
    await vm.destroy();
    await within(vm.destroy(), 1000, 'a second destroy()');
    expectErrno(() => vm.irqLine(spiLine(40), 1), 'EBADF');
  });
});

describe('lock-order violations (bug seed apListInsideIrqLock)', () => {
  const readyGuest = guestFromFunction((cpu: GuestCpu, args: { spi: number }) => {
    cpu.initCpuInterface();
    cpu.driver.setPriority(args.spi, 0x80);
    cpu.driver.route(args.spi, 0);
    cpu.driver.enable(args.spi);
    cpu.driver.enableDistributor();
    cpu.onIrq((c) => {
      const id = c.iar();
      if (id !== 1023) c.eoi(id);
    });
    cpu.enableIrqs();
    cpu.store(0, 1);
    while (cpu.load(2) === 0) cpu.relax();
    return cpu.id;
  });

  it('KVM_IRQ_LINE on the main thread throws LockOrderError naming ap_list_lock and irq_lock', async () => {
    const spi = 40;
    const { vm } = tracker.track(build(3, { vcpus: 1, guest: readyGuest, args: { spi }, vm: { bugs: ['apListInsideIrqLock'], lockdep: true } }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'the guest to enable the SPI', run);
    let err: unknown;
    try {
      vm.irqLine(spiLine(spi), 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockOrderError);
    const report = (err as LockOrderError).report;
    expect(report).toMatch(/ap_list_lock/);
    expect(report).toMatch(/irq_lock/);
    await within(vm.destroy(), 5000, 'destroy() after the lock-order error');
  });

  it('an injection from a vCPU (SGI) makes run() reject with LockOrderError carrying the vCPU id', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      if (cpu.id === 0) cpu.driver.enableDistributor();
      cpu.add(0, 1);
      while (cpu.load(0) < cpu.nrVcpus) cpu.relax();
      if (cpu.id === 1) cpu.sendSgi(2, [0]);
      for (;;) cpu.relax();
    });
    const { vm } = tracker.track(build(3, { vcpus: 2, guest, vm: { bugs: ['apListInsideIrqLock'], lockdep: true } }));
    let err: unknown;
    try {
      await within(vm.run(), 10_000, 'run() to reject with the lock-order error');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockOrderError);
    expect((err as LockOrderError & { vcpu: number }).vcpu).toBe(1);
    expect((err as LockOrderError).report).toMatch(/ap_list_lock/);
    expect((err as LockOrderError).report).toMatch(/irq_lock/);
  });

  it('control: the same injection without the seed raises no error and is delivered', async () => {
    const spi = 40;
    const { vm } = tracker.track(build(3, { vcpus: 1, guest: readyGuest, args: { spi }, vm: { lockdep: true } }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'the guest to enable the SPI', run);
    vm.irqLine(spiLine(spi), 1);
    await waitFor(() => vm.vcpus[0]!.stats().acks >= 1, 10_000, 'the SPI to be acknowledged', run);
    Atomics.store(vm.ram, 2, 1);
    await within(run.promise, 10_000, 'the guest to return');
  });
});
