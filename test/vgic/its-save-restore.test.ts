/**
 * ITS table save/restore (spec §9.7, ABI rev 0; §9.1 errors). ITS state is set up directly with
 * the state.ts / lpi.ts helpers (not through commands), saved with KVM_DEV_ARM_ITS_SAVE_TABLES,
 * and the raw table bytes are compared with encodings computed by hand in this file, so the
 * format is checked independently of the code under test. Guest RAM is then copied into a fresh
 * VM, restored in the documented order, and the rebuilt translations compared.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, type GuestCpu, type KvmDevice, type Vm } from '../../src/index.js';
import {
  KVM_DEV_ARM_ITS_RESTORE_TABLES, KVM_DEV_ARM_ITS_SAVE_TABLES, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR,
  KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_VGIC_ITS_ADDR_TYPE, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
} from '../../src/uapi/index.js';
import type { ItsDevice } from '../../src/kvm/its-device.js';
import { IRQ, LPI_BASE, MAX_LPIS, NR_COLLECTIONS, NR_ITS_DEVICES, VCPU } from '../../src/shm/layouts.js';
import { irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { D, type Host } from '../../src/vgic/host.js';
import { setReg64 } from '../../src/vgic/guest-mem.js';
import { lockIts, unlockIts } from '../../src/vgic/locks.js';
import { lpiAdd, lpiRecord } from '../../src/vgic/lpi.js';
import {
  allocCollection, allocDevice, allocIte, COLL, collOff, DEV, deviceIttAddr, devOff, findCollection, findDevice, ITE, iteOff,
  NO_COLLECTION,
} from '../../src/vgic/its/state.js';
import { VmTracker, expectErrno, startRun, waitRam, within } from '../helpers.js';

const CTRL = KVM_DEV_ARM_VGIC_GRP_CTRL;
const REGS = KVM_DEV_ARM_VGIC_GRP_ITS_REGS;
const ITS_BASE = 0x08080000n;
const GITS_CTLR = 0x0;
const GITS_IIDR = 0x4;
const GITS_CBASER = 0x80;
const GITS_CWRITER = 0x88;
const GITS_CREADR = 0x90;
const GITS_BASER0 = 0x100;
const GITS_BASER1 = 0x108;
const VALID = 1n << 63n;
const INDIRECT = 1n << 62n;

/** Guest-RAM layout (1 MiB of RAM; words 0..1 belong to the spinning guest). */
const DT = 0x10000; // device table, one 64 KiB page
const CT = 0x20000; // collection table, one page
const CMDQ = 0x30000; // command queue, 4 KiB
const PROP = 0x40000; // LPI property table
const PEND = [0x50000, 0x60000]; // per-vCPU pending tables
const ITT_A = 0x70000;
const ITT_B = 0x71000;
const ITT_C = 0x72000;

const tracker = new VmTracker();
afterEach(() => tracker.destroyAll());

/** A guest that raises RAM[0] and spins until RAM[1] is set (holding its vcpu->mutex meanwhile). */
const spinner = guestFromFunction((cpu: GuestCpu) => {
  cpu.store(0, 1);
  while (cpu.load(1) === 0) cpu.relax();
  return cpu.id;
});

interface ItsVm {
  vm: Vm;
  h: Host;
  its: ItsDevice;
}

/**
 * Two vCPUs, a GICv3 with DIST/REDIST addresses and CTRL_INIT, PROPBASER (IDbits 13) and each
 * vCPU's PENDBASER with LPIs enabled, then an ITS at ITS_BASE with CTRL_INIT. Registers of the ITS
 * itself (CBASER, BASERs) are left to the caller.
 */
