/**
 * The vgic KVM device API (spec §7) and KVM_IRQ_LINE (spec §8.1): every rule and errno that applies
 * to the GICv2/GICv3 devices. Expected errnos come from the spec tables; numbers from the Linux
 * uapi (errno-base.h) and the arm64 kvm.h encodings.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createVm, guestFromFunction, KvmError, ERRNO, type GuestCpu, type Vm, type KvmDevice, type ErrnoName,
} from '../../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_FSL_MPIC_20, KVM_DEV_TYPE_XICS,
  KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES, KVM_VGIC_V2_ADDR_TYPE_DIST,
  KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, KVM_VGIC_V3_RDIST_COUNT_SHIFT, KVM_VGIC_V3_RDIST_FLAGS_SHIFT,
  KVM_VGIC_V3_REDIST_SIZE, KVM_VGIC_V3_DIST_SIZE, KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT, KVM_DEV_ARM_VGIC_CPUID_SHIFT,
  KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_SPI,
  KVM_ARM_IRQ_TYPE_SHIFT, VGIC_NR_IRQS_LEGACY, VGIC_NR_PRIVATE_IRQS, VGIC_V2_MAX_CPUS, kvmIrqLineField,
} from '../../src/uapi/index.js';
import {
  V2_CPU, V2_DIST, V3_DIST, V3_REDIST, VmTracker, buildV2, buildV3, expectErrno, expectErrnoAsync, runAll, spiLine,
  startRun, waitRam, within,
} from '../helpers.js';

const ADDR = KVM_DEV_ARM_VGIC_GRP_ADDR;
const NR_IRQS = KVM_DEV_ARM_VGIC_GRP_NR_IRQS;
const CTRL = KVM_DEV_ARM_VGIC_GRP_CTRL;
const ALL_ONES = (1n << 64n) - 1n;

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

function vmWith(nVcpus: number, opts: Parameters<typeof createVm>[0] = {}): Vm {
  const vm = tracker.track(createVm(opts));
  for (let i = 0; i < nVcpus; i++) vm.createVcpu(i);
  return vm;
}

/** REDIST_REGION value: count[63:52] | base[51:16] | flags[15:12] | index[11:0] (spec §7.6). */
function region(count: number, base: bigint, index: number, flags = 0): bigint {
  return (BigInt(count) << KVM_VGIC_V3_RDIST_COUNT_SHIFT) | base | (BigInt(flags) << KVM_VGIC_V3_RDIST_FLAGS_SHIFT) | BigInt(index);
}

/** A guest that raises RAM[0] and spins until RAM[1] is set (it holds its vcpu->mutex meanwhile). */
const spinUntilReleased = guestFromFunction((cpu: GuestCpu) => {
  cpu.store(0, 1);
  while (cpu.load(1) === 0) cpu.relax();
  return cpu.id;
});

