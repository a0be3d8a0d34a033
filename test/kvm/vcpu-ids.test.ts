/**
 * vCPU ids in any order (KVM_CREATE_VCPU takes any id below kvm->max_vcpus): the kernel's vcpu_id
 * (what userspace chose) and vcpu_idx (creation order) kept apart.
 *
 * Expected values come from the kernel, not from this model:
 * - MPIDR_EL1 = RES1[31] | Aff2 = id[19:12] | Aff1 = id[11:4] | Aff0 = id[3:0] (sys_regs.c reset_mpidr);
 * - GICR_TYPER: Processor_Number [23:8] = vcpu_id, affinity in [55:32] (vgic_mmio_read_v3r_typer);
 *   Last [4] when the frame is its region's last used slot and, for a full region, no used
 *   region starts where it ends (vgic_mmio_vcpu_rdist_is_last);
 * - frames are handed out in creation order, region by region (vgic_register_redist_iodev with
 *   vgic_v3_rdist_free_slot);
 * - KVM_IRQ_LINE's vcpu field is a vcpu_id (kvm_vm_ioctl_irq_line: kvm_get_vcpu_by_id), EINVAL
 *   for an id no vCPU has.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, GuestFault, type GuestCpu, type KvmDevice, type Vm } from '../../src/index.js';
import {
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, KVM_VGIC_V3_RDIST_COUNT_SHIFT, KVM_VGIC_V3_REDIST_SIZE,
  KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT, KVM_DEV_ARM_VGIC_CPUID_SHIFT, KVM_VGIC_V2_ADDR_TYPE_DIST,
  KVM_VGIC_V2_ADDR_TYPE_CPU,
} from '../../src/uapi/index.js';
import { V2_CPU, V2_DIST, V3_DIST, V3_REDIST, VmTracker, expectErrno, ppiLine, pulseSpi, startRun, waitFor, within } from '../helpers.js';

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

const IDS = [0, 3, 5, 4, 1, 2];
const PPI = 20;
const T = 15_000;
const GICR_TYPER = 0x8n;
const RD = BigInt(KVM_VGIC_V3_REDIST_SIZE);

/** The kernel's reset MPIDR affinity (Aff2.Aff1.Aff0) of a vcpu_id. */
const aff = (id: number): number => (id & 0xf) | (((id >> 4) & 0xff) << 8) | (((id >> 12) & 0xff) << 16);

interface Layout {
  name: string;
  /** ADDR attributes (attr, value) after DIST. */
  regions: [number, bigint][];
  /** Expected frame base of each vcpu_idx, and which of them report Last. */
  frames: bigint[];
  last: number[];
}

const region = (base: bigint, count: number, index: number): [number, bigint] => [
  KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION,
  (BigInt(count) << KVM_VGIC_V3_RDIST_COUNT_SHIFT) | base | BigInt(index),
];
const R0 = 0x0810_0000n;
const FAR = 0x0a00_0000n;

const LAYOUTS: Layout[] = [
  {
    // One legacy region: frames in creation order, Last on the last used one.
    name: 'one legacy REDIST region',
    regions: [[KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST]],
    frames: IDS.map((_, i) => V3_REDIST + BigInt(i) * RD),
    last: [5],
  },
  {
    // Two separate regions (2 + 4 slots): each region's last slot is Last.
    name: 'two REDIST_REGIONs',
    regions: [region(R0, 2, 0), region(FAR, 4, 1)],
    frames: [R0, R0 + RD, FAR, FAR + RD, FAR + 2n * RD, FAR + 3n * RD],
    last: [1, 5],
  },
  {
    // Three regions of 2, the second starting where the first ends: the first's last frame is
    // not Last (a used region follows it contiguously), the second's and the third's are.
    name: 'three REDIST_REGIONs (two contiguous)',
    regions: [region(R0, 2, 0), region(R0 + 2n * RD, 2, 1), region(FAR, 2, 2)],
    frames: [R0, R0 + RD, R0 + 2n * RD, R0 + 3n * RD, FAR, FAR + RD],
    last: [3, 5],
  },
];