function buildItsVm(opts: { spinVcpu0?: boolean; vcpus?: number; ids?: number[] } = {}): ItsVm {
  const vm = tracker.track(createVm({ maxVcpus: 2 }));
  const ids = opts.ids ?? Array.from({ length: opts.vcpus ?? 2 }, (_, i) => i);
  const n = ids.length;
  ids.forEach((id, i) => vm.createVcpu(id, { guest: i === 0 && opts.spinVcpu0 ? spinner : 'idle' }));
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x08000000n);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
  gic.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  const h = vm.host;
  setReg64(h.m, D.propbaserLo, BigInt(PROP) | 13n);
  for (let v = 0; v < n; v++) {
    setReg64(h.m, vcpuOff(h.g, v) + VCPU.off.pendbaserLo, BigInt(PEND[v]!));
    h.m[vcpuOff(h.g, v) + VCPU.off.gicrCtlr] = 1;
  }
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS) as ItsDevice;
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, ITS_BASE);
  its.setAttr(CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  return { vm, h, its };
}

/** BASER value: Valid | address | Size (pages - 1). */
const baser = (addr: number, pages = 1, extra = 0n): bigint => VALID | BigInt(addr) | BigInt(pages - 1) | extra;

function setTables(its: KvmDevice, dtPages = 1, dtExtra = 0n): void {
  its.setAttr(REGS, GITS_CBASER, VALID | BigInt(CMDQ));
  its.setAttr(REGS, GITS_BASER0, baser(DT, dtPages, dtExtra));
  its.setAttr(REGS, GITS_BASER1, baser(CT));
}

/** Run fn under the ITS's its_lock (the state.ts helpers expect it). */
function underItsLock<T>(x: ItsVm, fn: () => T): T {
  lockIts(x.h, x.its.index);
  try {
    return fn();
  } finally {
    unlockIts(x.h, x.its.index);
  }
}

/** ITE of device slot `dev` for an LPI: takes the LPI reference as MAPTI does. */
function mapIte(x: ItsVm, dev: number, eventId: number, icid: number, intid: number): void {
  const c = findCollection(x.h, x.its.index, icid);
  const target = c < 0 ? -1 : x.h.m[collOff(x.h, x.its.index, c) + COLL.target]!;
  expect(lpiAdd(x.h, intid, target)).toBeGreaterThanOrEqual(0);
  expect(allocIte(x.h, x.its.index, dev, eventId, icid, intid)).toBeGreaterThanOrEqual(0);
}

const ram64 = (h: Host, gpa: number): bigint => h.ramView.getBigUint64(gpa, true);
const setRam64 = (h: Host, gpa: number, v: bigint): void => h.ramView.setBigUint64(gpa, v, true);

interface Snapshot {
  devices: { id: number; itt: number; bits: number; ites: { ev: number; lpi: number; icid: number }[] }[];
  collections: { icid: number; target: number }[];
}

/** The ITS's translations as plain data, sorted. */
function snapshot(h: Host, its: number): Snapshot {
  const m = h.m;
  const devices: Snapshot['devices'] = [];
  for (let s = 0; s < NR_ITS_DEVICES; s++) {
    const d = devOff(h, its, s);
    if (!m[d + DEV.valid]) continue;
    const ites: Snapshot['devices'][number]['ites'] = [];
    for (let i = m[d + DEV.iteHead]!; i >= 0; i = m[iteOff(h, its, i) + ITE.next]!) {
      const e = iteOff(h, its, i);
      ites.push({ ev: m[e + ITE.eventId]!, lpi: m[e + ITE.lpi]!, icid: m[e + ITE.icid]! });
    }
    ites.sort((a, b) => a.ev - b.ev);
    devices.push({ id: m[d + DEV.deviceId]!, itt: deviceIttAddr(h, its, s), bits: m[d + DEV.eventBits]!, ites });
  }
  devices.sort((a, b) => a.id - b.id);
  const collections: Snapshot['collections'] = [];
  for (let s = 0; s < NR_COLLECTIONS; s++) {
    const c = collOff(h, its, s);
    if (m[c + COLL.valid]) collections.push({ icid: m[c + COLL.icid]!, target: m[c + COLL.target]! });
  }
  collections.sort((a, b) => a.icid - b.icid);
  return { devices, collections };
}

