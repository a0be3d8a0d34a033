/**
 * The ITS KVM device (KVM_DEV_TYPE_ARM_VGIC_ITS; spec §9.1 attributes and errors, §9.2 register
 * values, §9.7 RESET). Expected values are written out from the spec (and the GICv3 register
 * layouts), not read from the implementation's constants.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, type GuestCpu, type KvmDevice, type Vm } from '../../src/index.js';
import {
  KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_ARM_ITS_RESTORE_TABLES, KVM_DEV_ARM_ITS_SAVE_TABLES,
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_ITS_REGS, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_TYPE_ARM_VGIC_ITS,
  KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_V2_ADDR_TYPE_DIST,
  KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../src/uapi/index.js';
import type { ItsDevice } from '../../src/kvm/its-device.js';
import { vgicMmioRead } from '../../src/vgic/mmio/dispatch.js';
import { lockIts, unlockIts } from '../../src/vgic/locks.js';
import { lpiAdd, lpiRecord } from '../../src/vgic/lpi.js';
import { IRQ } from '../../src/shm/layouts.js';
import { irqOff } from '../../src/shm/vm-memory.js';
import { allocCollection, allocDevice, allocIte, findCollection, findDevice } from '../../src/vgic/its/state.js';
import { VmTracker, expectErrno, startRun, waitRam, within } from '../helpers.js';

const ADDR = KVM_DEV_ARM_VGIC_GRP_ADDR;
const CTRL = KVM_DEV_ARM_VGIC_GRP_CTRL;
const REGS = KVM_DEV_ARM_VGIC_GRP_ITS_REGS;
const ALL_ONES = (1n << 64n) - 1n;
const DIST_BASE = 0x08000000n; // 64 KiB
const REDIST_BASE = 0x080a0000n; // 2 x 128 KiB
const ITS_A = 0x08080000n;
const ITS_B = 0x08100000n;

const GITS_CTLR = 0x0;
const GITS_IIDR = 0x4;
const GITS_TYPER = 0x8;
const GITS_CBASER = 0x80;
const GITS_CWRITER = 0x88;
const GITS_CREADR = 0x90;
const GITS_BASER0 = 0x100;
const GITS_BASER1 = 0x108;
const GITS_BASER2 = 0x110;
const GITS_PIDR2 = 0xffe8;
const VALID = 1n << 63n;

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

/** A guest that raises RAM[0] and spins until RAM[1] is set (holding its vcpu->mutex meanwhile). */
const spinner = guestFromFunction((cpu: GuestCpu) => {
  cpu.store(0, 1);
  while (cpu.load(1) === 0) cpu.relax();
  return cpu.id;
});

interface V3 {
  vm: Vm;
  gic: KvmDevice;
}

function v3Vm(o: { vcpus?: number; ipaBits?: number; spin?: boolean; init?: boolean } = {}): V3 {
  const vm = tracker.track(createVm({ maxVcpus: 2, ipaBits: o.ipaBits }));
  const n = o.vcpus ?? 2;
  for (let i = 0; i < n; i++) vm.createVcpu(i, { guest: i === 0 && o.spin ? spinner : 'idle' });
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  if (o.init !== false) {
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, DIST_BASE);
    gic.setAttr(ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, REDIST_BASE);
    gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  }
  return { vm, gic };
}

function newIts(vm: Vm, base: bigint | null = ITS_A): ItsDevice {
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS) as ItsDevice;
  if (base !== null) {
    its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, base);
    its.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  }
  return its;
}

/** Command queue, device and collection tables (guest RAM addresses), all Valid. */
function setTables(its: KvmDevice): void {
  its.setAttr(REGS, GITS_CBASER, VALID | 0x30000n);
  its.setAttr(REGS, GITS_BASER0, VALID | 0x10000n);
  its.setAttr(REGS, GITS_BASER1, VALID | 0x20000n);
}