describe('KvmError shape', () => {
  it("has Node's SystemError shape: code is the errno name, errno the negative Linux errno, syscall the ioctl", () => {
    const vm = vmWith(0);
    let e: unknown;
    try {
      vm.createDevice(0);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(KvmError);
    expect((e as KvmError).code).toBe('ENODEV');
    expect((e as KvmError).errno).toBe(-19); // ENODEV in errno-base.h
    expect((e as KvmError).syscall).toBe('KVM_CREATE_DEVICE');
    expect(ERRNO.EINVAL).toBe(22);
    expect(ERRNO.EBUSY).toBe(16);
    expect(ERRNO.ENXIO).toBe(6);
  });
});

describe('§7.1 device creation', () => {
  it.each([
    ['type 0', 0],
    ['an unknown type', 4242],
    ['a non-GIC device type (FSL MPIC)', KVM_DEV_TYPE_FSL_MPIC_20],
    ['a POWER device type (XICS)', KVM_DEV_TYPE_XICS],
  ])('createDevice(%s) -> ENODEV', (_n, type) => {
    const vm = vmWith(1);
    expectErrno(() => vm.createDevice(type), 'ENODEV');
    expectErrno(() => vm.createDevice(type, { test: true }), 'ENODEV');
  });

  it.each([
    ['v2', KVM_DEV_TYPE_ARM_VGIC_V2],
    ['v3', KVM_DEV_TYPE_ARM_VGIC_V3],
  ])('the test flag (%s) probes without creating: a real create still succeeds afterwards', (_n, type) => {
    const vm = vmWith(1);
    vm.createDevice(type, { test: true });
    vm.createDevice(type, { test: true });
    const gic = vm.createDevice(type);
    expect(gic.type).toBe(type);
  });

  it.each([
    ['v2 then v2', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V2],
    ['v3 then v3', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_ARM_VGIC_V3],
    ['v2 then v3', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3],
    ['v3 then v2', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_ARM_VGIC_V2],
  ])('only one GIC per VM (%s) -> EEXIST', (_n, first, second) => {
    const vm = vmWith(1);
    vm.createDevice(first);
    expectErrno(() => vm.createDevice(second), 'EEXIST');
  });

  it('GICv2 with more than 8 online vCPUs -> E2BIG; GICv3 accepts them; v2 with exactly 8 is fine', () => {
    const nine = vmWith(VGIC_V2_MAX_CPUS + 1, { maxVcpus: 16 });
    expectErrno(() => nine.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2), 'E2BIG');
    nine.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    const eight = vmWith(VGIC_V2_MAX_CPUS, { maxVcpus: 16 });
    eight.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
  });

  it('§7.3: with a v2 vgic, creating vCPU id >= 8 -> EINVAL', () => {
    const vm = vmWith(VGIC_V2_MAX_CPUS, { maxVcpus: 16 });
    vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    expectErrno(() => vm.createVcpu(VGIC_V2_MAX_CPUS), 'EINVAL');
  });

  it('§7.3: vCPUs may still be created after the device, before init', () => {
    const vm = vmWith(1);
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    vm.createVcpu(1);
    gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    expect(vm.vcpus.length).toBe(2);
  });

  it.each([
    ['v2', KVM_DEV_TYPE_ARM_VGIC_V2],
    ['v3', KVM_DEV_TYPE_ARM_VGIC_V3],
  ])('creating a %s vgic after a vCPU has run -> EBUSY', async (_n, type) => {
    const vm = vmWith(1);
    await runAll(vm, 10_000, 'the idle guest to return');
    expectErrno(() => vm.createDevice(type), 'EBUSY');
  });

  it('creating a vgic while a vCPU is inside KVM_RUN -> EBUSY (try-lock of every vcpu->mutex)', async () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0, { guest: spinUntilReleased });
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'the guest to start spinning', run);
    expectErrno(() => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3), 'EBUSY');
    Atomics.store(vm.ram, 1, 1);
    await within(run.promise, 10_000, 'the spinning guest to return');
  });
});