const lpiField = (h: Host, intid: number, f: keyof typeof IRQ.off): number => h.m[irqOff(h.g, lpiRecord(h, intid)) + IRQ.off[f]]!;
const refs = (h: Host, intid: number): number => lpiField(h, intid, 'refcount');

/**
 * The standard population:
 *   collections ICID 3 -> vCPU 1, ICID 0 -> vCPU 0, ICID 7 unmapped (allocated in that order);
 *   DeviceID 5 (ITT_A, 4 bits): ev 0 -> 8192/ICID 0, ev 2 -> 8200/ICID 3, ev 9 -> 8195/ICID 7,
 *     ev 11 -> 8197 whose collection was unmapped (NO_COLLECTION);
 *   DeviceID 2 (ITT_B, 2 bits): ev 1 -> 8200/ICID 3 (the same LPI as 5/2);
 *   DeviceID 40 (ITT_C, 1 bit): no ITEs.
 */
function populate(x: ItsVm): void {
  underItsLock(x, () => {
    const i = x.its.index;
    expect(allocCollection(x.h, i, 3, 1)).toBeGreaterThanOrEqual(0);
    expect(allocCollection(x.h, i, 0, 0)).toBeGreaterThanOrEqual(0);
    expect(allocCollection(x.h, i, 7, -1)).toBeGreaterThanOrEqual(0);
    const d5 = allocDevice(x.h, i, 5, ITT_A, 4);
    const d2 = allocDevice(x.h, i, 2, ITT_B, 2);
    expect(allocDevice(x.h, i, 40, ITT_C, 1)).toBeGreaterThanOrEqual(0);
    mapIte(x, d5, 9, 7, 8195);
    mapIte(x, d5, 0, 0, 8192);
    mapIte(x, d5, 2, 3, 8200);
    mapIte(x, d5, 11, NO_COLLECTION, 8197);
    mapIte(x, d2, 1, 3, 8200);
  });
  // Property bytes: priority | enable.
  x.h.ram[PROP + 8192 - LPI_BASE] = 0x40 | 1;
  x.h.ram[PROP + 8195 - LPI_BASE] = 0x80;
  x.h.ram[PROP + 8197 - LPI_BASE] = 0x20 | 1;
  x.h.ram[PROP + 8200 - LPI_BASE] = 0xa0 | 1;
}

/** Hand-computed encodings of the standard population (fields spelled out). */
const EXPECTED = {
  dte: [
    // DeviceID 2: Valid | next 3 (5-2) <<49 | ITT 0x71000>>8 = 0x710 <<5 = 0xe200 | size 2-1 = 1
    { gpa: DT + 2 * 8, v: 0x8006_0000_0000_e201n },
    // DeviceID 5: Valid | next 35 (40-5) <<49 = 0x46 <<48 | 0x700 <<5 = 0xe000 | size 3
    { gpa: DT + 5 * 8, v: 0x8046_0000_0000_e003n },
    // DeviceID 40: Valid | next 0 (last) | 0x720 <<5 = 0xe400 | size 0
    { gpa: DT + 40 * 8, v: 0x8000_0000_0000_e400n },
  ],
  ite: [
    // DeviceID 5 ev 0: next 2 <<48 | pINTID 0x2000 <<16 | ICID 0
    { gpa: ITT_A + 0 * 8, v: 0x0002_0000_2000_0000n },
    // ev 2: next 7 (9-2) | 0x2008 <<16 | ICID 3
    { gpa: ITT_A + 2 * 8, v: 0x0007_0000_2008_0003n },
    // ev 9: next 0 (ev 11 has no collection, so it is not saved) | 0x2003 <<16 | ICID 7
    { gpa: ITT_A + 9 * 8, v: 0x0000_0000_2003_0007n },
    // DeviceID 2 ev 1: last | 0x2008 <<16 | ICID 3
    { gpa: ITT_B + 1 * 8, v: 0x0000_0000_2008_0003n },
  ],
  cte: [
    0x8000_0000_0001_0003n, // Valid | RDbase 1 <<16 | ICID 3
    0x8000_0000_0000_0000n, // Valid | RDbase 0 | ICID 0
    0x8000_ffff_ffff_0007n, // Valid | RDbase 0xffffffff (not mapped) <<16 | ICID 7
  ],
};