describe('§9.1 ITS creation', () => {
  it('without any vgic -> ENODEV', () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0);
    expectErrno(() => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS), 'ENODEV');
  });

  it('with a GICv2 vgic -> ENODEV', () => {
    const vm = tracker.track(createVm());
    vm.createVcpu(0);
    const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V2);
    gic.setAttr(ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, DIST_BASE);
    expectErrno(() => vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS), 'ENODEV');
  });

  it('with a GICv3 vgic: succeeds, several times (one instance each)', () => {
    const { vm } = v3Vm();
    const a = newIts(vm, null);
    const b = newIts(vm, null);
    expect([a.index, b.index]).toEqual([0, 1]);
  });

  it('GICD_TYPER.LPIS and GICR_TYPER.PLPIS become set once an ITS exists', () => {
    const { vm, gic } = v3Vm();
    const gicdTyper = (): bigint => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 0x4n);
    // REDIST_REGS attr: MPIDR affinity [63:32] (vCPU 1: Aff0 = 1) | offset (GICR_TYPER = 0x8).
    const gicrTyper = (v: number): bigint => gic.getAttr(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, (BigInt(v) << 32n) | 0x8n);
    expect((gicdTyper() >> 17n) & 1n).toBe(0n);
    expect(gicrTyper(0) & 1n).toBe(0n);
    expect(gicrTyper(1) & 1n).toBe(0n);
    newIts(vm, null);
    expect((gicdTyper() >> 17n) & 1n).toBe(1n);
    expect(gicrTyper(0) & 1n).toBe(1n);
    expect(gicrTyper(1) & 1n).toBe(1n);
    // The guest's view agrees (vCPU 1 reading its own GICR_TYPER and the distributor's).
    const h = vm.host;
    expect((vgicMmioRead(h, 1, Number(DIST_BASE) + 0x4, 4) >>> 17) & 1).toBe(1);
    expect(vgicMmioRead(h, 1, Number(REDIST_BASE) + 0x20000 + 0x8, 4) & 1).toBe(1);
  });
});

