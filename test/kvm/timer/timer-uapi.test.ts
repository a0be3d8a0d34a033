/**
 * The timer's userspace interface (kernel arch_timer.c kvm_arm_timer_{set,get,has}_attr,
 * timer_irqs_are_valid; sys_regs.c arch_timer_{get,set}_user; uapi asm/kvm.h numbers):
 * KVM_ARM_VCPU_TIMER_CTRL attributes on a vCPU fd and the KVM_REG_ARM_[P]TIMER_* ONE_REG ids.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, type GuestCpu } from '../../../src/index.js';
import {
  KVM_ARM_VCPU_PMU_V3_CTRL, KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_HPTIMER, KVM_ARM_VCPU_TIMER_IRQ_HVTIMER,
  KVM_ARM_VCPU_TIMER_IRQ_PTIMER, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, KVM_REG_ARM_PTIMER_CNT, KVM_REG_ARM_PTIMER_CTL,
  KVM_REG_ARM_TIMER_CNT, KVM_REG_ARM_TIMER_CTL, KVM_REG_ARM_TIMER_CVAL, KVM_REG_ARM_PTIMER_CVAL, arm64SysReg,
  KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../../src/uapi/index.js';
import { IRQ } from '../../../src/shm/layouts.js';
import { irqOff } from '../../../src/shm/vm-memory.js';
import { buildV3, expectErrno, expectErrnoAsync, runAll, V3_DIST, V3_REDIST, VmTracker } from '../../helpers.js';

const vms = new VmTracker();
afterEach(() => vms.destroyAll());

const G = KVM_ARM_VCPU_TIMER_CTRL;

describe('KVM_ARM_VCPU_TIMER_CTRL', () => {
  it('uapi numbers and ids', () => {
    expect([KVM_ARM_VCPU_PMU_V3_CTRL, KVM_ARM_VCPU_TIMER_CTRL]).toEqual([0, 1]);
    expect([KVM_ARM_VCPU_TIMER_IRQ_VTIMER, KVM_ARM_VCPU_TIMER_IRQ_PTIMER, KVM_ARM_VCPU_TIMER_IRQ_HVTIMER, KVM_ARM_VCPU_TIMER_IRQ_HPTIMER]).toEqual([0, 1, 2, 3]);
    // ARM64_SYS_REG(3, 3, 14, crm, op2); TIMER_CVAL and TIMER_CNT carry each other's encoding (ABI).
    expect(KVM_REG_ARM_TIMER_CTL).toBe(0x603000000013df19n);
    expect(KVM_REG_ARM_TIMER_CVAL).toBe(0x603000000013df02n);
    expect(KVM_REG_ARM_TIMER_CNT).toBe(0x603000000013df1an);
    expect(KVM_REG_ARM_PTIMER_CTL).toBe(0x603000000013df11n);
    expect(KVM_REG_ARM_PTIMER_CVAL).toBe(0x603000000013df12n);
    expect(KVM_REG_ARM_PTIMER_CNT).toBe(0x603000000013df01n);
  });

  it('defaults 27/30 (and 28/26); has_attr; unknown groups and attributes are ENXIO', () => {
    const { vm } = vms.track(buildV3({ vcpus: 2 }));
    const v = vm.vcpus[0]!;
    expect([0, 1, 2, 3].map((a) => v.getAttr(G, a))).toEqual([27, 30, 28, 26]);
    for (const a of [0, 1, 2, 3]) v.hasAttr(G, a);
    expectErrno(() => v.hasAttr(G, 4), 'ENXIO');
    expectErrno(() => v.getAttr(G, 4), 'ENXIO');
    expectErrno(() => v.hasAttr(KVM_ARM_VCPU_PMU_V3_CTRL, 0), 'ENXIO');
    expectErrno(() => v.setAttr(7, 0, 20), 'ENXIO');
  });

  it('set: one VM-wide PPI per timer; EINVAL for a non-PPI (checked before the attribute), EFAULT for a non-int', () => {
    const { vm } = vms.track(buildV3({ vcpus: 2 }));
    const [v0, v1] = vm.vcpus;
    v0!.setAttr(G, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, 20);
    v1!.setAttr(G, KVM_ARM_VCPU_TIMER_IRQ_PTIMER, 21);
    expect([v1!.getAttr(G, 0), v0!.getAttr(G, 1)]).toEqual([20, 21]);
    expectErrno(() => v0!.setAttr(G, 0, 15), 'EINVAL');
    expectErrno(() => v0!.setAttr(G, 0, 32), 'EINVAL');
    expectErrno(() => v0!.setAttr(G, 9, 40), 'EINVAL');
    expectErrno(() => v0!.setAttr(G, 9, 20), 'ENXIO');
    expectErrno(() => v0!.setAttr(G, 0, 20.5), 'EFAULT');
    expect(v0!.getAttr(G, 0)).toBe(20);
  });

  it('without an in-kernel irqchip setting is EINVAL (reading works)', async () => {
    const vm = vms.track(createVm());
    const v = vm.createVcpu(0);
    expectErrno(() => v.setAttr(G, 0, 20), 'EINVAL');
    expect(v.getAttr(G, 0)).toBe(27);
  });

  it('the first run validates (clashing PPIs: KVM_RUN is EINVAL) and then fixes them (EBUSY)', async () => {
    const bad = vms.track(buildV3({ vcpus: 1 }));
    bad.vm.vcpus[0]!.setAttr(G, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, 30);
    await expectErrnoAsync(bad.vm.run(), 'EINVAL');
    // Not yet immutable: the VMM may fix the configuration.
    bad.vm.vcpus[0]!.setAttr(G, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, 27);

    const ok = vms.track(buildV3({ vcpus: 2 }));
    await runAll(ok.vm);
    expectErrno(() => ok.vm.vcpus[1]!.setAttr(G, 0, 20), 'EBUSY');
  });

  it('a guest sees its timer on the configured PPI, HW-mapped to the host vtimer PPI 27', async () => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      cpu.driver.enableDistributor();
      cpu.driver.enable(20);
      let id = 0;
      cpu.onIrq((c) => {
        id = c.iar();
        if (id === 1023) return;
        c.sysregWrite('CNTV_CTL_EL0', 0);
        c.eoi(id);
      });
      cpu.sysregWrite('CNTV_TVAL_EL0', 100_000);
      cpu.sysregWrite('CNTV_CTL_EL0', 1);
      cpu.wfiUntil(() => id !== 0 && id !== 1023);
      return id;
    });
    const { vm } = vms.track(buildV3({ vcpus: 1, guest }));
    vm.vcpus[0]!.setAttr(G, KVM_ARM_VCPU_TIMER_IRQ_VTIMER, 20);
    const [r] = await runAll(vm);
    expect(r!.result).toBe(20);
    const b = irqOff(vm.host.g, 20);
    expect([vm.host.m[b + IRQ.off.hw], vm.host.m[b + IRQ.off.hwintid]]).toEqual([1, 27]);
  });
});

describe('ONE_REG timer registers', () => {
  it('CTL keeps ENABLE/IMASK (ISTATUS is read-only), CVAL round-trips 64 bits, unknown ids are ENOENT', () => {
    const { vm } = vms.track(buildV3({ vcpus: 1 }));
    const v = vm.vcpus[0]!;
    v.setOneReg(KVM_REG_ARM_TIMER_CVAL, 0xffff_ffff_ffff_fff0n); // never reached
    v.setOneReg(KVM_REG_ARM_TIMER_CTL, 0b111n);
    expect(v.getOneReg(KVM_REG_ARM_TIMER_CTL)).toBe(0b011n);
    expect(v.getOneReg(KVM_REG_ARM_TIMER_CVAL)).toBe(0xffff_ffff_ffff_fff0n);
    v.setOneReg(KVM_REG_ARM_TIMER_CVAL, 0n); // long past: ISTATUS
    v.setOneReg(KVM_REG_ARM_TIMER_CTL, 1n);
    expect(v.getOneReg(KVM_REG_ARM_TIMER_CTL)).toBe(0b101n);
    v.setOneReg(KVM_REG_ARM_PTIMER_CVAL, 12345n);
    expect(v.getOneReg(KVM_REG_ARM_PTIMER_CVAL)).toBe(12345n);
    expectErrno(() => v.getOneReg(arm64SysReg(3, 7, 15, 15, 7)), 'ENOENT');
    expectErrno(() => v.setOneReg(arm64SysReg(3, 7, 15, 15, 7), 0n), 'ENOENT');
  });

  it('writing CNT sets the VM-wide virtual offset; the physical counter is not moved by it', () => {
    const { vm } = vms.track(buildV3({ vcpus: 2 }));
    const [v0, v1] = vm.vcpus;
    const p0 = v0!.getOneReg(KVM_REG_ARM_PTIMER_CNT);
    const X = 1_000_000_000_000n;
    v0!.setOneReg(KVM_REG_ARM_TIMER_CNT, X);
    const a = v0!.getOneReg(KVM_REG_ARM_TIMER_CNT);
    const b = v1!.getOneReg(KVM_REG_ARM_TIMER_CNT);
    expect(a).toBeGreaterThanOrEqual(X);
    expect(b).toBeGreaterThanOrEqual(a); // the same offset on every vCPU, read later
    expect(b - X).toBeLessThan(60_000_000_000n); // and not some other time base (60 s bound)
    expect(v1!.getOneReg(KVM_REG_ARM_PTIMER_CNT)).toBeGreaterThanOrEqual(p0);
    expectErrno(() => v0!.setOneReg(KVM_REG_ARM_TIMER_CNT, 1n << 53n), 'EINVAL');
  });

  it('vCPU ids in any order: each handle reaches its own timer (vcpu_id vs creation index)', async () => {
    const vm = vms.track(createVm());
    const readCval = guestFromFunction((cpu: GuestCpu) => cpu.sysregRead('CNTV_CVAL_EL0').toString());
    vm.createVcpu(5, { guest: readCval });
    vm.createVcpu(2, { guest: readCval });
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    vm.vcpu(5)!.setOneReg(KVM_REG_ARM_TIMER_CVAL, 555n);
    vm.vcpu(2)!.setOneReg(KVM_REG_ARM_TIMER_CVAL, 222n);
    expect([vm.vcpu(5)!.getOneReg(KVM_REG_ARM_TIMER_CVAL), vm.vcpu(2)!.getOneReg(KVM_REG_ARM_TIMER_CVAL)]).toEqual([555n, 222n]);
    const rs = await runAll(vm);
    expect(Object.fromEntries(rs.map((r) => [r.vcpu, r.result]))).toEqual({ 5: '555', 2: '222' });
  });
});