/** Save the standard population; returns the source VM. */
function savedSource(): ItsVm {
  const src = buildItsVm();
  setTables(src.its);
  src.its.setAttr(REGS, GITS_CTLR, 1n); // enabled (CBASER and both BASERs are valid)
  expect(src.its.getAttr(REGS, GITS_CTLR) & 1n).toBe(1n);
  populate(src);
  // Markers where the save must write (terminator) or must not (ev 11 of DeviceID 5).
  setRam64(src.h, CT + 3 * 8, 0xdead_beefn);
  setRam64(src.h, ITT_A + 11 * 8, 0n);
  src.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
  return src;
}

/** Copy guest RAM from `from` into a fresh VM and restore its ITS in the documented order. */
function restoreInto(from: ItsVm, before?: (to: ItsVm) => void, ids?: number[]): ItsVm {
  const to = buildItsVm({ ids });
  to.vm.ram.set(from.vm.ram);
  before?.(to);
  const regs = (off: number): bigint => from.its.getAttr(REGS, off);
  // ITS base address (done in buildItsVm), CBASER, the other registers except CTLR (CREADR after
  // CBASER, IIDR before RESTORE_TABLES), RESTORE_TABLES, then CTLR.
  to.its.setAttr(REGS, GITS_CBASER, regs(GITS_CBASER));
  for (const off of [GITS_CWRITER, GITS_CREADR, GITS_IIDR, GITS_BASER0, GITS_BASER1]) to.its.setAttr(REGS, off, regs(off));
  to.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES);
  to.its.setAttr(REGS, GITS_CTLR, regs(GITS_CTLR));
  return to;
}

describe('CTE RDbase is a vcpu_id (GITS_TYPER.PTA = 0)', () => {
  it('saved from vCPUs created as ids 1, 0; restored into vCPUs created as 0, 1: each collection targets the same vcpu_id', () => {
    const src = buildItsVm({ ids: [1, 0] });
    setTables(src.its);
    src.its.setAttr(REGS, GITS_CTLR, 1n);
    populate(src); // ICID 3 -> index 1 (vcpu_id 0), ICID 0 -> index 0 (vcpu_id 1)
    src.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
    const ctes = [0, 1, 2].map((k) => ram64(src.h, CT + k * 8).toString(16)).sort();
    expect(ctes).toEqual([
      0x8000_0000_0000_0003n, // Valid | RDbase 0 | ICID 3
      0x8000_0000_0001_0000n, // Valid | RDbase 1 <<16 | ICID 0
      0x8000_ffff_ffff_0007n, // not mapped
    ].map((v) => v.toString(16)).sort());
    const dst = restoreInto(src, undefined, [0, 1]);
    const target = (icid: number): number => dst.h.m[collOff(dst.h, dst.its.index, findCollection(dst.h, dst.its.index, icid)) + COLL.target]!;
    expect([target(3), target(0)]).toEqual([0, 1]); // here vcpu_id 0 is index 0, vcpu_id 1 index 1
  });
});