describe('§9.1 ADDR group', () => {
  it('all-ones before it is set; the address afterwards', () => {
    const { vm } = v3Vm();
    const its = newIts(vm, null);
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ALL_ONES);
    its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_A);
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ITS_A);
  });

  it.each([0, 1, 2, 3, 5])('attr %i (not KVM_VGIC_ITS_ADDR_TYPE) -> ENODEV on set and get, ENXIO on has', (attr) => {
    const { vm } = v3Vm();
    const its = newIts(vm, null);
    expectErrno(() => its.setAttr(ADDR, attr, ITS_A), 'ENODEV');
    expectErrno(() => its.getAttr(ADDR, attr), 'ENODEV');
    expectErrno(() => its.hasAttr(ADDR, attr), 'ENXIO');
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ALL_ONES);
  });

  it.each([
    ['4 KiB aligned', ITS_A + 0x1000n],
    ['32 KiB aligned', ITS_A + 0x8000n],
    ['odd', ITS_A + 1n],
  ])('not 64 KiB aligned (%s) -> EINVAL', (_n, addr) => {
    const { vm } = v3Vm();
    const its = newIts(vm, null);
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, addr), 'EINVAL');
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ALL_ONES);
  });

  it('beyond a 32-bit IPA space -> E2BIG; a frame ending exactly at 4 GiB is fine', () => {
    const { vm } = v3Vm({ ipaBits: 32 });
    const its = newIts(vm, null);
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, 1n << 32n), 'E2BIG');
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, 0xffff0000n), 'E2BIG'); // 128 KiB frame crosses 4 GiB
    its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, 0xfffe0000n);
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(0xfffe0000n);
  });

  it('a second set -> EEXIST (even with the same value)', () => {
    const { vm } = v3Vm();
    const its = newIts(vm, ITS_A);
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_A), 'EEXIST');
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_B), 'EEXIST');
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ITS_A);
  });

  it.each([
    ['the distributor (same base)', DIST_BASE],
    ['the distributor (frame ends inside it)', DIST_BASE - 0x10000n],
    ["vCPU 0's redistributor", REDIST_BASE],
    ["vCPU 1's redistributor", REDIST_BASE + 0x30000n],
  ])('overlapping %s -> EINVAL', (_n, addr) => {
    const { vm } = v3Vm();
    const its = newIts(vm, null);
    expectErrno(() => its.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, addr), 'EINVAL');
    expect(its.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ALL_ONES);
  });

  it('two ITSs: overlapping frames -> EINVAL; adjacent ones each get their own registers', () => {
    const { vm } = v3Vm();
    const a = newIts(vm, ITS_A);
    const b = newIts(vm, null);
    expectErrno(() => b.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_A), 'EINVAL');
    expectErrno(() => b.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_A + 0x10000n), 'EINVAL');
    expectErrno(() => b.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_A - 0x10000n), 'EINVAL');
    b.setAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_B);
    b.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    expect(a.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ITS_A);
    expect(b.getAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE)).toBe(ITS_B);
    a.setAttr(REGS, GITS_BASER0, VALID | 0x10000n);
    b.setAttr(REGS, GITS_BASER0, VALID | 0x50000n);
    expect(a.getAttr(REGS, GITS_BASER0) & 0x0000_ffff_ffff_0000n).toBe(0x10000n);
    expect(b.getAttr(REGS, GITS_BASER0) & 0x0000_ffff_ffff_0000n).toBe(0x50000n);
    // The guest reaches each instance at its own frame.
    const h = vm.host;
    expect(vgicMmioRead(h, 0, Number(ITS_A) + GITS_BASER0, 4) >>> 0).toBe(0x10200);
    expect(vgicMmioRead(h, 0, Number(ITS_B) + GITS_BASER0, 4) >>> 0).toBe(0x50200);
  });

  it('has ADDR attr KVM_VGIC_ITS_ADDR_TYPE', () => {
    const { vm } = v3Vm();
    newIts(vm, null).hasAttr(ADDR, KVM_VGIC_ITS_ADDR_TYPE);
  });
});

