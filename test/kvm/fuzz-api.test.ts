/**
 * Every public entry point called with arbitrary values (fast-check): it either does what the
 * call says or throws a KvmError with an errno the kernel has, never a TypeError, RangeError or
 * SyntaxError from deep inside, and the VM stays usable (a valid injection still works, destroy
 * completes). Table-driven: one row per entry point, arguments from a generator of every kind of
 * JavaScript value, including the near-misses (1.5, NaN, -1, 2^64, '0', {}, []).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVm, ERRNO, EventFd, KvmError, VfioPlatformDevice, type KvmDevice, type Vm } from '../../src/index.js';
import {
  EFD_NONBLOCK, KVM_ARM_IRQ_TYPE_SPI, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
  KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_VFIO, KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST, kvmIrqLineField,
} from '../../src/uapi/index.js';
import { within } from '../helpers.js';

/** Values of every kind, weighted towards the ones an API mistakes for valid. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, undefined, Number.NaN, Infinity, -Infinity, -0, 0, 1, -1, 1.5, 2 ** 32, 2 ** 53, 2 ** 64, '0', '', 'abc', true, false, [], {}, 0n, -1n, 2n ** 64n, 2n ** 63n),
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.string(),
  fc.anything(),
);
/** Small integers and bigints near the valid range, so that some calls get past validation. */
const nearValid: fc.Arbitrary<unknown> = fc.oneof(fc.integer({ min: -2, max: 70 }), fc.bigInt({ min: -2n, max: 0x0810_0000n }), anyValue);
const arg = fc.oneof({ weight: 1, arbitrary: anyValue }, { weight: 2, arbitrary: nearValid });

let vm: Vm;
let gic: KvmDevice;
let its: KvmDevice;
let kvfio: KvmDevice;
let dev: VfioPlatformDevice;
let fd: EventFd;

beforeAll(() => {
  vm = createVm();
  vm.createVcpu(0);
  vm.createVcpu(1);
  gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x08000000n);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, 0x08080000n);
  kvfio = vm.createDevice(KVM_DEV_TYPE_VFIO);
  dev = new VfioPlatformDevice(vm, { irqs: ['edge', 'level'] });
  // Non-blocking: a random write at the overflow limit must fail with EAGAIN, not block the test.
  fd = new EventFd(0, EFD_NONBLOCK);
});
afterAll(async () => {
  await within(vm.destroy(), 10_000, 'destroy after the fuzzing');
});

type Call = (a: unknown, b: unknown, c: unknown) => unknown;
const ENTRY_POINTS: [string, Call][] = [
  ['createVm', (a) => createVm(a as never)],
  ['vm.createVcpu', (a, b) => vm.createVcpu(a as never, b as never)],
  ['vm.createDevice', (a, b) => vm.createDevice(a as never, b as never)],
  ['vm.irqLine', (a, b) => vm.irqLine(a as never, b as never)],
  ['vm.irqfd', (a) => vm.irqfd(a as never)],
  ['vm.irqfd(fd)', (a, b) => vm.irqfd({ fd, gsi: a, flags: b } as never)],
  ['vm.signalMsi', (a) => vm.signalMsi(a as never)],
  ['vm.signalMsi(fields)', (a, b, c) => vm.signalMsi({ addressLo: a, data: b, devid: c, flags: 1 } as never)],
  ['vm.setGsiRouting', (a) => vm.setGsiRouting(a as never)],
  ['vm.setGsiRouting([entry])', (a, b, c) => vm.setGsiRouting([{ gsi: a, type: b, pin: c, irqchip: 0 }] as never)],
  ['gic.setAttr', (a, b, c) => gic.setAttr(a as never, b as never, c as never)],
  ['gic.getAttr', (a, b, c) => gic.getAttr(a as never, b as never, c as never)],
  ['gic.hasAttr', (a, b) => gic.hasAttr(a as never, b as never)],
  ['its.setAttr', (a, b, c) => its.setAttr(a as never, b as never, c as never)],
  ['its.getAttr', (a, b) => its.getAttr(a as never, b as never)],
  ['its.hasAttr', (a, b) => its.hasAttr(a as never, b as never)],
  ['kvmVfio.setAttr', (a, b, c) => kvfio.setAttr(a as never, b as never, c as never)],
  ['kvmVfio.hasAttr', (a, b) => kvfio.hasAttr(a as never, b as never)],
  ['vcpu.setAttr', (a, b, c) => vm.vcpus[0]!.setAttr(a as never, b as never, c as never)],
  ['vcpu.getAttr', (a, b) => vm.vcpus[0]!.getAttr(a as never, b as never)],
  ['vcpu.hasAttr', (a, b) => vm.vcpus[0]!.hasAttr(a as never, b as never)],
  ['vcpu.getOneReg', (a) => vm.vcpus[1]!.getOneReg(a as never)],
  ['vcpu.setOneReg', (a, b) => vm.vcpus[1]!.setOneReg(a as never, b as never)],
  ['new EventFd', (a, b) => new EventFd(a as never, b as never)],
  ['eventfd.write', (a) => fd.write(a as never)],
  ['eventfd.signal', (a) => fd.signal(a as never)],
  ['EventFd.from', (a) => EventFd.from(a as never)],
  ['vfio.setTrigger', (a, b) => dev.setTrigger(a as never, b as never)],
  ['vfio.getIrqInfo', (a) => dev.getIrqInfo(a as never)],
  ['vfio.setIrqs', (a, b, c) => dev.setIrqs(a as never, b as never, 0, c as never)],
  ['vfio.raise', (a, b) => dev.raise(a as never, b as never)],
  ['vfio.start', (a, b) => dev.start(a as never, b as never)],
  ['new VfioPlatformDevice', (a) => new VfioPlatformDevice(vm, a as never)],
];

function verdict(call: Call, a: unknown, b: unknown, c: unknown): string | null {
  try {
    const r = call(a, b, c);
    // A VFIO device made with valid options owns lines and a thread: give them back.
    if (r instanceof VfioPlatformDevice) void r.close();
    return null;
  } catch (e) {
    if (e instanceof KvmError && Object.hasOwn(ERRNO, e.code) && e.errno === -ERRNO[e.code]) return null;
    return `${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
}

describe('every public entry point, arbitrary arguments: a KvmError or success, never another error', () => {
  it.each(ENTRY_POINTS)('%s', (_name, call) => {
    fc.assert(
      fc.property(arg, arg, arg, (a, b, c) => {
        const bad = verdict(call, a, b, c);
        if (bad) throw new Error(`threw ${bad}`);
      }),
      { numRuns: 250, seed: 0x5eed },
    );
  });

  it('the VM is still usable afterwards: waitForRam is checked, a valid SPI injection works', async () => {
    await expect(vm.waitForRam(Number.NaN as never, 1)).rejects.toBeInstanceOf(KvmError);
    await expect(vm.waitForRam(0, 'x' as never)).rejects.toBeInstanceOf(KvmError);
    expect(() => vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, 40), 1)).not.toThrow();
    expect(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST)).toBe(0x08000000n);
  });
});