describe('§9.7 SAVE_TABLES: ABI rev 0 encodings', () => {
  it('writes DTEs, ITEs and CTEs exactly as hand-computed', () => {
    const src = savedSource();
    const h = src.h;
    for (const { gpa, v } of EXPECTED.dte) expect(ram64(h, gpa).toString(16), `DTE at 0x${gpa.toString(16)}`).toBe(v.toString(16));
    for (const { gpa, v } of EXPECTED.ite) expect(ram64(h, gpa).toString(16), `ITE at 0x${gpa.toString(16)}`).toBe(v.toString(16));
    // No other DTE was written (the table was zero).
    for (let id = 0; id < 64; id++) if (![2, 5, 40].includes(id)) expect(ram64(h, DT + id * 8)).toBe(0n);
    // ITE slots of unmapped events stay zero, including ev 11 whose collection was unmapped.
    for (const ev of [1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]) expect(ram64(h, ITT_A + ev * 8), `ITT_A ev ${ev}`).toBe(0n);
    // CTEs: unordered, then one invalid entry.
    const ctes = [0, 1, 2].map((k) => ram64(h, CT + k * 8));
    expect(ctes.map((v) => v.toString(16)).sort()).toEqual(EXPECTED.cte.map((v) => v.toString(16)).sort());
    expect(ram64(h, CT + 3 * 8)).toBe(0n);
  });

  it('an invalid BASER skips its table: nothing is written, the call succeeds', () => {
    const x = buildItsVm();
    x.its.setAttr(REGS, GITS_CBASER, VALID | BigInt(CMDQ));
    x.its.setAttr(REGS, GITS_BASER0, BigInt(DT)); // not Valid
    x.its.setAttr(REGS, GITS_BASER1, BigInt(CT));
    underItsLock(x, () => {
      allocCollection(x.h, x.its.index, 1, 0);
      allocDevice(x.h, x.its.index, 3, ITT_A, 2);
    });
    setRam64(x.h, CT, 0x1234n);
    x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
    expect(ram64(x.h, DT + 3 * 8)).toBe(0n);
    expect(ram64(x.h, CT)).toBe(0x1234n);
  });

  it('next offsets are capped: DTE at 2^14-1, and the restore still finds the far device', () => {
    const src = buildItsVm();
    const FAR = 20000;
    // Device table of 3 pages (24576 entries) so DeviceID 20000 fits.
    src.its.setAttr(REGS, GITS_CBASER, VALID | BigInt(CMDQ));
    src.its.setAttr(REGS, GITS_BASER0, baser(0x80000, 3));
    src.its.setAttr(REGS, GITS_BASER1, baser(CT));
    underItsLock(src, () => {
      allocCollection(src.h, src.its.index, 0, 0);
      allocDevice(src.h, src.its.index, 0, ITT_A, 1);
      const far = allocDevice(src.h, src.its.index, FAR, ITT_B, 1);
      mapIte(src, far, 1, 0, 8300);
    });
    src.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
    // DeviceID 0: Valid | next 0x3fff <<49 | 0x700 <<5 | size 0.
    expect(ram64(src.h, 0x80000).toString(16)).toBe((VALID | (0x3fffn << 49n) | 0xe000n).toString(16));
    expect(ram64(src.h, 0x80000 + FAR * 8).toString(16)).toBe((VALID | 0xe200n).toString(16));
    const dst = restoreInto(src);
    expect(snapshot(dst.h, dst.its.index)).toEqual(snapshot(src.h, src.its.index));
    expect(refs(dst.h, 8300)).toBe(1);
  });

  it('a DeviceID beyond the device table -> EINVAL', () => {
    const x = buildItsVm();
    setTables(x.its);
    underItsLock(x, () => allocDevice(x.h, x.its.index, 8192, ITT_A, 1)); // one page holds 0..8191
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES), 'EINVAL');
  });

  it('an ITT outside guest RAM -> EFAULT', () => {
    const x = buildItsVm();
    setTables(x.its);
    underItsLock(x, () => {
      allocCollection(x.h, x.its.index, 0, 0);
      const d = allocDevice(x.h, x.its.index, 1, 0x200000, 1); // RAM is 1 MiB
      mapIte(x, d, 0, 0, 8192);
    });
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES), 'EFAULT');
  });
});

