/**
 * The in-kernel architected timer (kernel arch_timer.c; the guest side follows the kernel
 * selftest arm64/arch_timer.c and kvm-unit-tests arm/timer.c): a guest programs CVAL or TVAL,
 * enables the timer and WFIs; PPI 27 arrives as a HW-mapped level interrupt; the guest's
 * deactivation completes the host PPI, so a timer still firing interrupts again; IMASK withdraws
 * the line; the interrupt follows the timer registers across a save/restore.
 *
 * Real vCPU threads. Nothing sleeps: guests wait with WFI or by watching their own counter, the
 * host waits on vm.run() with a bound. Timing assertions are inequalities on counter values.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { guestFromFunction, type GuestCpu, CNTFRQ_HZ } from '../../../src/index.js';
import {
  KVM_REG_ARM_TIMER_CNT, KVM_REG_ARM_TIMER_CTL, KVM_REG_ARM_TIMER_CVAL, ARCH_TIMER_CTRL_ENABLE,
  ARCH_TIMER_CTRL_IT_MASK, ARCH_TIMER_CTRL_IT_STAT,
  KVM_ARM_IRQ_TYPE_SPI, kvmIrqLineField,
} from '../../../src/uapi/index.js';
import { IRQ } from '../../../src/shm/layouts.js';
import { irqOff } from '../../../src/shm/vm-memory.js';
import { build, buildV3, runAll, startRun, waitRam, withRun, within, VmTracker } from '../../helpers.js';

const vms = new VmTracker();
afterEach(() => vms.destroyAll());

/** CVAL = now + 2 ms, ENABLE, WFI until the handler ran; the handler disables the timer. */
const cvalWfiGuest = guestFromFunction((cpu: GuestCpu) => {
  cpu.initCpuInterface();
  cpu.driver.enableDistributor();
  cpu.driver.enable(27);
  const seen: { id: number; ctl: number; late: boolean }[] = [];
  let cval = 0n;
  cpu.onIrq((c) => {
    const id = c.iar();
    const ctl = Number(c.sysregRead('CNTV_CTL_EL0'));
    seen.push({ id, ctl, late: c.sysregRead('CNTVCT_EL0') >= cval });
    c.sysregWrite('CNTV_CTL_EL0', 0); // timer off: the line drops
    c.eoi(id);
  });
  // IRQs masked from here to the WFI: however slow this is, the interrupt cannot be taken before
  // the guest sleeps, so at least one WFI runs (and ends, at the latest, at expiry).
  cpu.disableIrqs();
  cval = cpu.sysregRead('CNTVCT_EL0') + 2_000_000n;
  cpu.sysregWrite('CNTV_CVAL_EL0', cval);
  cpu.sysregWrite('CNTV_CTL_EL0', 1);
  cpu.wfiUntil(() => seen.length > 0);
  // A few more boundaries: a disabled timer raises nothing more.
  for (let i = 0; i < 1000; i++) cpu.relax();
  return { seen, freq: Number(cpu.sysregRead('CNTFRQ_EL0')) };
});