/**
 * Per vCPU (RAM words 16 + 8*idx ...): MPIDR_EL1 [31:0], its own GICR_TYPER low and high words,
 * its frame base, the count and last INTID of interrupts taken, a ready flag, and a "line
 * lowered" flag. PPIs are level (KVM keeps their configuration read-only), so the handler holds
 * its EOI until the VMM has lowered the line: one raise is then exactly one interrupt.
 */
const idGuest = guestFromFunction((cpu: GuestCpu) => {
  const b = 16 + cpu.id * 8;
  cpu.store(b, Number(cpu.mpidr() & 0xffff_ffffn) | 0);
  cpu.store(b + 1, cpu.mmioRead(cpu.gicrBase + 8, 4));
  cpu.store(b + 2, cpu.mmioRead(cpu.gicrBase + 12, 4));
  cpu.store(b + 3, cpu.gicrBase | 0);
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    c.store(b + 5, iar);
    c.add(b + 4, 1);
    while (c.load(b + 7) === 0) c.relax();
    c.eoi(iar);
  });
  cpu.driver.enable(20);
  cpu.driver.enableDistributor();
  cpu.enableIrqs();
  cpu.store(b + 6, 1);
  for (;;) cpu.wfi(); // until the VM is torn down
});
const word = (idx: number, k: number): number => 16 + idx * 8 + k;

function gicrTyperAttr(gic: KvmDevice, id: number, half: 0 | 4): number {
  return Number(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, (BigInt(aff(id)) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT) | (GICR_TYPER + BigInt(half))));
}

function v3Vm(layout: Layout, vcpusFirst: boolean): { vm: Vm; gic: KvmDevice } {
  const vm = tracker.track(createVm({ maxVcpus: 8 }));
  const create = () => IDS.forEach((id) => vm.createVcpu(id, { guest: idGuest }));
  if (vcpusFirst) create();
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
  for (const [attr, v] of layout.regions) gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, attr, v);
  if (!vcpusFirst) create();
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  return { vm, gic };
}

describe('KVM_CREATE_VCPU with ids 0,3,5,4,1,2 (GICv3)', () => {
  const CASES = LAYOUTS.flatMap((layout) => [
    { layout, name: layout.name, vcpusFirst: true, when: 'before the regions' },
    { layout, name: layout.name, vcpusFirst: false, when: 'after the regions' },
  ]);
  it.each(CASES)(
    '$name, vCPUs created $when: GICR_TYPER, MPIDR and KVM_IRQ_LINE per vCPU',
    async ({ layout, vcpusFirst }) => {
      const { vm, gic } = v3Vm(layout, vcpusFirst);
      // Handles: vm.vcpus in creation order, vm.vcpu(id) by id.
      expect(vm.vcpus.map((v) => v.id)).toEqual(IDS);
      expect(vm.vcpus.map((v) => v.index)).toEqual([0, 1, 2, 3, 4, 5]);
      IDS.forEach((id, idx) => expect(vm.vcpu(id)?.index).toBe(idx));
      expect(vm.vcpu(6)).toBeUndefined();
      // Userspace view (REDIST_REGS, by MPIDR): Processor_Number = vcpu_id, Last by region slot.
      IDS.forEach((id, idx) => {
        const lo = gicrTyperAttr(gic, id, 0);
        expect((lo >>> 8) & 0xffff, `Processor_Number of vcpu_id ${id}`).toBe(id);
        expect((lo >>> 4) & 1, `Last of vcpu_id ${id} (idx ${idx})`).toBe(layout.last.includes(idx) ? 1 : 0);
        expect(gicrTyperAttr(gic, id, 4), `GICR_TYPER affinity of vcpu_id ${id}`).toBe(aff(id));
      });
      const run = startRun(vm);
      const ram = vm.ram;
      for (let idx = 0; idx < IDS.length; idx++) await waitFor(() => Atomics.load(ram, word(idx, 6)) === 1, T, `vCPU idx ${idx} ready`, run);
      // Guest view: its own MPIDR_EL1, its own GICR_TYPER and frame.
      IDS.forEach((id, idx) => {
        expect(ram[word(idx, 0)]! >>> 0, `MPIDR_EL1 of vcpu_id ${id}`).toBe((0x8000_0000 | aff(id)) >>> 0);
        const lo = ram[word(idx, 1)]! >>> 0;
        expect((lo >>> 8) & 0xffff).toBe(id);
        expect((lo >>> 4) & 1).toBe(layout.last.includes(idx) ? 1 : 0);
        expect(ram[word(idx, 2)]! >>> 0).toBe(aff(id));
        expect(BigInt(ram[word(idx, 3)]! >>> 0), `frame of idx ${idx}`).toBe(layout.frames[idx]);
      });
      // KVM_IRQ_LINE names vcpu_ids: PPI 20 raised on each, in id order; exactly that vCPU takes it.
      for (const id of [...IDS].sort((a, b) => a - b)) {
        const idx = IDS.indexOf(id);
        vm.irqLine(ppiLine(id, PPI), 1);
        await waitFor(() => Atomics.load(ram, word(idx, 4)) === 1, T, `PPI ${PPI} on vcpu_id ${id}`, run);
        expect(ram[word(idx, 5)]).toBe(PPI);
        vm.irqLine(ppiLine(id, PPI), 0);
        Atomics.store(ram, word(idx, 7), 1);
      }
      expect(IDS.map((_, idx) => Atomics.load(ram, word(idx, 4)))).toEqual([1, 1, 1, 1, 1, 1]);
      // An id no vCPU has, even below the number of vCPUs' indices: EINVAL.
      for (const id of [6, 7]) expectErrno(() => vm.irqLine(ppiLine(id, PPI), 1), 'EINVAL');
      expect(run.error).toBeUndefined();
    },
    60_000,
  );
});