describe('§9.1 CTRL group', () => {
  it('hasAttr: INIT, RESET, SAVE_TABLES, RESTORE_TABLES exist; others -> ENXIO', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    for (const a of [KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_ARM_ITS_SAVE_TABLES, KVM_DEV_ARM_ITS_RESTORE_TABLES]) its.hasAttr(CTRL, a);
    for (const a of [3, 5, 99]) expectErrno(() => its.hasAttr(CTRL, a), 'ENXIO');
  });

  it('an unknown CTRL attribute -> ENXIO; CTRL cannot be read -> ENXIO', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    expectErrno(() => its.setAttr(CTRL, 3), 'ENXIO'); // 3 is the vgic's SAVE_PENDING_TABLES
    expectErrno(() => its.setAttr(CTRL, 99), 'ENXIO');
    expectErrno(() => its.getAttr(CTRL, KVM_DEV_ARM_ITS_CTRL_RESET), 'ENXIO');
  });

  it('an unknown attribute group -> ENXIO for set, get and has', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    for (const g of [KVM_DEV_ARM_VGIC_GRP_DIST_REGS, 3, 42]) {
      expectErrno(() => its.setAttr(g, 0, 0), 'ENXIO');
      expectErrno(() => its.getAttr(g, 0), 'ENXIO');
      expectErrno(() => its.hasAttr(g, 0), 'ENXIO');
    }
  });

  it('RESET: BASER Valid bits, CBASER, CREADR/CWRITER, enable cleared; devices and collections freed', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    const h = vm.host;
    setTables(its);
    its.setAttr(REGS, GITS_CWRITER, 0x40n);
    its.setAttr(REGS, GITS_CREADR, 0x40n);
    its.setAttr(REGS, GITS_CTLR, 1n); // CREADR == CWRITER: nothing to process
    expect(its.getAttr(REGS, GITS_CTLR) & 1n).toBe(1n);
    lockIts(h, its.index);
    try {
      expect(allocCollection(h, its.index, 1, 0)).toBeGreaterThanOrEqual(0);
      const d = allocDevice(h, its.index, 7, 0x70000, 4);
      for (const [ev, lpi] of [[0, 8192], [1, 8193]] as const) {
        expect(lpiAdd(h, lpi, 0)).toBeGreaterThanOrEqual(0);
        expect(allocIte(h, its.index, d, ev, 1, lpi)).toBeGreaterThanOrEqual(0);
      }
    } finally {
      unlockIts(h, its.index);
    }
    const refs = (lpi: number): number => h.m[irqOff(h.g, lpiRecord(h, lpi)) + IRQ.off.refcount]!;
    expect(refs(8192)).toBe(1);
    const iidr = its.getAttr(REGS, GITS_IIDR);
    its.setAttr(CTRL, KVM_DEV_ARM_ITS_CTRL_RESET);
    expect(its.getAttr(REGS, GITS_CTLR) & 1n).toBe(0n);
    expect(its.getAttr(REGS, GITS_CBASER)).toBe(0n);
    expect(its.getAttr(REGS, GITS_CREADR)).toBe(0n);
    expect(its.getAttr(REGS, GITS_CWRITER)).toBe(0n);
    expect(its.getAttr(REGS, GITS_BASER0) & VALID).toBe(0n);
    expect(its.getAttr(REGS, GITS_BASER1) & VALID).toBe(0n);
    expect(its.getAttr(REGS, GITS_IIDR)).toBe(iidr); // the ABI revision is kept
    expect(findDevice(h, its.index, 7)).toBe(-1);
    expect(findCollection(h, its.index, 1)).toBe(-1);
    expect(refs(8192)).toBe(0);
    expect(refs(8193)).toBe(0);
  });

  it('RESET keeps the BASERs other than Valid (the kernel clears only GITS_BASER_VALID)', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    const b0 = VALID | 0x10000n | 3n; // 4 pages
    const b1 = VALID | 0x20000n;
    its.setAttr(REGS, GITS_BASER0, b0);
    its.setAttr(REGS, GITS_BASER1, b1);
    const before0 = its.getAttr(REGS, GITS_BASER0);
    const before1 = its.getAttr(REGS, GITS_BASER1);
    its.setAttr(CTRL, KVM_DEV_ARM_ITS_CTRL_RESET);
    expect(its.getAttr(REGS, GITS_BASER0).toString(16)).toBe((before0 & ~VALID).toString(16));
    expect(its.getAttr(REGS, GITS_BASER1).toString(16)).toBe((before1 & ~VALID).toString(16));
  });

  it('INIT is a no-op that succeeds; RESET/SAVE/RESTORE need every vCPU stopped -> EBUSY', async () => {
    const { vm } = v3Vm({ spin: true });
    const its = newIts(vm);
    setTables(its);
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'vCPU 0 to spin inside KVM_RUN', run);
    its.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    for (const a of [KVM_DEV_ARM_ITS_CTRL_RESET, KVM_DEV_ARM_ITS_SAVE_TABLES, KVM_DEV_ARM_ITS_RESTORE_TABLES]) {
      expectErrno(() => its.setAttr(CTRL, a), 'EBUSY');
    }
    Atomics.store(vm.ram, 1, 1);
    await within(run.promise, 10_000, 'the vCPUs to return');
    its.setAttr(CTRL, KVM_DEV_ARM_ITS_CTRL_RESET);
    expect(its.getAttr(REGS, GITS_BASER0) & VALID).toBe(0n);
  });
});