describe('arch timer: CVAL, WFI, PPI 27', () => {
  it.each([3, 2] as const)('GICv%i: a guest WFIs until CVAL; PPI 27 arrives HW-mapped with ISTATUS set; it deactivates', async (model) => {
    const { vm } = vms.track(build(model, { vcpus: 1, guest: cvalWfiGuest }));
    const [r] = await runAll(vm, 20_000);
    const out = r!.result as { seen: { id: number; ctl: number; late: boolean }[]; freq: number };
    expect(out.freq).toBe(CNTFRQ_HZ);
    expect(out.seen).toEqual([{ id: 27, ctl: ARCH_TIMER_CTRL_ENABLE | ARCH_TIMER_CTRL_IT_STAT, late: true }]);
    const st = vm.vcpus[0]!.stats();
    expect(st.exits.wfi).toBeGreaterThanOrEqual(1);
    expect(st.deactivations + st.eois).toBeGreaterThanOrEqual(1);
    // kvm_timer_enable mapped the PPI to the host's vtimer PPI.
    const b = irqOff(vm.host.g, 0 * 32 + 27);
    expect(vm.host.m[b + IRQ.off.hw]).toBe(1);
    expect(vm.host.m[b + IRQ.off.hwintid]).toBe(27);
    expect(vm.host.m[b + IRQ.off.active]).toBe(0);
  });

  it('level semantics: while the guest keeps it active nothing re-fires; its DIR (EOImode=1) lets a still-firing timer interrupt again', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.setEoiMode(true);
      cpu.driver.enableDistributor(); // first: a PPI asserted while it is off is never queued (spec §3.8)
      cpu.driver.enable(27);
      let fired = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        fired++;
        if (fired === 2) c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id); // priority drop only: still active
      });
      cpu.sysregWrite('CNTV_CVAL_EL0', cpu.sysregRead('CNTVCT_EL0') + 1_000_000n);
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      cpu.enableIrqs();
      cpu.wfiUntil(() => fired > 0);
      // The timer condition still holds, but the interrupt is active (virtual and physical):
      // 2 ms of the guest's own time pass without a second delivery.
      const until = cpu.sysregRead('CNTVCT_EL0') + 2_000_000n;
      while (cpu.sysregRead('CNTVCT_EL0') < until) cpu.relax();
      const whileActive = fired;
      const istatus = (Number(cpu.sysregRead('CNTV_CTL_EL0')) & 4) !== 0;
      cpu.dir(27); // deactivate the HW LR: the host PPI is no longer active
      cpu.wfiUntil(() => fired >= 2);
      cpu.dir(27);
      for (let i = 0; i < 1000; i++) cpu.relax();
      return { whileActive, istatus, fired };
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest }));
    const [r] = await runAll(vm, 20_000);
    expect(r!.result).toEqual({ whileActive: 1, istatus: true, fired: 2 });
  });
});

describe('arch timer: DIR trapped with the timer interrupt outside the LRs (mainline, one LR)', () => {
  it('the host deactivates the HW-mapped PPI (the physical active state clears), so the still-firing timer interrupts again', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, a: { spi: number }) => {
      cpu.initCpuInterface();
      cpu.setEoiMode(true);
      cpu.driver.enableDistributor();
      cpu.driver.setPriority(a.spi, 0x80); // the SPI outranks the timer: it keeps the one LR
      cpu.driver.route(a.spi, 0);
      cpu.driver.enable(a.spi);
      cpu.driver.setPriority(27, 0xa0);
      cpu.driver.enable(27);
      const taken: number[] = [];
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        taken.push(id);
        c.eoi(id); // EOImode=1: priority drop only, the interrupt stays active
      });
      cpu.store(0, 1); // ready for the SPI
      cpu.enableIrqs();
      cpu.wfiUntil(() => taken.includes(a.spi));
      cpu.sysregWrite('CNTV_CVAL_EL0', cpu.sysregRead('CNTVCT_EL0') + 1_000_000n);
      cpu.sysregWrite('CNTV_CTL_EL0', 1); // fires in 1 ms and keeps firing (never disabled)
      cpu.wfiUntil(() => taken.includes(27));
      // A trapped access is an exit and an entry: the re-flush sorts the two actives by priority,
      // the SPI takes the one LR and the timer's PPI lives outside it, so TDIR is set.
      cpu.mmioRead(cpu.gicdBase + 0x8);
      cpu.dir(27); // not in an LR: traps; the host deactivates it, physical active state included
      // The timer condition still holds: with its host PPI no longer active it fires again.
      const until = cpu.sysregRead('CNTVCT_EL0') + 200_000_000n; // a bound in guest time, 200 ms
      while (taken.filter((i) => i === 27).length < 2 && cpu.sysregRead('CNTVCT_EL0') < until) cpu.relax();
      const timerIrqs = taken.filter((i) => i === 27).length;
      cpu.sysregWrite('CNTV_CTL_EL0', 0);
      cpu.disableIrqs();
      cpu.dir(a.spi);
      if (timerIrqs > 1) cpu.dir(27);
      return { timerIrqs, first: taken[0] };
    });
    const once = async (nrLr: number): Promise<{ result: unknown; sysregExits: number }> => {
      const { vm } = vms.track(buildV3({ vcpus: 1, guest, args: { spi: 40 }, vm: { nrLr } }));
      const run = startRun(vm);
      await waitRam(vm, 0, 10_000, 'the guest to be ready for the SPI', run);
      vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, 40), 1);
      const [r] = await within(run.promise, 20_000, 'the guest to return');
      return { result: r!.result, sysregExits: vm.vcpus[0]!.stats().exits.sysreg };
    };
    // One LR: the first DIR of the timer's PPI traps (a sysreg exit) and the host completes it.
    const one = await once(1);
    expect(one.result).toEqual({ timerIrqs: 2, first: 40 });
    expect(one.sysregExits).toBeGreaterThanOrEqual(1);
    // Control: with four LRs both actives fit, no DIR traps, and the LR's deactivation does it.
    const four = await once(4);
    expect(four.result).toEqual({ timerIrqs: 2, first: 40 });
    expect(four.sysregExits).toBe(0);
  });
});