/**
 * Affinity routing names vcpu_ids: ICC_SGI1R_EL1 target lists and GICD_IROUTER carry MPIDR
 * affinity (vgic_v3_dispatch_sgi, vgic_mmio_write_irouter: kvm_mpidr_to_vcpu). Counts of each
 * INTID taken go to RAM 100 + 64*idx + intid.
 */
const affinityGuest = guestFromFunction((cpu: GuestCpu) => {
  const base = 100 + cpu.id * 64;
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    c.add(base + (iar & 63), 1);
    c.eoi(iar);
  });
  if (cpu.vcpuId === 0) {
    cpu.driver.route(40, 5); // IROUTER: the affinity of vcpu_id 5
    cpu.driver.enable(40);
    cpu.driver.enableDistributor();
  }
  cpu.enableIrqs();
  cpu.add(1, 1);
  if (cpu.vcpuId === 3) {
    while (cpu.load(2) === 0) cpu.relax();
    cpu.sendSgi(2, [5]);
    cpu.sendSgi(3, 'self');
  }
  for (;;) cpu.wfi();
});

describe('GICv3 affinity routing with ids 0,3,5 (created in that order)', () => {
  it('an SGI to [5] reaches vcpu_id 5 (index 2), one to self stays on vcpu_id 3; IROUTER for vcpu_id 5 routes the SPI there', async () => {
    const vm = tracker.track(createVm({ maxVcpus: 8 }));
    const ids = [0, 3, 5];
    ids.forEach((id) => vm.createVcpu(id, { guest: affinityGuest }));
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    const run = startRun(vm);
    const ram = vm.ram;
    const count = (idx: number, intid: number): number => Atomics.load(ram, 100 + idx * 64 + intid);
    await waitFor(() => Atomics.load(ram, 1) === 3, T, 'every vCPU ready', run);
    Atomics.store(ram, 2, 1);
    await waitFor(() => count(2, 2) === 1 && count(1, 3) === 1, T, 'the SGIs of vcpu_id 3', run);
    pulseSpi(vm, 40);
    await waitFor(() => count(2, 40) === 1, T, 'SPI 40 on vcpu_id 5', run);
    expect([0, 1, 2].map((idx) => [count(idx, 2), count(idx, 3), count(idx, 40)])).toEqual([[0, 0, 0], [0, 1, 0], [1, 0, 1]]);
    expect(run.error).toBeUndefined();
  });
});

