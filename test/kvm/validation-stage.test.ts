/**
 * Validation at the kernel's stage: each rule with its errno and the ioctl that reports it.
 * - vgic_register_redist_iodev runs inside KVM_CREATE_VCPU before online_vcpus counts the new vCPU,
 *   so vgic_v3_check_base sizes a legacy region without the new frame; vgic_v3_map_resources
 *   (first KVM_RUN) checks every region sized by the vCPUs then online: EINVAL.
 * - vgic_check_iorange within vgic_v3_check_base: a region leaving the IPA space fails the same way.
 * - vgic_v[23]_has_attr_regs start with vgic_v[23]_parse_attr: no such vCPU is EINVAL.
 * - reg_allowed_pre_init: GICD_IIDR and GICD_TYPER2 before CTRL_INIT; vgic_mmio_uaccess_write_v3_misc's
 *   TYPER2 rules (same value 0; a change after init EBUSY; only nASSGIcap; EINVAL without GICv4.1).
 * - kvm_irqfd_assign does not look at the GSI; a GSI past the routing table delivers nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, EventFd, type KvmDevice, type Vm } from '../../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_VGIC_V3_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, KVM_VGIC_V3_RDIST_COUNT_SHIFT,
  KVM_VGIC_V3_REDIST_SIZE, KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT, KVM_IRQ_ROUTING_IRQCHIP,
} from '../../src/uapi/index.js';
import { V3_DIST, V3_REDIST, VmTracker, expectErrno, expectErrnoAsync, spiLine, within } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const RD = BigInt(KVM_VGIC_V3_REDIST_SIZE);
const T = 15_000;
const ADDR = KVM_DEV_ARM_VGIC_GRP_ADDR;
const DIST_REGS = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
const GICD_CTLR = 0x0n, GICD_IIDR = 0x8n, GICD_TYPER2 = 0xcn;
const TYPER2_NASSGICAP = 1 << 8;
/** GICD_IIDR: ProductID 'K' [31:24], Revision [15:12], Implementer ARM (0x43b). */
const iidr = (rev: number): bigint => BigInt(((0x4b << 24) | (rev << 12) | 0x43b) >>> 0);

function v3(opts: Parameters<typeof createVm>[0] = {}): { vm: Vm; gic: KvmDevice } {
  const vm = tracker.track(createVm({ maxVcpus: 4, ...opts }));
  return { vm, gic: vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3) };
}
const init = (gic: KvmDevice): void => gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
const firstRun = (vm: Vm): Promise<unknown> => within(vm.run(), T, 'the first KVM_RUN');

describe('legacy REDIST region: sized by the vCPUs online when a vCPU is created', () => {
  it('the vCPU whose frame overlaps the distributor is created; the first KVM_RUN fails with EINVAL; the VM is dead after', async () => {
    const { vm, gic } = v3();
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    // Frame 0 ends where the distributor begins; frame 1 would be the distributor's own address.
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_DIST - RD);
    vm.createVcpu(0);
    vm.createVcpu(1); // checked with one vCPU online: [DIST - RD, DIST) does not overlap
    // The next creation sees two online vCPUs: the region now covers the distributor.
    expectErrno(() => vm.createVcpu(2), 'EINVAL');
    expect(vm.vcpus.map((v) => v.id)).toEqual([0, 1]);
    init(gic); // vgic_init does not look at addresses
    await expectErrnoAsync(firstRun(vm), 'EINVAL');
    expectErrno(() => vm.irqLine(spiLine(40), 1), 'EIO');
  });

  it('the same layout with the distributor clear of every frame runs', async () => {
    const { vm, gic } = v3();
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    vm.createVcpu(0);
    vm.createVcpu(1);
    vm.createVcpu(2);
    init(gic);
    const out = (await firstRun(vm)) as { reason: string }[];
    expect(out.map((r) => r.reason)).toEqual(['shutdown', 'shutdown', 'shutdown']);
  });
});

describe('first KVM_RUN: every redistributor region, sized by the online vCPUs, inside the IPA space', () => {
  const TOP = 1n << 32n; // ipaBits 32

  it('a legacy region whose last frame lies past the IPA limit: created fine, first KVM_RUN EINVAL', async () => {
    const { vm, gic } = v3({ ipaBits: 32 });
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, TOP - RD); // one frame fits
    vm.createVcpu(0);
    vm.createVcpu(1); // its frame starts at the limit
    init(gic);
    await expectErrnoAsync(firstRun(vm), 'EINVAL');
  });

  it('one vCPU in that region fits and runs', async () => {
    const { vm, gic } = v3({ ipaBits: 32 });
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, TOP - RD);
    vm.createVcpu(0);
    init(gic);
    await firstRun(vm);
  });

  it('a REDIST_REGION has its size when it is set: past the limit is E2BIG at once', () => {
    const { gic } = v3({ ipaBits: 32 });
    const region = (BigInt(2) << KVM_VGIC_V3_RDIST_COUNT_SHIFT) | (TOP - RD);
    expectErrno(() => gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, region), 'E2BIG');
  });
});