describe('§9.7 RESTORE_TABLES into a fresh VM', () => {
  it('rebuilds the same devices, ITEs and collections, with one LPI reference per ITE', () => {
    const src = savedSource();
    const want = snapshot(src.h, src.its.index);
    // Everything but the ITE whose collection was unmapped comes back.
    want.devices.find((d) => d.id === 5)!.ites = want.devices.find((d) => d.id === 5)!.ites.filter((e) => e.ev !== 11);
    expect(want.devices.map((d) => d.ites.length)).toEqual([1, 3, 0]);
    const dst = restoreInto(src);
    const got = snapshot(dst.h, dst.its.index);
    expect(got).toEqual(want);
    // Explicitly: DeviceID -> ITT/bits, (DeviceID, EventID) -> LPI/ICID, ICID -> vCPU.
    expect(got.devices.map((d) => [d.id, d.itt, d.bits])).toEqual([[2, ITT_B, 2], [5, ITT_A, 4], [40, ITT_C, 1]]);
    expect(got.collections).toEqual([{ icid: 0, target: 0 }, { icid: 3, target: 1 }, { icid: 7, target: -1 }]);
    // LPI records: one reference per ITE (8200 is mapped twice), targets from the collections,
    // priority/enable from the property table.
    expect(refs(dst.h, 8192)).toBe(1);
    expect(refs(dst.h, 8195)).toBe(1);
    expect(refs(dst.h, 8200)).toBe(2);
    expect(refs(dst.h, 8197)).toBe(0); // its ITE was not saved
    expect(lpiField(dst.h, 8192, 'target')).toBe(0);
    expect(lpiField(dst.h, 8200, 'target')).toBe(1);
    expect(lpiField(dst.h, 8195, 'target')).toBe(-1);
    expect(lpiField(dst.h, 8200, 'priority')).toBe(0xa0);
    expect(lpiField(dst.h, 8200, 'enabled')).toBe(1);
    expect(lpiField(dst.h, 8195, 'enabled')).toBe(0);
    // CTLR restored last: the ITS is enabled (CBASER and both BASERs valid).
    expect(dst.its.getAttr(REGS, GITS_CTLR) & 1n).toBe(1n);
    // And the restored state saves back to the same bytes.
    for (const { gpa } of [...EXPECTED.dte, ...EXPECTED.ite]) setRam64(dst.h, gpa, 0n);
    dst.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
    for (const { gpa, v } of [...EXPECTED.dte, ...EXPECTED.ite]) expect(ram64(dst.h, gpa)).toBe(v);
  });

  it('a bit set in a pending table before the restore makes that LPI pending', () => {
    const src = savedSource();
    const byte = PEND[1]! + (8200 >> 3); // LPI 8200 targets vCPU 1 (ICID 3)
    const bit = 1 << (8200 & 7);
    const dst = restoreInto(src, (to) => {
      to.h.ram[byte] = to.h.ram[byte]! | bit;
    });
    expect(lpiField(dst.h, 8200, 'pendingLatch')).toBe(1);
    expect(lpiField(dst.h, 8192, 'pendingLatch')).toBe(0);
    expect(dst.h.ram[byte]! & bit).toBe(0); // consumed
    // The distributor is disabled, so it is not queued: the ITEs hold the only references.
    expect(lpiField(dst.h, 8200, 'vcpu')).toBe(-1);
    expect(refs(dst.h, 8200)).toBe(2);
  });

  it('2-level device table: save through level-1 entries and restore from them', () => {
    const src = buildItsVm();
    const L2 = [0x90000, 0xa0000];
    setTables(src.its, 1, INDIRECT);
    setRam64(src.h, DT + 0, VALID | BigInt(L2[0]!));
    setRam64(src.h, DT + 8, VALID | BigInt(L2[1]!));
    underItsLock(src, () => {
      allocCollection(src.h, src.its.index, 1, 1);
      const a = allocDevice(src.h, src.its.index, 3, ITT_A, 2);
      const b = allocDevice(src.h, src.its.index, 8192 + 5, ITT_B, 3);
      mapIte(src, a, 3, 1, 8210);
      mapIte(src, b, 0, 1, 8211);
    });
    src.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES);
    // DeviceID 3 in L2 page 0 slot 3: next 8194 <<49 | 0x700 <<5 | size 1.
    expect(ram64(src.h, L2[0]! + 3 * 8)).toBe(VALID | (8194n << 49n) | 0xe000n | 1n);
    // DeviceID 8197 in L2 page 1 slot 5: last | 0x710 <<5 | size 2.
    expect(ram64(src.h, L2[1]! + 5 * 8)).toBe(VALID | 0xe200n | 2n);
    const dst = restoreInto(src);
    expect(snapshot(dst.h, dst.its.index)).toEqual(snapshot(src.h, src.its.index));
    expect(snapshot(dst.h, dst.its.index).devices.map((d) => d.id)).toEqual([3, 8197]);
  });

  it('2-level: a DeviceID whose level-1 entry is invalid cannot be saved -> EINVAL', () => {
    const x = buildItsVm();
    setTables(x.its, 1, INDIRECT);
    setRam64(x.h, DT, VALID | 0x90000n); // only L1[0]
    underItsLock(x, () => allocDevice(x.h, x.its.index, 8192, ITT_A, 1));
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES), 'EINVAL');
  });
});