describe('§7.4/§7.6 ADDR group', () => {
  const v2Dev = (): KvmDevice => vmWith(1).createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
  const v3Dev = (opts: Parameters<typeof createVm>[0] = {}): KvmDevice => vmWith(1, opts).createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);

  it.each([
    ['v2 DIST', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_DIST, 0x0800_0000n],
    ['v2 CPU', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_CPU, 0x0801_0000n],
    ['v3 DIST', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x0800_0000n],
    ['v3 REDIST', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a_0000n],
  ])('%s: unset reads as all ones (UNDEF), set/get round-trips, second set -> EEXIST', (_n, type, attr, addr) => {
    const gic = vmWith(1).createDevice(type);
    expect(gic.getAttr(ADDR, attr)).toBe(ALL_ONES);
    gic.hasAttr(ADDR, attr);
    gic.setAttr(ADDR, attr, addr);
    expect(gic.getAttr(ADDR, attr)).toBe(addr);
    expectErrno(() => gic.setAttr(ADDR, attr, addr), 'EEXIST');
    expectErrno(() => gic.setAttr(ADDR, attr, addr + 0x10_0000n), 'EEXIST');
    expect(gic.getAttr(ADDR, attr)).toBe(addr);
  });

  it.each([
    // v2 frames: 4 KiB alignment; v3 DIST and REDIST: 64 KiB (spec §7.6).
    ['v2 DIST at +0x800', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_DIST, 0x0800_0800n, 'EINVAL'],
    ['v2 CPU at +0x4', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_CPU, 0x0801_0004n, 'EINVAL'],
    ['v2 DIST 4 KiB aligned', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_DIST, 0x0800_1000n, null],
    ['v3 DIST 4 KiB aligned only', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x0800_1000n, 'EINVAL'],
    ['v3 REDIST 4 KiB aligned only', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a_f000n, 'EINVAL'],
    ['v3 DIST 64 KiB aligned', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x0801_0000n, null],
  ] as const)('alignment: %s', (_n, type, attr, addr, errno) => {
    const gic = vmWith(1).createDevice(type);
    if (errno) {
      expectErrno(() => gic.setAttr(ADDR, attr, addr), errno);
      expect(gic.getAttr(ADDR, attr)).toBe(ALL_ONES); // a rejected set leaves it unset
    } else {
      gic.setAttr(ADDR, attr, addr);
      expect(gic.getAttr(ADDR, attr)).toBe(addr);
    }
  });

  it('addresses beyond the IPA size -> E2BIG; a frame ending exactly at the limit is accepted', () => {
    const ipa = 1n << 36n;
    const v3 = v3Dev({ ipaBits: 36 });
    expectErrno(() => v3.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, ipa), 'E2BIG');
    expectErrno(() => v3.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, ipa + 0x10_0000n), 'E2BIG');
    // The redistributor frame of one vCPU is 128 KiB: starting 64 KiB below the limit it crosses it.
    expectErrno(() => v3.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, ipa - 0x10000n), 'E2BIG');
    v3.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, ipa - BigInt(KVM_VGIC_V3_DIST_SIZE));
    expect(v3.getAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST)).toBe(ipa - BigInt(KVM_VGIC_V3_DIST_SIZE));
    const v2 = vmWith(1, { ipaBits: 32 }).createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    expectErrno(() => v2.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, 1n << 32n), 'E2BIG');
    expectErrno(() => v2.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, (1n << 32n) - 0x1000n), 'E2BIG'); // 8 KiB frame crosses
    v2.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, (1n << 32n) - 0x2000n);
  });

  it.each([
    ['v2 device, v3 DIST attr', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V3_ADDR_TYPE_DIST],
    ['v2 device, v3 REDIST attr', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V3_ADDR_TYPE_REDIST],
    ['v2 device, REDIST_REGION attr', KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION],
    ['v3 device, v2 DIST attr', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V2_ADDR_TYPE_DIST],
    ['v3 device, v2 CPU attr', KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_V2_ADDR_TYPE_CPU],
    ['v3 device, unknown attr 99', KVM_DEV_TYPE_ARM_VGIC_V3, 99],
    ['v2 device, unknown attr 99', KVM_DEV_TYPE_ARM_VGIC_V2, 99],
  ])('%s -> ENXIO on set, get and has', (_n, type, attr) => {
    const gic = vmWith(1).createDevice(type);
    expectErrno(() => gic.setAttr(ADDR, attr, 0x0800_0000n), 'ENXIO');
    expectErrno(() => gic.getAttr(ADDR, attr), 'ENXIO');
    expectErrno(() => gic.hasAttr(ADDR, attr), 'ENXIO');
  });

  it('unknown attribute group -> ENXIO', () => {
    const gic = vmWith(1).createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    expectErrno(() => gic.setAttr(0x77, 0), 'ENXIO');
    expectErrno(() => gic.getAttr(0x77, 0), 'ENXIO');
    expectErrno(() => gic.hasAttr(0x77, 0), 'ENXIO');
    // v2 has no REDIST_REGS / LEVEL_INFO groups.
    const v2 = vmWith(1).createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    expectErrno(() => v2.hasAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, 0), 'ENXIO');
    expectErrno(() => v2.hasAttr(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, 0), 'ENXIO');
  });

  describe('REDIST_REGION', () => {
    const R = KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION;
    const A = 0x0810_0000n;

    it('round-trips: get with the index returns count | base | index', () => {
      const gic = v3Dev();
      gic.setAttr(ADDR, R, region(2, A, 0));
      gic.setAttr(ADDR, R, region(3, 0x0900_0000n, 1));
      expect(gic.getAttr(ADDR, R, 0n)).toBe(region(2, A, 0));
      expect(gic.getAttr(ADDR, R, 1n)).toBe(region(3, 0x0900_0000n, 1));
    });

    it('reading an unknown region index -> ENOENT', () => {
      const gic = v3Dev();
      expectErrno(() => gic.getAttr(ADDR, R, 0n), 'ENOENT');
      gic.setAttr(ADDR, R, region(1, A, 0));
      expectErrno(() => gic.getAttr(ADDR, R, 1n), 'ENOENT');
      expectErrno(() => gic.getAttr(ADDR, R, 7n), 'ENOENT');
    });

    it.each([
      ['count 0', region(0, A, 0)],
      ['non-zero flags', region(1, A, 0, 1)],
      ['flags 0xf', region(1, A, 0, 0xf)],
      ['first index 1', region(1, A, 1)],
    ])('%s -> EINVAL', (_n, val) => {
      const gic = v3Dev();
      expectErrno(() => gic.setAttr(ADDR, R, val), 'EINVAL');
      expectErrno(() => gic.getAttr(ADDR, R, 0n), 'ENOENT'); // nothing was registered
    });

    it('indexes must come in sequence 0, 1, 2 …; re-registering an index -> EINVAL', () => {
      const gic = v3Dev();
      gic.setAttr(ADDR, R, region(1, A, 0));
      expectErrno(() => gic.setAttr(ADDR, R, region(1, 0x0900_0000n, 2)), 'EINVAL');
      expectErrno(() => gic.setAttr(ADDR, R, region(1, 0x0900_0000n, 0)), 'EINVAL');
      gic.setAttr(ADDR, R, region(1, 0x0900_0000n, 1));
    });

    it('overlapping regions -> EINVAL; adjacent regions are fine', () => {
      const gic = v3Dev();
      gic.setAttr(ADDR, R, region(2, A, 0)); // [A, A + 256 KiB)
      expectErrno(() => gic.setAttr(ADDR, R, region(1, A + BigInt(KVM_VGIC_V3_REDIST_SIZE), 1)), 'EINVAL');
      expectErrno(() => gic.setAttr(ADDR, R, region(4, A - 0x10000n, 1)), 'EINVAL');
      gic.setAttr(ADDR, R, region(1, A + 2n * BigInt(KVM_VGIC_V3_REDIST_SIZE), 1));
    });

    it('a region beyond the IPA size -> E2BIG', () => {
      const gic = v3Dev({ ipaBits: 36 });
      expectErrno(() => gic.setAttr(ADDR, R, region(1, 1n << 36n, 0)), 'E2BIG');
      expectErrno(() => gic.setAttr(ADDR, R, region(2, (1n << 36n) - BigInt(KVM_VGIC_V3_REDIST_SIZE), 0)), 'E2BIG');
    });

    it('mixing legacy REDIST and REDIST_REGION -> EINVAL, in both orders', () => {
      const a = v3Dev();
      a.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
      expectErrno(() => a.setAttr(ADDR, R, region(1, A, 0)), 'EINVAL');
      const b = v3Dev();
      b.setAttr(ADDR, R, region(1, A, 0));
      expectErrno(() => b.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST), 'EINVAL');
    });

    it('a VM whose redistributors come from REDIST_REGION runs', async () => {
      const vm = tracker.track(createVm());
      vm.createVcpu(0);
      vm.createVcpu(1);
      const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
      gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
      gic.setAttr(ADDR, R, region(1, A, 0));
      gic.setAttr(ADDR, R, region(1, 0x0900_0000n, 1));
      gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
      const res = await runAll(vm);
      expect(res.map((r) => r.reason)).toEqual(['shutdown', 'shutdown']);
    });
  });
});