describe('§9.1/§9.2 ITS_REGS group', () => {
  it('before the frame address is set -> ENXIO', () => {
    const { vm } = v3Vm();
    const its = newIts(vm, null);
    expectErrno(() => its.getAttr(REGS, GITS_TYPER), 'ENXIO');
    expectErrno(() => its.setAttr(REGS, GITS_CBASER, VALID | 0x30000n), 'ENXIO');
  });

  it.each([
    ['CBASER + 4', GITS_CBASER + 4],
    ['TYPER + 4', GITS_TYPER + 4],
    ['BASER0 + 4', GITS_BASER0 + 4],
    ['CREADR + 2', GITS_CREADR + 2],
    ['CTLR + 2', GITS_CTLR + 2],
    ['IIDR + 1', GITS_IIDR + 1],
  ])('misaligned offset (%s) -> EINVAL', (_n, off) => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    expectErrno(() => its.getAttr(REGS, off), 'EINVAL');
    expectErrno(() => its.setAttr(REGS, off, 0n), 'EINVAL');
  });

  it('32-bit registers at 4-byte offsets are accepted (IIDR, PIDR2)', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    its.getAttr(REGS, GITS_IIDR);
    its.getAttr(REGS, GITS_PIDR2);
  });

  it.each([
    ['0x10', 0x10],
    ['0x40', 0x40],
    ['0x98', 0x98],
    ['0x200', 0x200],
    ['0xc000', 0xc000],
  ])('no register at %s -> ENXIO', (_n, off) => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    expectErrno(() => its.getAttr(REGS, off), 'ENXIO');
    expectErrno(() => its.setAttr(REGS, off, 0n), 'ENXIO');
    expectErrno(() => its.hasAttr(REGS, off), 'ENXIO');
  });

  it('hasAttr: the saved/restored registers exist', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    for (const off of [GITS_CTLR, GITS_IIDR, GITS_TYPER, GITS_CBASER, GITS_CWRITER, GITS_CREADR, GITS_BASER0, GITS_BASER1, GITS_PIDR2]) {
      its.hasAttr(REGS, off);
    }
  });

  it('hasAttr: a misaligned register offset -> EINVAL (as the access would fail)', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    expectErrno(() => its.hasAttr(REGS, GITS_CBASER + 4), 'EINVAL');
    expectErrno(() => its.hasAttr(REGS, GITS_CTLR + 2), 'EINVAL');
  });

  it('GITS_TYPER: Physical, ITT entry size 8, IDbits 16, Devbits 16, PTA 0, CIL 0', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    const t = its.getAttr(REGS, GITS_TYPER);
    expect(t & 1n).toBe(1n); // Physical
    expect((t >> 4n) & 0xfn).toBe(7n); // ITT_entry_size - 1
    expect((t >> 8n) & 0x1fn).toBe(15n); // ID_bits - 1
    expect((t >> 13n) & 0x1fn).toBe(15n); // Devbits - 1
    expect((t >> 19n) & 1n).toBe(0n); // PTA: target addresses are vCPU ids
    expect((t >> 36n) & 1n).toBe(0n); // CIL: 16-bit collection IDs
    expect(t).toBe(0x1ef71n);
    its.setAttr(REGS, GITS_TYPER, 0n); // read-only: ignored
    expect(its.getAttr(REGS, GITS_TYPER)).toBe(0x1ef71n);
  });

  it('GITS_IIDR: ProductID K, revision 0, implementer ARM; a revision >= 1 -> EINVAL', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    const iidr = its.getAttr(REGS, GITS_IIDR);
    expect(iidr).toBe((0x4bn << 24n) | 0x43bn);
    its.setAttr(REGS, GITS_IIDR, iidr);
    expectErrno(() => its.setAttr(REGS, GITS_IIDR, iidr | (1n << 12n)), 'EINVAL');
    expectErrno(() => its.setAttr(REGS, GITS_IIDR, iidr | (0xfn << 12n)), 'EINVAL');
    expect(its.getAttr(REGS, GITS_IIDR)).toBe(iidr);
  });

  it('GITS_BASER<n>: Type, Entry_Size and Page_Size are read-only; only BASER0 may be indirect; BASER2+ read 0', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    const RO_MASK = (7n << 56n) | (0x1fn << 48n) | (3n << 8n);
    const type = (v: bigint): bigint => (v >> 56n) & 7n;
    const esz = (v: bigint): bigint => (v >> 48n) & 0x1fn;
    const psz = (v: bigint): bigint => (v >> 8n) & 3n;
    for (const [off, t] of [[GITS_BASER0, 1n], [GITS_BASER1, 4n]] as const) {
      its.setAttr(REGS, off, 0n);
      let v = its.getAttr(REGS, off);
      expect([type(v), esz(v), psz(v)]).toEqual([t, 7n, 2n]);
      its.setAttr(REGS, off, RO_MASK | 0x40000n); // try to overwrite them
      v = its.getAttr(REGS, off);
      expect([type(v), esz(v), psz(v)]).toEqual([t, 7n, 2n]);
      expect(v & 0x0000_ffff_ffff_0000n).toBe(0x40000n);
    }
    its.setAttr(REGS, GITS_BASER0, VALID | (1n << 62n) | 0x10000n);
    its.setAttr(REGS, GITS_BASER1, VALID | (1n << 62n) | 0x20000n);
    expect((its.getAttr(REGS, GITS_BASER0) >> 62n) & 1n).toBe(1n);
    expect((its.getAttr(REGS, GITS_BASER1) >> 62n) & 1n).toBe(0n);
    its.setAttr(REGS, GITS_BASER2, ALL_ONES);
    expect(its.getAttr(REGS, GITS_BASER2)).toBe(0n);
  });

  it('GITS_CREADR: restored after CBASER; beyond the queue -> EINVAL; while enabled -> EBUSY', () => {
    const { vm } = v3Vm();
    const its = newIts(vm);
    setTables(its); // CBASER Size 0: a 4 KiB queue
    its.setAttr(REGS, GITS_CREADR, 0xfe0n);
    expect(its.getAttr(REGS, GITS_CREADR)).toBe(0xfe0n);
    expectErrno(() => its.setAttr(REGS, GITS_CREADR, 0x1000n), 'EINVAL');
    expect(its.getAttr(REGS, GITS_CREADR)).toBe(0xfe0n);
    // A CBASER write empties the queue.
    its.setAttr(REGS, GITS_CBASER, VALID | 0x30000n);
    expect(its.getAttr(REGS, GITS_CREADR)).toBe(0n);
    its.setAttr(REGS, GITS_CTLR, 1n);
    expect(its.getAttr(REGS, GITS_CTLR) & 1n).toBe(1n);
    expectErrno(() => its.setAttr(REGS, GITS_CREADR, 0x20n), 'EBUSY');
    expect(its.getAttr(REGS, GITS_CREADR)).toBe(0n);
  });

  it('access while a vCPU runs -> EBUSY; once it returned, access works', async () => {
    const { vm } = v3Vm({ spin: true });
    const its = newIts(vm);
    const run = startRun(vm);
    await waitRam(vm, 0, 10_000, 'vCPU 0 to spin inside KVM_RUN', run);
    expectErrno(() => its.getAttr(REGS, GITS_TYPER), 'EBUSY');
    expectErrno(() => its.setAttr(REGS, GITS_BASER0, VALID | 0x10000n), 'EBUSY');
    Atomics.store(vm.ram, 1, 1);
    await within(run.promise, 10_000, 'the vCPUs to return');
    expect(its.getAttr(REGS, GITS_TYPER)).toBe(0x1ef71n);
    expect(its.getAttr(REGS, GITS_BASER0) & VALID).toBe(0n);
  });
});