describe('KVM_CREATE_VCPU id rules (kvm_vm_ioctl_create_vcpu, kvm_arch_vcpu_precreate)', () => {
  it('run results and guest faults name the vCPU by its id', async () => {
    const vm = tracker.track(createVm({ maxVcpus: 8 }));
    vm.createVcpu(6, { guest: guestFromFunction(() => 'six') });
    vm.createVcpu(2, { guest: guestFromFunction(() => 'two') });
    const out = await within(vm.run(), T, 'two returning guests');
    expect(out.map((r) => [r.vcpu, r.result])).toEqual([[6, 'six'], [2, 'two']]);
    const bad = tracker.track(createVm({ maxVcpus: 8 }));
    bad.createVcpu(5, { guest: guestFromFunction(() => { throw new Error('boom'); }) });
    let err: unknown;
    await within(bad.run(), T, 'the faulting guest').catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(GuestFault);
    expect((err as GuestFault).vcpu).toBe(5);
  });

  it('any id below maxVcpus, in any order; a taken id EEXIST; an id at or past the limit EINVAL; EBUSY after CTRL_INIT', () => {
    const vm = tracker.track(createVm({ maxVcpus: 4 }));
    vm.createVcpu(3);
    vm.createVcpu(1);
    expectErrno(() => vm.createVcpu(3), 'EEXIST');
    expectErrno(() => vm.createVcpu(4), 'EINVAL');
    expectErrno(() => vm.createVcpu(-1), 'EINVAL');
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
    vm.createVcpu(0);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, V3_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, V3_REDIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    expectErrno(() => vm.createVcpu(2), 'EBUSY');
    expect(vm.vcpus.map((v) => v.id)).toEqual([3, 1, 0]);
  });

  it('the vCPU count is bounded by maxVcpus whatever the ids (EINVAL once full)', () => {
    const vm = tracker.track(createVm({ maxVcpus: 2 }));
    vm.createVcpu(1);
    vm.createVcpu(0);
    expectErrno(() => vm.createVcpu(1), 'EINVAL'); // created_vcpus >= max_vcpus comes first
  });
});

describe('GICv2 register attributes name vcpu_ids (vgic_v2_parse_attr: kvm_get_vcpu_by_id)', () => {
  it('CPU_REGS of cpuid 5 is the vCPU created with id 5 (index 2); a cpuid no vCPU has is EINVAL for get, set and has', () => {
    const vm = tracker.track(createVm({ maxVcpus: 8 }));
    [0, 3, 5].forEach((id) => vm.createVcpu(id));
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, V2_DIST);
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, V2_CPU);
    const GICC_PMR = 0x4n;
    const attr = (cpuid: number, off: bigint): bigint => (BigInt(cpuid) << KVM_DEV_ARM_VGIC_CPUID_SHIFT) | off;
    // The v2 ABI exposes PMR as GICH_VMCR.VMPriMask: the priority's upper five bits, low-aligned.
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, attr(5, GICC_PMR), 0x15);
    expect(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, attr(5, GICC_PMR))).toBe(0x15n);
    expect(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, attr(3, GICC_PMR))).toBe(0n);
    expect(gic.getAttr(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, attr(0, GICC_PMR))).toBe(0n);
    for (const group of [KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS]) {
      for (const cpuid of [1, 2, 4, 6]) {
        expectErrno(() => gic.hasAttr(group, attr(cpuid, 0n)), 'EINVAL');
        expectErrno(() => gic.getAttr(group, attr(cpuid, 0n)), 'EINVAL');
        expectErrno(() => gic.setAttr(group, attr(cpuid, 0n), 0), 'EINVAL');
      }
      gic.hasAttr(group, attr(5, 0n));
      // The vCPU exists, the register does not: ENXIO (the lookup comes first, then the register).
      expectErrno(() => gic.hasAttr(group, attr(5, 0xd00n)), 'ENXIO');
    }
  });
});