describe('§7.5 NR_IRQS', () => {
  const models = [
    ['v2', KVM_DEV_TYPE_ARM_VGIC_V2],
    ['v3', KVM_DEV_TYPE_ARM_VGIC_V3],
  ] as const;

  describe.each(models)('%s', (_n, type) => {
    it.each([0, 32, 63, 65, 96 + 1, 1000, 1023, 1024, 2048])('NR_IRQS %i -> EINVAL', (n) => {
      const gic = vmWith(1).createDevice(type);
      expectErrno(() => gic.setAttr(NR_IRQS, 0, n), 'EINVAL');
      // Still settable afterwards: the rejected value left nothing behind.
      gic.setAttr(NR_IRQS, 0, 64);
    });

    it.each([64, 96, 512, 992])('NR_IRQS %i is accepted and read back', (n) => {
      const gic = vmWith(1).createDevice(type);
      gic.setAttr(NR_IRQS, 0, n);
      expect(gic.getAttr(NR_IRQS, 0)).toBe(BigInt(n));
    });

    it('a second set -> EBUSY (even with the same value)', () => {
      const gic = vmWith(1).createDevice(type);
      gic.setAttr(NR_IRQS, 0, 128);
      expectErrno(() => gic.setAttr(NR_IRQS, 0, 128), 'EBUSY');
      expectErrno(() => gic.setAttr(NR_IRQS, 0, 256), 'EBUSY');
      expect(gic.getAttr(NR_IRQS, 0)).toBe(128n);
    });

    it('get before set and before init reads 32 (nr_spis 0 + 32)', () => {
      const gic = vmWith(1).createDevice(type);
      expect(gic.getAttr(NR_IRQS, 0)).toBe(BigInt(VGIC_NR_PRIVATE_IRQS));
    });

    it('after init without a set: the legacy default (256) and a set -> EBUSY', () => {
      const vm = vmWith(1);
      const gic = vm.createDevice(type);
      gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
      expect(gic.getAttr(NR_IRQS, 0)).toBe(BigInt(VGIC_NR_IRQS_LEGACY));
      expectErrno(() => gic.setAttr(NR_IRQS, 0, 128), 'EBUSY');
    });
  });

  it('the configured number bounds the SPIs KVM_IRQ_LINE accepts', () => {
    const { vm } = tracker.track(buildV3({ vcpus: 1, nrIrqs: 96 }));
    vm.irqLine(spiLine(95), 1);
    expectErrno(() => vm.irqLine(spiLine(96), 1), 'EINVAL');
  });
});