describe('arch timer: the physical timer beside the virtual one', () => {
  it('CNTP_* (PPI 30, CNTPCT) and CNTV_* (PPI 27, CNTVCT) both armed: each fires once, at or after its own CVAL', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.driver.enableDistributor();
      cpu.driver.enable(27);
      cpu.driver.enable(30);
      const got: { id: number; late: boolean }[] = [];
      let cvalV = 0n;
      let cvalP = 0n;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        const p = id === 30;
        const now = c.sysregRead(p ? 'CNTPCT_EL0' : 'CNTVCT_EL0');
        got.push({ id, late: now >= (p ? cvalP : cvalV) });
        c.sysregWrite(p ? 'CNTP_CTL_EL0' : 'CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      cvalP = cpu.sysregRead('CNTPCT_EL0') + 1_000_000n;
      cvalV = cpu.sysregRead('CNTVCT_EL0') + 2_000_000n;
      cpu.sysregWrite('CNTP_CVAL_EL0', cvalP);
      cpu.sysregWrite('CNTV_CVAL_EL0', cvalV);
      cpu.sysregWrite('CNTP_CTL_EL0', 1);
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      cpu.wfiUntil(() => got.length >= 2);
      for (let i = 0; i < 1000; i++) cpu.relax();
      // The physical counter has no offset, the virtual one counts from vCPU creation.
      const ahead = cpu.sysregRead('CNTPCT_EL0') > cpu.sysregRead('CNTVCT_EL0');
      return { got: got.sort((x, y) => x.id - y.id), ahead };
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest }));
    const [r] = await runAll(vm, 20_000);
    expect(r!.result).toEqual({ got: [{ id: 27, late: true }, { id: 30, late: true }], ahead: true });
    const b = irqOff(vm.host.g, 30);
    expect([vm.host.m[b + IRQ.off.hw], vm.host.m[b + IRQ.off.hwintid]]).toEqual([1, 30]);
  });
});

