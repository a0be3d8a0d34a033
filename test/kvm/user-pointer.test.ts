/**
 * Every entry point where the kernel reads through a user pointer (attr->addr of a device
 * attribute, the struct behind KVM_IRQFD / KVM_SIGNAL_MSI / KVM_SET_GSI_ROUTING / KVM_IRQ_LINE):
 * a value that is not there fails the way copy_from_user / get_user does, with EFAULT, never
 * with a TypeError. Each row is built on a VM where the call is otherwise valid, so EFAULT is the
 * only possible error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, EventFd, type KvmDevice, type Vm, type KvmMsi } from '../../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_VFIO,
  KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
  KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_ITS_ADDR_TYPE, KVM_DEV_VFIO_FILE,
  KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ,
  KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT, KVM_IRQFD_FLAG_DEASSIGN,
} from '../../src/uapi/index.js';
import { KvmError } from '../../src/uapi/errno.js';
import { V3_DIST, V3_REDIST, VmTracker, expectErrno, spiLine } from '../helpers.js';
import type { RoutingEntry } from '../../src/vgic/irq-routing.js';
import type { KvmIrqfd } from '../../src/kvm/irqfd.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const ICC_PMR_EL1 = (3 << 14) | (0 << 11) | (4 << 7) | (6 << 3) | 0;
const LINE_LEVEL = 0n << BigInt(KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT);
const ITS_BASE = 0x0808_0000n;

interface World {
  vm: Vm;
  gic: KvmDevice;
  v2: KvmDevice;
  its: KvmDevice;
  vfio: KvmDevice;
}

/** A GICv3 VM (vCPU 0, initialised, with an ITS), a GICv2 device on another VM, a KVM VFIO device. */
function world(): World {
  const vm = tracker.track(createVm({ maxVcpus: 2 }));
  vm.createVcpu(0);
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  const vm2 = tracker.track(createVm({ maxVcpus: 2 }));
  vm2.createVcpu(0);
  const v2 = vm2.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
  return { vm, gic, v2, its, vfio: vm.createDevice(KVM_DEV_TYPE_VFIO) };
}

type Missing = null | undefined;
const MISSING: readonly Missing[] = [null, undefined];
const nothing = (m: Missing): never => m as never;

/** [name, call with the pointed-to value missing]. */
const ROWS: [string, (w: World, m: Missing) => unknown][] = [
  ['vgic ADDR set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, m)],
  ['vgic NR_IRQS set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, m)],
  ['vgic DIST_REGS set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x100, m)],
  ['vgic REDIST_REGS set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, 0x10100, m)],
  ['vgic CPU_SYSREGS set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, ICC_PMR_EL1, m)],
  ['vgic LEVEL_INFO set', (w, m) => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, LINE_LEVEL | 32n, m)],
  ['GICv2 ADDR set', (w, m) => w.v2.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, m)],
  ['GICv2 CPU_REGS set', (w, m) => w.v2.setAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, 0x4, m)],
  ['ITS ADDR set', (w, m) => w.its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, m)],
  ['ITS ITS_REGS set', (w, m) => w.its.setAttr(KVM_DEV_ARM_VGIC_GRP_ITS_REGS, 0x8, m)],
  ['KVM VFIO FILE_ADD', (w, m) => w.vfio.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, m)],
  ['KVM VFIO FORWARD_IRQ', (w, m) => w.vfio.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, m)],
  ['KVM_IRQFD', (w, m) => w.vm.irqfd(nothing(m) as KvmIrqfd)],
  ['KVM_SIGNAL_MSI', (w, m) => w.vm.signalMsi(nothing(m) as KvmMsi)],
  ['KVM_SET_GSI_ROUTING', (w, m) => w.vm.setGsiRouting(nothing(m) as RoutingEntry[])],
  ['KVM_SET_GSI_ROUTING entry', (w, m) => w.vm.setGsiRouting([nothing(m) as RoutingEntry])],
  ['KVM_IRQ_LINE irq', (w, m) => w.vm.irqLine(nothing(m) as number, 1)],
  ['KVM_IRQ_LINE level', (w, m) => w.vm.irqLine(spiLine(40), nothing(m) as number)],
  ['eventfd write(2)', (_w, m) => new EventFd().write(nothing(m) as bigint)],
];

describe('a missing user value is EFAULT at every user-pointer entry point', () => {
  it.each(ROWS)('%s', (_name, call) => {
    const w = world();
    for (const m of MISSING) expectErrno(() => call(w, m), 'EFAULT');
  });

  it('a value that is there but of the wrong type (a string, an object, 1.5, NaN) is EINVAL naming the value, not a RangeError', () => {
    const w = world();
    for (const v of ['0x8000000', {}, 1.5, Number.NaN]) {
      expectErrno(() => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, v as never), 'EINVAL');
      expectErrno(() => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x100, v as never), 'EINVAL');
    }
  });

  it('a non-integer group or attr is EINVAL naming it, on every device, for set, get and has', () => {
    const w = world();
    for (const [group, attr, what] of [[1.5, 0, /group must be a u32/], [0, 1.5, /attr must be a u64/], [0, Number.NaN, /attr must be a u64/], [0, '0', /attr must be a u64/], [0, -1n, /attr must be a u64/]] as const) {
      for (const call of [() => w.gic.setAttr(group as number, attr as number, 0n), () => w.gic.getAttr(group as number, attr as number), () => w.gic.hasAttr(group as number, attr as number)]) {
        let err: unknown;
        try {
          call();
        } catch (e) {
          err = e;
        }
        expect((err as KvmError).code).toBe('EINVAL');
        expect((err as Error).message).toMatch(what);
      }
    }
  });

  it('get ADDR reads its in-value first: null is EFAULT; omitted means 0', () => {
    const w = world();
    expectErrno(() => w.gic.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, null), 'EFAULT');
    expect(w.gic.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST)).toBe(V3_DIST);
  });

  it('the ordering of the kernel: a register attr naming no vCPU is EINVAL before the value is read; CTRL reads no value', () => {
    const w = world();
    // vgic_v3_attr_regs_access: vgic_v3_parse_attr (EINVAL) before get_user (EFAULT).
    expectErrno(() => w.gic.setAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, (7n << 32n) | 0x10100n, null), 'EINVAL');
    w.its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_BASE);
    w.its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT); // no value: not an error
    // A well-formed struct still goes through (nothing else changed).
    const fd = { fd: null, gsi: 0, flags: KVM_IRQFD_FLAG_DEASSIGN } as unknown as KvmIrqfd;
    expectErrno(() => w.vm.irqfd(fd), 'EBADF');
  });
});