describe('§7.2 CTRL / initialisation', () => {
  it('CTRL_INIT is accepted, idempotent, and reported by has_attr', () => {
    const vm = vmWith(1);
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.hasAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  });

  it('SAVE_PENDING_TABLES on a v2 model -> ENXIO', () => {
    const gic = vmWith(1).createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    expectErrno(() => gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES), 'ENXIO');
  });

  it.each([
    ['v2', KVM_DEV_TYPE_ARM_VGIC_V2],
    ['v3', KVM_DEV_TYPE_ARM_VGIC_V3],
  ])('%s: no vCPU creation after init -> EBUSY', (_n, type) => {
    const vm = vmWith(1);
    vm.createDevice(type).setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    expectErrno(() => vm.createVcpu(1), 'EBUSY');
  });

  it('v3: SPI and PPI injection before CTRL_INIT -> EBUSY; after it, accepted', () => {
    const { vm, gic } = tracker.track(buildV3({ vcpus: 1, noInit: true }));
    expectErrno(() => vm.irqLine(spiLine(40), 1), 'EBUSY');
    expectErrno(() => vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, 0, 20), 1), 'EBUSY');
    gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    vm.irqLine(spiLine(40), 1);
    vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_PPI, 0, 20), 1);
  });

  it('v2: the first injection initialises the vgic lazily (NR_IRQS fixed, no new vCPUs)', () => {
    const { vm, gic } = tracker.track(buildV2({ vcpus: 1, vm: { maxVcpus: 4 } }));
    expect(gic.getAttr(NR_IRQS, 0)).toBe(BigInt(VGIC_NR_PRIVATE_IRQS));
    vm.irqLine(spiLine(40), 1);
    expect(gic.getAttr(NR_IRQS, 0)).toBe(BigInt(VGIC_NR_IRQS_LEGACY));
    expectErrno(() => gic.setAttr(NR_IRQS, 0, 128), 'EBUSY');
    expectErrno(() => vm.createVcpu(1), 'EBUSY');
    expectErrno(() => vm.irqLine(spiLine(VGIC_NR_IRQS_LEGACY), 1), 'EINVAL');
  });

  it('v2: NR_IRQS set before the lazy init is the one used', () => {
    const { vm, gic } = tracker.track(buildV2({ vcpus: 1, nrIrqs: 64 }));
    vm.irqLine(spiLine(63), 1);
    expect(gic.getAttr(NR_IRQS, 0)).toBe(64n);
    expectErrno(() => vm.irqLine(spiLine(64), 1), 'EINVAL');
  });
});