describe('§9.1 RESTORE_TABLES errors leave nothing restored', () => {
  /** A VM with valid tables and raw entries written by hand. */
  function rawVm(ctes: bigint[], dtes: [number, bigint][], ites: [number, bigint][]): ItsVm {
    const x = buildItsVm();
    setTables(x.its);
    ctes.forEach((v, k) => setRam64(x.h, CT + k * 8, v));
    for (const [id, v] of dtes) setRam64(x.h, DT + id * 8, v);
    for (const [gpa, v] of ites) setRam64(x.h, gpa, v);
    return x;
  }
  const cte = (icid: number, rd: number): bigint => VALID | (BigInt(rd) << 16n) | BigInt(icid);
  /** DTE with `bits` eventid bits, a next offset and an ITT (default ITT_A). */
  const dte = (bits: number, next = 0, itt = ITT_A): bigint => VALID | (BigInt(next) << 49n) | (BigInt(itt >> 8) << 5n) | BigInt(bits - 1);
  const ite = (intid: number, icid: number, next = 0): bigint => (BigInt(next) << 48n) | (BigInt(intid) << 16n) | BigInt(icid);

  function expectEmpty(x: ItsVm, lpis: number[]): void {
    expect(snapshot(x.h, x.its.index)).toEqual({ devices: [], collections: [] });
    for (const l of lpis) expect(refs(x.h, l), `LPI ${l} references`).toBe(0);
  }

  it('the raw tables restore when consistent (control for the cases below)', () => {
    const x = rawVm(
      [cte(1, 0), cte(2, 1)],
      [[4, dte(2, 3)], [7, dte(1, 0, ITT_B)]],
      [[ITT_A + 0, ite(8192, 1, 2)], [ITT_A + 16, ite(8193, 2)], [ITT_B + 8, ite(8192, 1)]],
    );
    x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES);
    const s = snapshot(x.h, x.its.index);
    expect(s.collections).toEqual([{ icid: 1, target: 0 }, { icid: 2, target: 1 }]);
    // DeviceID 7's ITT: event 0 invalid (scanned over), event 1 -> 8192.
    expect(s.devices).toEqual([
      { id: 4, itt: ITT_A, bits: 2, ites: [{ ev: 0, lpi: 8192, icid: 1 }, { ev: 2, lpi: 8193, icid: 2 }] },
      { id: 7, itt: ITT_B, bits: 1, ites: [{ ev: 1, lpi: 8192, icid: 1 }] },
    ]);
    expect(refs(x.h, 8192)).toBe(2);
  });

  it('a duplicated collection -> EEXIST', () => {
    const x = rawVm([cte(1, 0), cte(2, 1), cte(1, 1)], [], []);
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EEXIST');
    expectEmpty(x, []);
  });

  it('a collection naming a vCPU that does not exist -> EINVAL', () => {
    const x = rawVm([cte(1, 0), cte(2, 2)], [], []); // vCPUs 0 and 1 only
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, []);
  });

  it.each([
    ['below 8192 (an SPI)', 100],
    ['beyond IDbits 13 (2^14)', 1 << 14],
    ['beyond the LPIs this model has records for', LPI_BASE + MAX_LPIS],
  ])('an ITE whose pINTID is %s -> EINVAL; earlier ITEs and collections are undone', (_n, bad) => {
    const x = rawVm([cte(1, 0)], [[4, dte(2)]], [[ITT_A + 0, ite(8192, 1, 1)], [ITT_A + 8, ite(bad, 1)]]);
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, [8192]);
  });

  it('an LPI the property table does not cover (PROPBASER.IDbits 12 < 13: no LPIs) -> EINVAL', () => {
    const x = rawVm([cte(1, 0)], [[4, dte(2)]], [[ITT_A + 0, ite(8192, 1)]]);
    setReg64(x.h.m, D.propbaserLo, BigInt(PROP) | 12n);
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, [8192]);
  });

  it('an ITE naming an unknown collection -> EINVAL', () => {
    const x = rawVm([cte(1, 0)], [[4, dte(2)]], [[ITT_A + 0, ite(8192, 1, 1)], [ITT_A + 8, ite(8193, 9)]]);
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, [8192, 8193]);
  });

  it('an ITE next offset leaving the EventID space -> EINVAL', () => {
    const x = rawVm([cte(1, 0)], [[4, dte(2)]], [[ITT_A + 0, ite(8192, 1, 4)]]); // 2 bits: events 0..3
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, [8192]);
  });

  it('a DTE with more than 16 eventid bits -> EINVAL', () => {
    const x = rawVm([cte(1, 0)], [[4, dte(17)]], []);
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EINVAL');
    expectEmpty(x, []);
  });

  it('a DeviceID already mapped in this ITS -> EEXIST, and the pre-existing state is freed too', () => {
    const x = rawVm([cte(1, 0)], [[4, dte(2)]], [[ITT_A, ite(8192, 1)]]);
    underItsLock(x, () => allocDevice(x.h, x.its.index, 4, ITT_B, 1));
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EEXIST');
    expectEmpty(x, [8192]);
    expect(findDevice(x.h, x.its.index, 4)).toBe(-1);
  });

  it('a device table outside guest RAM -> EFAULT', () => {
    const x = buildItsVm();
    x.its.setAttr(REGS, GITS_CBASER, VALID | BigInt(CMDQ));
    x.its.setAttr(REGS, GITS_BASER0, baser(0x200000)); // RAM is 1 MiB
    x.its.setAttr(REGS, GITS_BASER1, baser(CT));
    setRam64(x.h, CT, cte(1, 0));
    expectErrno(() => x.its.setAttr(CTRL, KVM_DEV_ARM_ITS_RESTORE_TABLES), 'EFAULT');
    expectEmpty(x, []);
  });
});

describe('§9.1 SAVE/RESTORE need every vCPU stopped', () => {
  it.each([
    ['SAVE_TABLES', KVM_DEV_ARM_ITS_SAVE_TABLES],
    ['RESTORE_TABLES', KVM_DEV_ARM_ITS_RESTORE_TABLES],
  ])('%s while a vCPU is inside KVM_RUN -> EBUSY; once it returned, it works', async (_n, attr) => {
    const x = buildItsVm({ spinVcpu0: true });
    setTables(x.its);
    const run = startRun(x.vm);
    await waitRam(x.vm, 0, 10_000, 'vCPU 0 to spin inside KVM_RUN', run);
    expectErrno(() => x.its.setAttr(CTRL, attr), 'EBUSY');
    Atomics.store(x.vm.ram, 1, 1);
    await within(run.promise, 10_000, 'the vCPUs to return');
    x.its.setAttr(CTRL, attr);
  });
});