describe('arch timer: TVAL and IMASK', () => {
  it('TVAL counts down through zero; CVAL = counter + TVAL; with IMASK the expired timer interrupts only once unmasked', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.driver.enableDistributor(); // first: a PPI asserted while it is off is never queued (spec §3.8)
      cpu.driver.enable(27);
      let fired = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        fired++;
        c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      cpu.enableIrqs();
      const TV = 3_000_000;
      cpu.sysregWrite('CNTV_CTL_EL0', 3); // ENABLE | IMASK
      const before = cpu.sysregRead('CNTVCT_EL0');
      cpu.sysregWrite('CNTV_TVAL_EL0', TV);
      const after = cpu.sysregRead('CNTVCT_EL0');
      const cval = cpu.sysregRead('CNTV_CVAL_EL0');
      const cvalOk = cval >= before + BigInt(TV) && cval <= after + BigInt(TV);
      let prev = TV;
      let monotonic = true;
      let first = 0;
      let reads = 0;
      let tv = 0;
      for (;;) {
        tv = Number(cpu.sysregRead('CNTV_TVAL_EL0')) | 0; // a signed 32-bit count-down
        if (reads++ === 0) first = tv;
        if (tv > prev) monotonic = false;
        prev = tv;
        if (tv < 0) break;
      }
      const ctlMasked = Number(cpu.sysregRead('CNTV_CTL_EL0'));
      for (let i = 0; i < 1000; i++) cpu.relax(); // expired but masked: no interrupt
      const firedMasked = fired;
      cpu.sysregWrite('CNTV_CTL_EL0', 1); // unmask
      cpu.wfiUntil(() => fired > 0);
      return { cvalOk, monotonic, firstBelowTv: first <= TV, ctlMasked, firedMasked, fired };
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest }));
    const [r] = await runAll(vm, 20_000);
    expect(r!.result).toEqual({
      cvalOk: true,
      monotonic: true,
      firstBelowTv: true,
      ctlMasked: ARCH_TIMER_CTRL_ENABLE | ARCH_TIMER_CTRL_IT_MASK | ARCH_TIMER_CTRL_IT_STAT,
      firedMasked: 0,
      fired: 1,
    });
  });

  it('the line follows IMASK: a pending timer interrupt masked before it is taken is withdrawn at the next exit', async () => {
    const guest = guestFromFunction((cpu: GuestCpu, a: { userGpa: number }) => {
      cpu.initCpuInterface();
      cpu.driver.enableDistributor(); // first: a PPI asserted while it is off is never queued (spec §3.8)
      cpu.driver.enable(27);
      let fired = 0;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        fired++;
        c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      // PSTATE.I masked: the timer fires, the vgic queues PPI 27, the guest does not take it.
      cpu.sysregWrite('CNTV_CVAL_EL0', cpu.sysregRead('CNTVCT_EL0'));
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      let pendingBefore = cpu.hppir();
      while (pendingBefore !== 27) {
        cpu.mmioRead(a.userGpa); // an exit: flush whatever was queued
        pendingBefore = cpu.hppir();
      }
      cpu.sysregWrite('CNTV_CTL_EL0', 3); // IMASK: the timer output drops
      cpu.mmioRead(a.userGpa); // exit: fold re-samples the line (get_input_level) and drops it
      const pendingMasked = cpu.hppir();
      cpu.enableIrqs();
      for (let i = 0; i < 1000; i++) cpu.relax();
      const firedMasked = fired;
      cpu.sysregWrite('CNTV_CTL_EL0', 1); // unmask: still expired, it fires again
      cpu.wfiUntil(() => fired > 0);
      return { pendingBefore, pendingMasked, firedMasked, fired };
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest, args: { userGpa: 0x0900_0000 } }));
    const [r] = await runAll(vm, 20_000);
    expect(r!.result).toEqual({ pendingBefore: 27, pendingMasked: 1023, firedMasked: 0, fired: 1 });
  });
});