describe('§7.2 first KVM_RUN (map_resources) errors, and the dead VM', () => {
  interface Case {
    name: string;
    errno: ErrnoName;
    setup(vm: Vm): KvmDevice;
  }
  const cases: Case[] = [
    {
      name: 'v2 without a CPU interface base',
      errno: 'ENXIO',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
        g.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, V2_DIST);
        return g;
      },
    },
    {
      name: 'v2 without a distributor base',
      errno: 'ENXIO',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
        g.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, V2_CPU);
        return g;
      },
    },
    {
      name: 'v2 with overlapping distributor and CPU frames',
      errno: 'EINVAL',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
        g.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, 0x0800_1000n);
        g.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, 0x0800_0000n); // CPU frame is 8 KiB: covers the dist
        return g;
      },
    },
    {
      name: 'v3 without a redistributor',
      errno: 'ENXIO',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
        g.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
        return g;
      },
    },
    {
      name: 'v3 with a REDIST_REGION too small for every vCPU',
      errno: 'ENXIO',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, region(1, V3_REDIST, 0));
        g.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
        return g;
      },
    },
    {
      name: 'v3 without a distributor base',
      errno: 'ENXIO',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
        g.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
        return g;
      },
    },
    {
      name: 'v3 without CTRL_INIT',
      errno: 'EBUSY',
      setup: (vm) => {
        const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
        g.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
        return g;
      },
    },
  ];

  it.each(cases)('$name: run rejects with $errno, then every ioctl -> EIO', async ({ errno, setup }) => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0);
    vm.createVcpu(1);
    const gic = setup(vm);
    // The first KVM_RUN (of vCPU 0) fails with the map_resources error …
    await expectErrnoAsync(within(vm.vcpus[0]!.run(), 10_000, 'the failing first run'), errno);
    // VM dead (spec §7.2, 2024 behaviour): later VM, vCPU and device ioctls fail with EIO.
    await expectErrnoAsync(within(vm.run(), 10_000, 'a run of the dead VM'), 'EIO');
    expectErrno(() => vm.irqLine(spiLine(40), 1), 'EIO');
    expectErrno(() => gic.setAttr(NR_IRQS, 0, 128), 'EIO');
    expectErrno(() => gic.getAttr(NR_IRQS, 0), "EIO");
    expectErrno(() => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3), 'EIO');
    expectErrno(() => vm.createVcpu(2), 'EIO');
  });

  it('vm.run() of several vCPUs reports the map_resources error, not the EIO the others then see', async () => {
    // Vm.run: "if one fails, the others are stopped and the first error is thrown". The vCPU that
    // ran map_resources fails with ENXIO and kills the VM; the others' runs then fail with EIO
    // (§7.2). The error reported must be the cause, whichever vCPU happened to get there first.
    for (let round = 0; round < 6; round++) {
      const vm = tracker.track(createVm());
      for (let i = 0; i < 4; i++) vm.createVcpu(i);
      const g = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
      g.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, V2_DIST);
      await expectErrnoAsync(within(vm.run(), 10_000, 'the failing first run'), 'ENXIO');
    }
  });

  it('a well-formed VM runs (control for the table above)', async () => {
    const v3 = tracker.track(buildV3({ vcpus: 2 }));
    await runAll(v3.vm);
    const v2 = tracker.track(buildV2({ vcpus: 2 }));
    await runAll(v2.vm);
    // Having run, they are not dead.
    v3.vm.irqLine(spiLine(40), 1);
    v2.vm.irqLine(spiLine(40), 1);
  });
});

