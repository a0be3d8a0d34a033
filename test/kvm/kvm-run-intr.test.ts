/**
 * Taking a vCPU out of KVM_RUN from the host (a signal to QEMU's vCPU thread): KVM_RUN returns
 * -EINTR with KVM_EXIT_INTR, vcpu->mutex is released (so the VMM can do what needs every vCPU out
 * of KVM_RUN, such as the vgic register groups: lock_all_vcpus, EBUSY otherwise), and the thread
 * re-enters on resume with the guest continuing where it was.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { guestFromFunction, createVm } from '../../src/index.js';
import {
  KVM_ARM_IRQ_TYPE_PPI, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, KVM_EXIT_INTR, kvmIrqLineField,
} from '../../src/uapi/index.js';
import { ECHO } from '../../src/guest/builtins/irq-echo.js';
import { buildV3, expectErrno, pulseSpi, startRun, VmTracker, waitRam, within, useAccessChecking } from '../helpers.js';

// Real threads race here on purpose: every VM of this file checks its accesses (lockset).
useAccessChecking();

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const GICD_CTLR = 0n;
const SPI = 40;

function stopEcho(vm: ReturnType<typeof createVm>): void {
  Atomics.store(vm.ram, ECHO.STOP, 1);
  for (let v = 0; v < vm.vcpus.length; v++) vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, v, ECHO.DOORBELL_PPI), 1);
}

describe('KVM_RUN interrupted from the host (EINTR, KVM_EXIT_INTR)', () => {
  it.each(['fine', 'global'] as const)('%s: WFI guests leave KVM_RUN, the register groups open, nothing is lost, and they re-enter', async (locking) => {
    const { vm, gic } = tracker.track(buildV3({ vcpus: 2, guest: 'irq-echo', args: { spis: [SPI], forwardSgi: -1 }, vm: { locking } }));
    const run = startRun(vm);
    await waitRam(vm, ECHO.READY, 10_000, 'both guests to be ready', run, (v) => v === 2);
    // In KVM_RUN: every vcpu->mutex is held, so the DIST_REGS group cannot lock all vCPUs.
    expectErrno(() => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, GICD_CTLR), 'EBUSY');

    const outs = await within(Promise.all(vm.vcpus.map((c) => c.interrupt())), 10_000, 'both vCPUs to leave KVM_RUN');
    expect(outs).toEqual([{ exitReason: KVM_EXIT_INTR, errno: 'EINTR' }, { exitReason: KVM_EXIT_INTR, errno: 'EINTR' }]);
    expect(vm.vcpus.map((c) => c.interrupted)).toEqual([true, true]);
    expect(vm.vcpus.map((c) => c.stats().exits.intr)).toEqual([1, 1]);
    // Out of KVM_RUN: the VMM can save the distributor state (EnableGrp1A set by the guest).
    expect(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, GICD_CTLR) & 2n).toBe(2n);
    // An edge injected while paused stays pending in the distributor, and is taken after resume.
    pulseSpi(vm, SPI);
    expect(Atomics.load(vm.ram, ECHO.SPI_ACKS + SPI)).toBe(0);
    // A second interrupt() of a vCPU already out answers at once.
    await expect(vm.vcpus[0]!.interrupt()).resolves.toEqual({ exitReason: KVM_EXIT_INTR, errno: 'EINTR' });

    for (const c of vm.vcpus) c.resume();
    await waitRam(vm, ECHO.SPI_ACKS + SPI, 10_000, 'the SPI injected while paused to be acked after resume', run, (v) => v === 1);
    expect(vm.vcpus.map((c) => c.interrupted)).toEqual([false, false]);
    // Re-entered KVM_RUN: the mutexes are held again.
    expectErrno(() => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, GICD_CTLR), 'EBUSY');
    stopEcho(vm);
    const res = await within(run.promise, 10_000, 'the guests to return');
    expect(res.map((r) => r.reason)).toEqual(['shutdown', 'shutdown']);
    expect(Atomics.load(vm.ram, ECHO.SPI_ACKS + SPI)).toBe(1);
  });

  it('a spinning guest is taken out at an instruction boundary and does not run while out; it continues after resume', async () => {
    const spinner = guestFromFunction((cpu) => {
      cpu.store(0, 1);
      let n = 0;
      while (cpu.load(1) === 0) cpu.store(2, ++n);
      return n;
    });
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: spinner });
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'the guest to start spinning', run);
    await within(vm.vcpus[0]!.interrupt(), 10_000, 'the vCPU to leave KVM_RUN');
    const frozen = Atomics.load(vm.ram, 2);
    // The vCPU thread is parked in userspace: its guest cannot make progress, however long we look
    // (here: across another interrupt() round trip, which finds it still out).
    await expect(vm.vcpus[0]!.interrupt()).resolves.toEqual({ exitReason: KVM_EXIT_INTR, errno: 'EINTR' });
    expect(Atomics.load(vm.ram, 2)).toBe(frozen);
    vm.vcpus[0]!.resume();
    await waitRam(vm, 2, 10_000, 'the guest to continue after resume', run, (v) => v > frozen);
    Atomics.store(vm.ram, 1, 1);
    const [r] = await within(run.promise, 10_000, 'the guest to return');
    // The same guest program went on: its own count covers everything it stored before the pause.
    expect(r!.reason).toBe('shutdown');
    expect(r!.result as number).toBeGreaterThan(frozen);
    expect(vm.vcpus[0]!.stats().exits.intr).toBe(1);
  });

  it('no KVM_RUN in progress: nothing to interrupt, and no signal is left behind', async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: 'idle' });
    await expect(vm.vcpus[0]!.interrupt()).resolves.toEqual({ exitReason: null });
    const [r] = await within(vm.run(), 10_000, 'the idle guest to return');
    expect(r!.reason).toBe('shutdown');
    expect(vm.vcpus[0]!.stats().exits.intr).toBe(0);
  });

  it('destroy() while a vCPU is out of KVM_RUN ends its run as stopped, promptly', async () => {
    const { vm } = buildV3({ vcpus: 1, guest: 'irq-echo', args: {} });
    const run = startRun(vm);
    await waitRam(vm, ECHO.READY, 10_000, 'the guest to be ready', run);
    await within(vm.vcpus[0]!.interrupt(), 10_000, 'the vCPU to leave KVM_RUN');
    await within(vm.destroy(), 5_000, 'destroy with a vCPU out of KVM_RUN');
    const res = await within(run.promise, 5_000, 'the run to settle');
    expect(res.map((x) => x.reason)).toEqual(['stopped']);
  });
});

describe('KVM_RUN interrupted, vCPU ids out of creation order', () => {
  it('interrupt() and resume() act on the vCPU they are called on (its creation index, not its id)', async () => {
    const spinner = guestFromFunction((cpu) => {
      cpu.add(0, 1);
      while (cpu.load(1) === 0) cpu.relax();
    });
    const vm = tracker.track(createVm());
    vm.createVcpu(3, { guest: spinner });
    vm.createVcpu(0, { guest: spinner });
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'both guests to start', run, (v) => v === 2);
    const v0 = vm.vcpu(0)!;
    const v3 = vm.vcpu(3)!;
    await within(v0.interrupt(), 10_000, 'vCPU id 0 to leave KVM_RUN');
    expect([v0.interrupted, v3.interrupted]).toEqual([true, false]);
    expect([v0.stats().exits.intr, v3.stats().exits.intr]).toEqual([1, 0]);
    v0.resume();
    expect(v0.interrupted).toBe(false);
    Atomics.store(vm.ram, 1, 1);
    const res = await within(run.promise, 10_000, 'the guests to return');
    expect(res.map((r) => r.reason)).toEqual(['shutdown', 'shutdown']);
  });
});

describe('KVM_RUN interrupted while another vCPU halts the guest', () => {
  it('a GICD_ICACTIVER write on vCPU 0 (which halts every vCPU) completes while vCPU 1 is out of KVM_RUN', async () => {
    const guest = guestFromFunction((cpu, a: { spi: number }) => {
      cpu.initCpuInterface();
      cpu.add(0, 1);
      if (cpu.id === 0) {
        while (cpu.load(1) === 0) cpu.relax();
        // kvm_arm_halt_guest: every vCPU must be seen out of the guest, the one in userspace too.
        cpu.mmioWrite(cpu.gicdBase + 0x380 + 4 * (a.spi >> 5), 1 << (a.spi & 31));
        cpu.store(2, 1);
      } else {
        while (cpu.load(3) === 0) cpu.relax();
      }
    });
    const { vm } = tracker.track(buildV3({ vcpus: 2, guest, args: { spi: 40 } }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'both guests to start', run, (v) => v === 2);
    await within(vm.vcpus[1]!.interrupt(), 10_000, 'vCPU 1 to leave KVM_RUN');
    Atomics.store(vm.ram, 1, 1);
    await waitRam(vm, 2, 10_000, 'the ICACTIVER write (a guest halt) to complete with vCPU 1 out', run);
    vm.vcpus[1]!.resume();
    Atomics.store(vm.ram, 3, 1);
    const res = await within(run.promise, 10_000, 'the guests to return');
    expect(res.map((r) => r.reason)).toEqual(['shutdown', 'shutdown']);
  });
});