describe('arch timer: save/restore', () => {
  it('the interrupt follows the vCPU across KVM_GET/SET_ONE_REG of CTL, CNT, CVAL into a new VM', async () => {
    // VM A: program the timer 5 ms ahead and stop (the VMM saves the vCPU).
    const arm = guestFromFunction((cpu: GuestCpu) => {
      const cval = cpu.sysregRead('CNTVCT_EL0') + 5_000_000n;
      cpu.sysregWrite('CNTV_CVAL_EL0', cval);
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      return cval.toString();
    });
    const a = vms.track(buildV3({ vcpus: 1, guest: arm }));
    const [ra] = await runAll(a.vm, 20_000);
    const cvalA = BigInt(ra!.result as string);
    const va = a.vm.vcpus[0]!;
    const saved = {
      ctl: va.getOneReg(KVM_REG_ARM_TIMER_CTL),
      cnt: va.getOneReg(KVM_REG_ARM_TIMER_CNT),
      cval: va.getOneReg(KVM_REG_ARM_TIMER_CVAL),
    };
    expect(saved.cval).toBe(cvalA);
    expect(saved.ctl & 3n).toBe(1n);
    // VM B: restore, and let a guest that never touches the timer wait for its interrupt.
    const wait = guestFromFunction((cpu: GuestCpu) => {
      const start = cpu.sysregRead('CNTVCT_EL0');
      cpu.initCpuInterface();
      cpu.driver.enableDistributor(); // first: a PPI asserted while it is off is never queued (spec §3.8)
      cpu.driver.enable(27);
      let at = -1n;
      let id = 0;
      cpu.onIrq((c) => {
        id = c.iar();
        if (id === 1023) return;
        at = c.sysregRead('CNTVCT_EL0');
        c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      cpu.enableIrqs();
      cpu.wfiUntil(() => at >= 0n);
      return { start: start.toString(), at: at.toString(), id, cval: cpu.sysregRead('CNTV_CVAL_EL0').toString() };
    });
    const b = vms.track(buildV3({ vcpus: 1, guest: wait }));
    const vb = b.vm.vcpus[0]!;
    vb.setOneReg(KVM_REG_ARM_TIMER_CNT, saved.cnt);
    vb.setOneReg(KVM_REG_ARM_TIMER_CVAL, saved.cval);
    vb.setOneReg(KVM_REG_ARM_TIMER_CTL, saved.ctl);
    expect(vb.getOneReg(KVM_REG_ARM_TIMER_CNT)).toBeGreaterThanOrEqual(saved.cnt);
    const [rb] = await runAll(b.vm, 20_000);
    const out = rb!.result as { start: string; at: string; id: number; cval: string };
    expect(out.id).toBe(27);
    expect(BigInt(out.cval)).toBe(cvalA);
    expect(BigInt(out.start)).toBeGreaterThanOrEqual(saved.cnt); // time continued, not restarted
    expect(BigInt(out.at)).toBeGreaterThanOrEqual(cvalA);
  });

  it('mid-WFI: the VMM takes the vCPU out of KVM_RUN, saves the timer, disarms it, restores it with time moved on; the WFI ends at CVAL', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.driver.enableDistributor();
      cpu.driver.enable(27);
      let at = -1n;
      cpu.onIrq((c) => {
        const id = c.iar();
        if (id === 1023) return;
        at = c.sysregRead('CNTVCT_EL0');
        c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      const cval = cpu.sysregRead('CNTVCT_EL0') + 3_600_000_000_000n; // an hour ahead
      cpu.sysregWrite('CNTV_CVAL_EL0', cval);
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      cpu.store(0, 1); // ARMED
      cpu.wfiUntil(() => at >= 0n);
      return { at: at.toString(), cval: cval.toString() };
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest }));
    const run = startRun(vm);
    await waitRam(vm, 0, 20_000, 'the guest to arm its timer', run);
    const v = vm.vcpus[0]!;
    expect((await v.interrupt()).exitReason).not.toBeNull();
    const saved = { ctl: v.getOneReg(KVM_REG_ARM_TIMER_CTL), cval: v.getOneReg(KVM_REG_ARM_TIMER_CVAL) };
    expect(saved.ctl).toBe(1n); // enabled, not expired
    v.setOneReg(KVM_REG_ARM_TIMER_CTL, 0n); // as a reset would leave it
    v.setOneReg(KVM_REG_ARM_TIMER_CVAL, 0n);
    // Restore, with the counter where it would be just before expiry (the VM was paused long).
    v.setOneReg(KVM_REG_ARM_TIMER_CNT, saved.cval - 1000n);
    v.setOneReg(KVM_REG_ARM_TIMER_CVAL, saved.cval);
    v.setOneReg(KVM_REG_ARM_TIMER_CTL, saved.ctl);
    v.resume();
    const [r] = await withRun(run.promise, run, 20_000, 'the guest to take its restored timer interrupt');
    const out = r!.result as { at: string; cval: string };
    expect(BigInt(out.cval)).toBe(saved.cval);
    expect(BigInt(out.at)).toBeGreaterThanOrEqual(saved.cval);
  });
});