describe('§8.1 KVM_IRQ_LINE errors', () => {
  const field = kvmIrqLineField;
  const line = (type: number, vcpu: number, num: number): number => field(type, vcpu, num);

  describe('with an in-kernel vgic (v3, 2 vCPUs, NR_IRQS 128)', () => {
    const cases: [string, number, ErrnoName | null][] = [
      ['CPU type (needs a userspace irqchip)', line(KVM_ARM_IRQ_TYPE_CPU, 0, 0), 'ENXIO'],
      ['PPI 15', line(KVM_ARM_IRQ_TYPE_PPI, 0, 15), 'EINVAL'],
      ['PPI 32', line(KVM_ARM_IRQ_TYPE_PPI, 0, 32), 'EINVAL'],
      ['PPI 0', line(KVM_ARM_IRQ_TYPE_PPI, 0, 0), 'EINVAL'],
      ['PPI 16 on vCPU 0', line(KVM_ARM_IRQ_TYPE_PPI, 0, 16), null],
      ['PPI 31 on vCPU 1', line(KVM_ARM_IRQ_TYPE_PPI, 1, 31), null],
      ['PPI on a missing vCPU 2', line(KVM_ARM_IRQ_TYPE_PPI, 2, 20), 'EINVAL'],
      ['PPI on vCPU 256 (vcpu2_index = 1)', line(KVM_ARM_IRQ_TYPE_PPI, 256, 20), 'EINVAL'],
      ['SPI 31', line(KVM_ARM_IRQ_TYPE_SPI, 0, 31), 'EINVAL'],
      ['SPI 0', line(KVM_ARM_IRQ_TYPE_SPI, 0, 0), 'EINVAL'],
      ['SPI 32', line(KVM_ARM_IRQ_TYPE_SPI, 0, 32), null],
      ['SPI 127 (last)', line(KVM_ARM_IRQ_TYPE_SPI, 0, 127), null],
      ['SPI 128 (beyond nr_irqs)', line(KVM_ARM_IRQ_TYPE_SPI, 0, 128), 'EINVAL'],
      ['SPI 1019', line(KVM_ARM_IRQ_TYPE_SPI, 0, 1019), 'EINVAL'],
      ['unknown type 3', (3 << KVM_ARM_IRQ_TYPE_SHIFT) | 40, 'EINVAL'],
      ['unknown type 15', (15 << KVM_ARM_IRQ_TYPE_SHIFT) | 40, 'EINVAL'],
    ];
    it.each(cases)('%s -> %s', (_n, irq, errno) => {
      const { vm } = tracker.track(buildV3({ vcpus: 2, nrIrqs: 128 }));
      for (const level of [1, 0]) {
        if (errno) expectErrno(() => vm.irqLine(irq, level), errno);
        else vm.irqLine(irq, level);
      }
    });
  });

  describe('without a vgic (userspace irqchip)', () => {
    const cases: [string, number, ErrnoName | null][] = [
      ['SPI', line(KVM_ARM_IRQ_TYPE_SPI, 0, 40), 'ENXIO'],
      ['PPI', line(KVM_ARM_IRQ_TYPE_PPI, 0, 20), 'ENXIO'],
      ['CPU IRQ line of vCPU 0', line(KVM_ARM_IRQ_TYPE_CPU, 0, 0), null],
      ['CPU FIQ line of vCPU 1', line(KVM_ARM_IRQ_TYPE_CPU, 1, 1), null],
      ['CPU line 2', line(KVM_ARM_IRQ_TYPE_CPU, 0, 2), 'EINVAL'],
      ['CPU line of a missing vCPU', line(KVM_ARM_IRQ_TYPE_CPU, 5, 0), 'EINVAL'],
      ['unknown type', (4 << KVM_ARM_IRQ_TYPE_SHIFT) | 0, 'EINVAL'],
    ];
    it.each(cases)('%s -> %s', (_n, irq, errno) => {
      const vm = vmWith(2);
      if (errno) expectErrno(() => vm.irqLine(irq, 1), errno);
      else vm.irqLine(irq, 1);
    });
  });

  it('v2 CPU-type line with a vgic -> ENXIO', () => {
    const { vm } = tracker.track(buildV2({ vcpus: 1 }));
    expectErrno(() => vm.irqLine(line(KVM_ARM_IRQ_TYPE_CPU, 0, 0), 1), 'ENXIO');
  });
});