describe('HAS_ATTR on register groups looks the vCPU up first (vgic_v3_has_attr_regs)', () => {
  it('GICv3: REDIST_REGS naming an affinity no vCPU has, DIST_REGS with no vCPU at all: EINVAL', () => {
    const { vm, gic } = v3();
    expectErrno(() => gic.hasAttr(DIST_REGS, GICD_CTLR), 'EINVAL');
    vm.createVcpu(2);
    gic.hasAttr(DIST_REGS, GICD_CTLR);
    const mp = (aff: number): bigint => BigInt(aff) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT;
    gic.hasAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, mp(2));
    expectErrno(() => gic.hasAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, mp(0)), 'EINVAL');
  });
});

describe('DIST_REGS GICD_IIDR and GICD_TYPER2 before CTRL_INIT (reg_allowed_pre_init)', () => {
  it('IIDR: readable and writable before init (only Revision may differ, 2 or 3); the revision written survives init', () => {
    const { vm, gic } = v3();
    expectErrno(() => gic.getAttr(DIST_REGS, GICD_IIDR), 'EINVAL'); // vCPU 0 must exist (vgic_v3_parse_attr)
    vm.createVcpu(0);
    // Before init the revision is still unset (vgic_init defaults it to the latest).
    expect(gic.getAttr(DIST_REGS, GICD_IIDR)).toBe(iidr(0));
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_IIDR, iidr(1)), 'EINVAL');
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_IIDR, iidr(2) ^ (1n << 24n)), 'EINVAL');
    gic.setAttr(DIST_REGS, GICD_IIDR, iidr(2));
    expect(gic.getAttr(DIST_REGS, GICD_IIDR)).toBe(iidr(2));
    // Any other register still needs CTRL_INIT.
    expectErrno(() => gic.getAttr(DIST_REGS, GICD_CTLR), 'EBUSY');
    expectErrno(() => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, 0n), 'EBUSY');
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    init(gic);
    expect(gic.getAttr(DIST_REGS, GICD_IIDR)).toBe(iidr(2));
    // No stage test for IIDR: after init the revision can still be chosen.
    gic.setAttr(DIST_REGS, GICD_IIDR, iidr(3));
    expect(gic.getAttr(DIST_REGS, GICD_IIDR)).toBe(iidr(3));
  });

  it('TYPER2: the value read back is accepted at any stage; before init only nASSGIcap may change and this host has no GICv4.1 (EINVAL); after init any change is EBUSY', () => {
    const { vm, gic } = v3();
    vm.createVcpu(0);
    expect(gic.getAttr(DIST_REGS, GICD_TYPER2)).toBe(0n);
    gic.setAttr(DIST_REGS, GICD_TYPER2, 0);
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_TYPER2, TYPER2_NASSGICAP), 'EINVAL');
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_TYPER2, 1), 'EINVAL');
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    init(gic);
    gic.setAttr(DIST_REGS, GICD_TYPER2, 0);
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_TYPER2, TYPER2_NASSGICAP), 'EBUSY');
    expectErrno(() => gic.setAttr(DIST_REGS, GICD_TYPER2, 1), 'EBUSY');
    expect(gic.getAttr(DIST_REGS, GICD_TYPER2)).toBe(0n);
  });
});

describe('KVM_IRQFD with a GSI past the routing table (kvm_irqfd_assign does not check it)', () => {
  it('after KVM_SET_GSI_ROUTING with GSI 0 only: an irqfd on GSI 5 is assigned and its signals are dropped', () => {
    const { vm, gic } = v3();
    vm.createVcpu(0);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    init(gic);
    vm.setGsiRouting([{ gsi: 0, type: KVM_IRQ_ROUTING_IRQCHIP, pin: 0 }]);
    const fd = new EventFd();
    vm.irqfd({ fd, gsi: 5 });
    fd.write(1n); // this thread maps the VM: the fast path consumes it and finds no route
    const [info] = vm.irqfds();
    expect(info).toMatchObject({ gsi: 5, consumed: 1, dropped: 1, fastInjections: 0, slowInjections: 0 });
  });
});