describe('§7.4 register groups (userspace access)', () => {
  const mpidrAttr = (vcpu: number, offset: number): bigint => (BigInt(vcpu & 0xf | ((vcpu >> 4) << 8)) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT) | BigInt(offset);
  const DIST = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
  const REDIST = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;

  it('v3: DIST_REGS access while a vCPU runs -> EBUSY; once it returned, access works', async () => {
    const { vm, gic } = tracker.track(buildV3({ vcpus: 2, perVcpu: (i) => ({ guest: i === 0 ? spinUntilReleased : undefined }) }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'vCPU 0 to spin inside KVM_RUN', run);
    expectErrno(() => gic.getAttr(DIST, mpidrAttr(0, 0x0)), 'EBUSY');
    expectErrno(() => gic.setAttr(DIST, mpidrAttr(0, 0x0), 0), 'EBUSY');
    expectErrno(() => gic.getAttr(REDIST, mpidrAttr(1, 0x0)), 'EBUSY');
    Atomics.store(vm.ram, 1, 1);
    await within(run.promise, 10_000, 'vCPU 0 to return');
    // GICD_TYPER: ITLinesNumber = (nr_spis + 32) / 32 - 1 with the default 256 interrupts.
    const typer = gic.getAttr(DIST, mpidrAttr(0, 0x4));
    expect(Number(typer & 0x1fn)).toBe(VGIC_NR_IRQS_LEGACY / 32 - 1);
  });

  it('v2: DIST_REGS / CPU_REGS access while a vCPU runs -> EBUSY', async () => {
    const { vm, gic } = tracker.track(buildV2({ vcpus: 1, guest: spinUntilReleased }));
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'vCPU 0 to spin inside KVM_RUN', run);
    expectErrno(() => gic.getAttr(DIST, 0x0n), 'EBUSY');
    expectErrno(() => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, 0x4n), 'EBUSY');
    Atomics.store(vm.ram, 1, 1);
    await within(run.promise, 10_000, 'vCPU 0 to return');
    gic.getAttr(DIST, 0x0n);
  });

  it('v3: register groups need an initialised vgic -> EBUSY before CTRL_INIT', () => {
    const { gic } = tracker.track(buildV3({ vcpus: 1, noInit: true }));
    expectErrno(() => gic.getAttr(DIST, mpidrAttr(0, 0x0)), 'EBUSY');
    expectErrno(() => gic.getAttr(REDIST, mpidrAttr(0, 0x0)), 'EBUSY');
  });

  it('v3: REDIST_REGS / LEVEL_INFO naming a missing vCPU -> EINVAL', () => {
    const { gic } = tracker.track(buildV3({ vcpus: 1 }));
    expectErrno(() => gic.getAttr(REDIST, mpidrAttr(3, 0x0)), 'EINVAL');
    expectErrno(() => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, mpidrAttr(3, 32)), 'EINVAL');
  });

  it('v3: LEVEL_INFO with info != LINE_LEVEL or a vINTID not a multiple of 32 -> EINVAL', () => {
    const { gic } = tracker.track(buildV3({ vcpus: 1 }));
    const LI = KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO;
    expectErrno(() => gic.getAttr(LI, mpidrAttr(0, (1 << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT) | 32)), 'EINVAL');
    expectErrno(() => gic.getAttr(LI, mpidrAttr(0, 33)), 'EINVAL');
    gic.getAttr(LI, mpidrAttr(0, 32));
  });

  it('v2: DIST_REGS for a missing vCPU index -> EINVAL; unimplemented offsets read 0 but has_attr says ENXIO', () => {
    const { gic } = tracker.track(buildV2({ vcpus: 1 }));
    expectErrno(() => gic.getAttr(DIST, (5n << KVM_DEV_ARM_VGIC_CPUID_SHIFT) | 0x0n), 'EINVAL');
    // 0x40 lies in the reserved hole between GICD_IIDR's block and GICD_IGROUPR (0x80).
    expect(gic.getAttr(DIST, 0x40n)).toBe(0n);
    gic.setAttr(DIST, 0x40n, 0xffff_ffffn);
    expectErrno(() => gic.hasAttr(DIST, 0x40n), 'ENXIO');
    expectErrno(() => gic.hasAttr(DIST, 0x2n), 'ENXIO'); // not 4-byte aligned
    gic.hasAttr(DIST, 0x0n);
  });

  it('v2: a register access initialises the vgic lazily (NR_IRQS fixed afterwards)', () => {
    const { gic } = tracker.track(buildV2({ vcpus: 1 }));
    gic.getAttr(DIST, 0x0n);
    expectErrno(() => gic.setAttr(NR_IRQS, 0, 128), 'EBUSY');
  });
});
