/**
 * The ITS command interpreter (spec §9.3 processing, §9.4 commands and their error cases, §9.5
 * cache invalidation, §9.6 property/pending tables, §1.7 LPI reference counts).
 *
 * No vCPU runs: the ITS is set up directly in shared memory the way the GITS register writers
 * would leave it (enabled, CBASER/BASER0/BASER1 valid), commands are written into the queue in
 * guest RAM, CWRITER is bumped, and processCommands runs on the main thread under cmd_lock, as the
 * CWRITER handler calls it. pruneApList on the main thread stands in for a vCPU's exit path.
 * Expected values come from the spec.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, type Vm } from '../../src/kvm/vm.js';
import type { KvmDevice } from '../../src/kvm/vgic-device.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_V3,
  KVM_REQ_IRQ_PENDING, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES,
} from '../../src/uapi/kvm.js';
import { IRQ, ITS, ITS_CACHE, LPI_BASE, NR_ITS_CACHE, VCPU } from '../../src/shm/layouts.js';
import { irqOff, itsOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { setReg64 } from '../../src/vgic/guest-mem.js';
import { D, type Host } from '../../src/vgic/host.js';
import { processCommands } from '../../src/vgic/its/commands.js';
import { collectionTarget, findCollection, findDevice, findIte, ITE, iteOff } from '../../src/vgic/its/state.js';
import { lockItsCmd, unlockItsCmd } from '../../src/vgic/locks.js';
import { lpiRecord } from '../../src/vgic/lpi.js';
import { pruneApList } from '../../src/vgic/lr.js';

// Guest memory map (1 MiB of RAM).
const QUEUE = 0x10000;
const DEV_TABLE = 0x20000;
const COLL_TABLE = 0x30000;
const ITT = 0x40000; // device d's ITT at ITT + d * 0x1000 (small devices)
const L2_PAGE = 0x70000; // two-level device table test
const PROP = 0x80000;
const PEND = 0xa0000; // + 64 KiB per vCPU
const VALID = 1n << 63n;
/** PROPBASER.IDbits = 13: INTIDs below 2^14, capped by the model's MAX_LPIS (8192 + 1024). */
const IDBITS = 13n;
const LPI_LIMIT = 9216;

// ---------------------------------------------------------------------------------------------
// Command encoding (GICv3 architecture, spec §9.4 field positions)

type Cmd = [bigint, bigint, bigint, bigint];
const B = BigInt;
const cmd = (op: number, dev = 0, dw1 = 0n, dw2 = 0n, dw3 = 0n): Cmd => [B(op) | (B(dev) << 32n), dw1, dw2, dw3];

const MAPD = (dev: number, itt: number, eventBits: number, valid = true): Cmd =>
  cmd(0x08, dev, B(eventBits - 1), B(itt) | (valid ? VALID : 0n));
const MAPC = (icid: number, rd: number, valid = true): Cmd => cmd(0x09, 0, 0n, B(icid) | (B(rd) << 16n) | (valid ? VALID : 0n));
const MAPTI = (dev: number, ev: number, intid: number, icid: number): Cmd => cmd(0x0a, dev, B(ev) | (B(intid) << 32n), B(icid));
const MAPI = (dev: number, ev: number, icid: number): Cmd => cmd(0x0b, dev, B(ev), B(icid));
const MOVI = (dev: number, ev: number, icid: number): Cmd => cmd(0x01, dev, B(ev), B(icid));
const DISCARD = (dev: number, ev: number): Cmd => cmd(0x0f, dev, B(ev));
const CLEAR = (dev: number, ev: number): Cmd => cmd(0x04, dev, B(ev));
const INT = (dev: number, ev: number): Cmd => cmd(0x03, dev, B(ev));
const INV = (dev: number, ev: number): Cmd => cmd(0x0c, dev, B(ev));
const INVALL = (icid: number): Cmd => cmd(0x0d, 0, 0n, B(icid));
const MOVALL = (rd1: number, rd2: number): Cmd => cmd(0x0e, 0, 0n, B(rd1) << 16n, B(rd2) << 16n);
const SYNC = (rd: number): Cmd => cmd(0x05, 0, 0n, B(rd) << 16n);

// ---------------------------------------------------------------------------------------------
// Test VM

const vms: Vm[] = [];
afterEach(async () => {
  while (vms.length) await vms.pop()!.destroy();
});

interface ItsVm {
  vm: Vm;
  h: Host;
  base: number;
  /** Write the commands at CWRITER (wrapping), bump CWRITER, process under cmd_lock. */
  submit(...cmds: Cmd[]): void;
  /** Write the commands and bump CWRITER only. */
  enqueue(...cmds: Cmd[]): void;
  process(): void;
  queueBytes: number;
  /** The vgic device (for its CTRL attributes). */
  gic: KvmDevice;
}

function setup(o: { vcpus?: number; queuePages?: number; queueAddr?: number; ids?: number[] } = {}): ItsVm {
  const ids = o.ids ?? Array.from({ length: o.vcpus ?? 2 }, (_, i) => i);
  const vcpus = ids.length;
  const vm = createVm({ maxVcpus: Math.max(vcpus, ...ids.map((id) => id + 1)), lockdep: true });
  vms.push(vm);
  for (const id of ids) vm.createVcpu(id, { guest: 'idle' });
  const gic = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_V3);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, 0x08000000n);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, 0x080a0000n);
  gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
  const h = vm.host;
  const m = h.m;
  const base = itsOff(h.g, 0);
  Atomics.store(m, D.nrIts, 1);
  Atomics.store(m, D.enabled, 1); // distributor enabled, else the oracle queues nothing
  m[base + ITS.off.created] = 1;
  m[base + ITS.off.initialized] = 1;
  const pages = o.queuePages ?? 1;
  setReg64(m, base + ITS.off.cbaserLo, VALID | B(o.queueAddr ?? QUEUE) | B(pages - 1));
  setReg64(m, base + ITS.off.baser0Lo, VALID | B(DEV_TABLE)); // one 64 KiB page: DeviceIDs < 8192
  setReg64(m, base + ITS.off.baser1Lo, VALID | B(COLL_TABLE)); // ICIDs < 8192
  m[base + ITS.off.enabled] = 1;
  setReg64(m, D.propbaserLo, B(PROP) | IDBITS);
  for (let v = 0; v < vcpus; v++) {
    const vb = vcpuOff(h.g, v);
    setReg64(m, vb + VCPU.off.pendbaserLo, B(PEND + v * 0x10000));
    m[vb + VCPU.off.gicrCtlr] = 1; // EnableLPIs
  }
  const queueBytes = pages * 4096;
  const enqueue = (...cmds: Cmd[]): void => {
    let w = Atomics.load(m, base + ITS.off.cwriter);
    for (const c of cmds) {
      const at = (o.queueAddr ?? QUEUE) + w;
      if (at + 32 <= h.ram.byteLength) c.forEach((word, i) => h.ramView.setBigUint64(at + 8 * i, word, true));
      w = (w + 32) % queueBytes;
    }
    Atomics.store(m, base + ITS.off.cwriter, w);
  };
  const process = (): void => {
    lockItsCmd(h, 0);
    try {
      processCommands(h, 0);
    } finally {
      unlockItsCmd(h, 0);
    }
  };
  return { vm, h, base, enqueue, process, submit: (...c) => (enqueue(...c), process()), queueBytes, gic };
}

// ---------------------------------------------------------------------------------------------
// Inspection

const rec = (t: ItsVm, intid: number): number => lpiRecord(t.h, intid);
const field = (t: ItsVm, intid: number, f: keyof typeof IRQ.off): number => t.h.m[irqOff(t.h.g, rec(t, intid)) + IRQ.off[f]]!;
const setField = (t: ItsVm, intid: number, f: keyof typeof IRQ.off, v: number): void => {
  t.h.m[irqOff(t.h.g, rec(t, intid)) + IRQ.off[f]] = v;
};
const refs = (t: ItsVm, intid: number): number => field(t, intid, 'refcount');
/** Property table byte: priority | enable. */
const setProp = (t: ItsVm, intid: number, byte: number): void => {
  t.h.ram[PROP + intid - LPI_BASE] = byte;
};
const setPendBit = (t: ItsVm, v: number, intid: number): void => {
  t.h.ram[PEND + v * 0x10000 + (intid >> 3)]! |= 1 << (intid & 7);
};
const pendBit = (t: ItsVm, v: number, intid: number): number => (t.h.ram[PEND + v * 0x10000 + (intid >> 3)]! >> (intid & 7)) & 1;
/** INTIDs on vCPU v's ap_list, in order. */
function apList(t: ItsVm, v: number): number[] {
  const out: number[] = [];
  for (let r = t.h.m[vcpuOff(t.h.g, v) + VCPU.off.apHead]!; r >= 0; r = t.h.m[irqOff(t.h.g, r) + IRQ.off.next]!) {
    out.push(t.h.m[irqOff(t.h.g, r) + IRQ.off.intid]!);
  }
  return out;
}
const hasIte = (t: ItsVm, dev: number, ev: number): boolean => {
  const d = findDevice(t.h, 0, dev);
  return d >= 0 && findIte(t.h, 0, d, ev) >= 0;
};
const iteIcid = (t: ItsVm, dev: number, ev: number): number => t.h.m[iteOff(t.h, 0, findIte(t.h, 0, findDevice(t.h, 0, dev), ev)) + ITE.icid]!;
const cachedEntries = (t: ItsVm): number => {
  let n = 0;
  for (let i = 0; i < NR_ITS_CACHE; i++) n += t.h.m[t.base + ITS.off.cache + i * ITS_CACHE.size + ITS_CACHE.off.valid]!;
  return n;
};
const creadr = (t: ItsVm): number => Atomics.load(t.h.m, t.base + ITS.off.creadr);
const cwriter = (t: ItsVm): number => Atomics.load(t.h.m, t.base + ITS.off.cwriter);
const guest64 = (t: ItsVm, gpa: number): bigint => t.h.ramView.getBigUint64(gpa, true);
const itt = (dev: number): number => ITT + dev * 0x1000;

/** Device 1 (4 EventID bits), collections 0 -> vCPU 0 and 1 -> vCPU 1, LPIs 8192.. enabled prio 0xa0. */
function basic(o: Parameters<typeof setup>[0] = {}): ItsVm {
  const t = setup(o);
  for (let i = LPI_BASE; i < LPI_BASE + 64; i++) setProp(t, i, 0xa0 | 1);
  t.submit(MAPD(1, itt(1), 4), MAPC(0, 0), MAPC(1, 1));
  return t;
}

// ---------------------------------------------------------------------------------------------

describe('ITS command queue processing (§9.3)', () => {
  it('executes everything between CREADR and CWRITER and leaves both equal; its_lock is released', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 1), SYNC(1));
    expect(creadr(t)).toBe(5 * 32);
    expect(cwriter(t)).toBe(5 * 32);
    expect(hasIte(t, 1, 0)).toBe(true);
    expect(t.h.m[t.base + ITS.off.itsLock]).toBe(0);
    expect(t.h.m[t.base + ITS.off.cmdLock]).toBe(0);
  });

  it('a disabled ITS processes nothing; once enabled, the queued commands run', () => {
    const t = setup();
    t.h.m[t.base + ITS.off.enabled] = 0;
    t.submit(MAPD(3, itt(3), 2));
    expect(creadr(t)).toBe(0);
    expect(findDevice(t.h, 0, 3)).toBe(-1);
    t.h.m[t.base + ITS.off.enabled] = 1;
    t.process();
    expect(creadr(t)).toBe(32);
    expect(findDevice(t.h, 0, 3)).toBeGreaterThanOrEqual(0);
  });

  it('wraps around at the end of the queue', () => {
    const t = setup();
    const last = t.queueBytes - 32;
    t.h.m[t.base + ITS.off.creadr] = last;
    t.h.m[t.base + ITS.off.cwriter] = last;
    // A command just past the end of the queue must never be read.
    MAPD(9, itt(9), 2).forEach((w, i) => t.h.ramView.setBigUint64(QUEUE + t.queueBytes + 8 * i, w, true));
    t.submit(MAPD(1, itt(1), 2), MAPD(2, itt(2), 2), MAPD(3, itt(3), 2));
    expect(findDevice(t.h, 0, 9)).toBe(-1);
    expect(creadr(t)).toBe(64);
    expect(cwriter(t)).toBe(64);
    for (const d of [1, 2, 3]) expect(findDevice(t.h, 0, d)).toBeGreaterThanOrEqual(0);
  });

  it('skips a command it cannot read (outside guest RAM) and goes on', () => {
    // A 2-page queue whose second page lies beyond the 1 MiB of RAM.
    const t = setup({ queuePages: 2, queueAddr: 0x100000 - 0x1000 });
    t.h.m[t.base + ITS.off.creadr] = 8192 - 64;
    t.h.m[t.base + ITS.off.cwriter] = 8192 - 64;
    // Two unreadable slots (8128, 8160), then a readable one at 0 after the wrap.
    t.submit(MAPD(1, itt(1), 2), MAPD(2, itt(2), 2), MAPD(3, itt(3), 2));
    expect(creadr(t)).toBe(32);
    expect(findDevice(t.h, 0, 1)).toBe(-1);
    expect(findDevice(t.h, 0, 2)).toBe(-1);
    expect(findDevice(t.h, 0, 3)).toBeGreaterThanOrEqual(0);
  });

  it('ignores unknown opcodes and SYNC has no effect', () => {
    const t = basic();
    // Everything after the two lock words: tables, cache, registers.
    const from = t.base + ITS.off.created;
    const before = t.h.m.slice(from, t.base + ITS.size);
    t.submit(cmd(0x02, 1, 5n), cmd(0xff, 1), SYNC(0));
    const after = t.h.m.slice(from, t.base + ITS.size);
    for (const f of [ITS.off.creadr, ITS.off.cwriter]) after[f - ITS.off.created] = before[f - ITS.off.created]!;
    expect(after).toEqual(before);
    expect(creadr(t)).toBe(6 * 32);
  });
});

describe('MAPD (§9.4)', () => {
  it('maps a device; DeviceIDs beyond the device table or above 16 bits, and Size > 16, are ignored', () => {
    const t = setup();
    t.submit(MAPD(7, itt(7), 16), MAPD(8192, itt(1), 2), MAPD(9, itt(9), 17));
    expect(findDevice(t.h, 0, 7)).toBeGreaterThanOrEqual(0);
    expect(findDevice(t.h, 0, 8192)).toBe(-1); // 64 KiB / 8 = 8192 entries
    expect(findDevice(t.h, 0, 9)).toBe(-1); // MAPD_ITTSIZE_OOR
    // A 16-page device table would hold 2^17 entries, but DevBits = 16.
    setReg64(t.h.m, t.base + ITS.off.baser0Lo, VALID | B(DEV_TABLE) | 15n);
    t.submit(MAPD(0x10000, itt(1), 2), MAPD(0xffff, itt(1), 2));
    expect(findDevice(t.h, 0, 0x10000)).toBe(-1);
    expect(findDevice(t.h, 0, 0xffff)).toBeGreaterThanOrEqual(0);
  });

  it('V=0 unmaps: frees the ITEs (LPI references) and writes a zero DTE into the guest table', () => {
    const t = basic();
    t.submit(MAPTI(1, 2, 8200, 0));
    expect(refs(t, 8200)).toBe(1);
    t.h.ramView.setBigUint64(DEV_TABLE + 1 * 8, 0xdeadbeefn, true);
    t.submit(MAPD(1, 0, 1, false));
    expect(findDevice(t.h, 0, 1)).toBe(-1);
    expect(refs(t, 8200)).toBe(0);
    expect(field(t, 8200, 'intid')).toBe(0);
    expect(guest64(t, DEV_TABLE + 8)).toBe(0n);
  });

  it('remapping an existing device drops its old ITEs and cached translations', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), INT(1, 0));
    expect(cachedEntries(t)).toBe(1);
    t.submit(MAPD(1, itt(2), 8));
    expect(hasIte(t, 1, 0)).toBe(false);
    expect(cachedEntries(t)).toBe(0);
    // Only the ap_list's reference is left (the LPI is still pending on vCPU 0).
    expect(refs(t, 8200)).toBe(1);
    expect(findDevice(t.h, 0, 1)).toBeGreaterThanOrEqual(0);
  });

  it('two-level device table: the level-1 entry must be valid; the DTE is in the level-2 page', () => {
    const t = setup();
    setReg64(t.h.m, t.base + ITS.off.baser0Lo, VALID | (1n << 62n) | B(DEV_TABLE));
    t.h.ramView.setBigUint64(DEV_TABLE, VALID | B(L2_PAGE), true); // L1[0]: DeviceIDs 0..8191
    t.h.ramView.setBigUint64(DEV_TABLE + 8, 0n, true); // L1[1] invalid
    t.h.ramView.setBigUint64(L2_PAGE + 5 * 8, 0x1234n, true);
    t.submit(MAPD(5, 0, 1, false), MAPD(6, itt(6), 2), MAPD(8192 + 3, itt(3), 2));
    expect(guest64(t, L2_PAGE + 5 * 8)).toBe(0n);
    expect(findDevice(t.h, 0, 6)).toBeGreaterThanOrEqual(0);
    expect(findDevice(t.h, 0, 8195)).toBe(-1);
  });
});

describe('MAPC (§9.4)', () => {
  it('maps collections; a nonexistent vCPU or an ICID beyond the collection table is ignored', () => {
    const t = setup();
    t.submit(MAPC(3, 1), MAPC(4, 2), MAPC(8192, 0), MAPC(8191, 0));
    expect(collectionTarget(t.h, 0, 3)).toBe(1);
    expect(findCollection(t.h, 0, 4)).toBe(-1); // MAPC_PROCNUM_OOR: only vCPUs 0 and 1
    expect(findCollection(t.h, 0, 8192)).toBe(-1); // MAPC_COLLECTION_OOR
    expect(collectionTarget(t.h, 0, 8191)).toBe(0);
  });

  it('RDbase is a vcpu_id (GITS_TYPER.PTA = 0, kvm_get_vcpu_by_id): with vCPUs created as ids 4, 1, MAPC and MOVALL find them by id', () => {
    const t = setup({ ids: [4, 1] });
    for (const i of [8200, 8201]) setProp(t, i, 0xa0 | 1);
    t.submit(MAPD(1, itt(1), 4), MAPC(0, 1), MAPC(1, 4), MAPC(2, 0));
    expect(collectionTarget(t.h, 0, 0)).toBe(1); // vcpu_id 1 was created second
    expect(collectionTarget(t.h, 0, 1)).toBe(0); // vcpu_id 4 first
    expect(findCollection(t.h, 0, 2)).toBe(-1); // no vCPU has id 0: MAPC_PROCNUM_OOR
    t.submit(MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8201, 1));
    expect([field(t, 8200, 'target'), field(t, 8201, 'target')]).toEqual([1, 0]);
    t.submit(MOVALL(1, 0)); // RDbase2 names no vCPU: MOVALL_PROCNUM_OOR, nothing moves
    expect(field(t, 8200, 'target')).toBe(1);
    t.submit(MOVALL(1, 4));
    expect([field(t, 8200, 'target'), field(t, 8201, 'target')]).toEqual([0, 0]);
  });

  it('V=1 on an existing collection retargets the LPIs of its ITEs', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8201, 1));
    expect(field(t, 8200, 'target')).toBe(0);
    t.submit(MAPC(0, 1));
    expect(collectionTarget(t.h, 0, 0)).toBe(1);
    expect(field(t, 8200, 'target')).toBe(1);
    expect(field(t, 8201, 'target')).toBe(1);
  });

  it('V=0 unmaps: its ITEs lose their collection, INT no longer delivers, the cache is invalidated', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), INT(1, 0));
    expect(cachedEntries(t)).toBe(1);
    t.submit(MAPC(0, 0, false));
    expect(findCollection(t.h, 0, 0)).toBe(-1);
    expect(cachedEntries(t)).toBe(0);
    setField(t, 8200, 'pendingLatch', 0);
    t.submit(INT(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(0);
    // Re-creating collection 0 does not reattach the ITE (the kernel's NULL collection).
    t.submit(MAPC(0, 0), INT(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(0);
  });
});

describe('MAPTI / MAPI (§9.4)', () => {
  it('creates the ITE and the LPI: refcount 1, target = collection vCPU, config from the property table', () => {
    const t = basic();
    setProp(t, 8203, 0x40); // disabled, priority 0x40
    t.submit(MAPTI(1, 3, 8203, 1), MAPI(1, 8 + 0, 0));
    expect(hasIte(t, 1, 3)).toBe(true);
    expect(field(t, 8203, 'intid')).toBe(8203);
    expect(refs(t, 8203)).toBe(1);
    expect(field(t, 8203, 'target')).toBe(1);
    expect(field(t, 8203, 'priority')).toBe(0x40);
    expect(field(t, 8203, 'enabled')).toBe(0);
    expect(field(t, 8203, 'group')).toBe(1);
    // MAPI: pINTID = EventID, so EventID 8 is not an LPI (MAPTI_PHYSICALID_OOR).
    expect(hasIte(t, 1, 8)).toBe(false);
  });

  it('MAPI maps EventID as the INTID', () => {
    const t = setup();
    setProp(t, 8300, 0xc1);
    t.submit(MAPD(2, itt(2), 16), MAPC(0, 1), MAPI(2, 8300, 0));
    expect(hasIte(t, 2, 8300)).toBe(true);
    expect(field(t, 8300, 'intid')).toBe(8300);
    expect(field(t, 8300, 'priority')).toBe(0xc0);
    expect(field(t, 8300, 'enabled')).toBe(1);
    expect(field(t, 8300, 'target')).toBe(1);
  });

  it('error cases leave no ITE and no LPI reference', () => {
    const t = basic();
    t.submit(
      MAPTI(9, 0, 8200, 0), // unmapped device
      MAPTI(1, 16, 8201, 0), // EventID beyond 2^4
      MAPTI(1, 1, 8191, 0), // below the LPI range
      MAPTI(1, 2, LPI_LIMIT, 0), // at the PROPBASER limit
      MAPTI(1, 3, 8202, 8192), // collection ICID beyond the collection table
    );
    for (const [ev, intid] of [[0, 8200], [16, 8201], [2, LPI_LIMIT - 1], [3, 8202]] as const) {
      expect(hasIte(t, 1, ev)).toBe(false);
      expect(refs(t, intid)).toBe(0);
    }
    expect(hasIte(t, 1, 1)).toBe(false);
    expect(findCollection(t.h, 0, 8192)).toBe(-1);
    // A smaller IDbits lowers the limit: IDbits 12 -> INTIDs below 8192, no LPI at all.
    setReg64(t.h.m, D.propbaserLo, B(PROP) | 12n);
    t.submit(MAPTI(1, 4, 8204, 0));
    expect(hasIte(t, 1, 4)).toBe(false);
  });

  it("EventID whose ITE slot is outside guest memory is refused", () => {
    const t = setup();
    // ITT in the last 256 bytes of RAM: EventIDs 0..31 fit, 32 does not.
    t.submit(MAPD(1, 0x100000 - 0x100, 6), MAPC(0, 0), MAPTI(1, 31, 8200, 0), MAPTI(1, 32, 8201, 0));
    expect(hasIte(t, 1, 31)).toBe(true);
    expect(hasIte(t, 1, 32)).toBe(false);
    expect(refs(t, 8201)).toBe(0);
  });

  it('an already mapped event keeps its mapping (UNPREDICTABLE: success without change)', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), MAPTI(1, 0, 8201, 1));
    expect(iteIcid(t, 1, 0)).toBe(0);
    expect(refs(t, 8200)).toBe(1);
    expect(refs(t, 8201)).toBe(0);
  });

  it('a missing collection is created unmapped; a later MAPC maps it and its LPIs follow', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 5));
    expect(findCollection(t.h, 0, 5)).toBeGreaterThanOrEqual(0);
    expect(collectionTarget(t.h, 0, 5)).toBe(-1);
    expect(field(t, 8200, 'target')).toBe(-1);
    t.submit(MAPC(5, 1));
    expect(field(t, 8200, 'target')).toBe(1);
  });

  it('the LPI is shared: two ITEs mapping it hold two references; DISCARD drops them one by one', () => {
    const t = basic();
    t.submit(MAPD(2, itt(2), 4), MAPTI(1, 0, 8200, 0), MAPTI(2, 7, 8200, 1));
    expect(refs(t, 8200)).toBe(2);
    // The second map found the record allocated: it kept the first map's target.
    expect(field(t, 8200, 'target')).toBe(0);
    t.submit(DISCARD(1, 0));
    expect(refs(t, 8200)).toBe(1);
    expect(field(t, 8200, 'intid')).toBe(8200);
    t.submit(DISCARD(2, 7));
    expect(refs(t, 8200)).toBe(0);
    expect(field(t, 8200, 'intid')).toBe(0);
  });

  it("consumes the LPI's bit in its target's pending table at map time", () => {
    const t = basic();
    setPendBit(t, 1, 8210);
    t.submit(MAPTI(1, 4, 8210, 1));
    expect(pendBit(t, 1, 8210)).toBe(0);
    expect(field(t, 8210, 'pendingLatch')).toBe(1);
    expect(apList(t, 1)).toEqual([8210]);
    expect(refs(t, 8210)).toBe(2); // ITE + ap_list
  });

  it('a full ITE pool refuses the map and undoes the auto-created collection', () => {
    const t = setup();
    for (let i = LPI_BASE; i < LPI_LIMIT; i++) setProp(t, i, 0xa0);
    t.submit(MAPD(1, ITT, 16), MAPC(0, 0));
    // 1024 ITEs (the pool size), in batches that fit the 128-command queue.
    for (let k = 0; k < 1024; k += 100) {
      const batch: Cmd[] = [];
      for (let e = k; e < Math.min(k + 100, 1024); e++) batch.push(MAPI(1, LPI_BASE + e, 0));
      t.submit(...batch);
    }
    expect(hasIte(t, 1, LPI_LIMIT - 1)).toBe(true);
    t.submit(MAPTI(1, 5, 8192, 77));
    expect(hasIte(t, 1, 5)).toBe(false);
    expect(findCollection(t.h, 0, 77)).toBe(-1);
    expect(refs(t, 8192)).toBe(1);
  });
});

describe('INT, CLEAR, INV, INVALL (§9.4, §9.6)', () => {
  it("INT makes the LPI pending on the collection's vCPU and caches the translation", () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 1), INT(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(1);
    expect(field(t, 8200, 'vcpu')).toBe(1);
    expect(apList(t, 1)).toEqual([8200]);
    expect(apList(t, 0)).toEqual([]);
    expect(refs(t, 8200)).toBe(3); // ITE + ap_list + cache
    expect(t.h.m[vcpuOff(t.h.g, 1) + VCPU.off.requests]! & KVM_REQ_IRQ_PENDING).not.toBe(0);
  });

  it('INT of an unmapped event, or to a redistributor with LPIs disabled, does nothing', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 1), INT(1, 1), INT(2, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(0);
    t.h.m[vcpuOff(t.h.g, 1) + VCPU.off.gicrCtlr] = 0;
    t.submit(INT(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(0);
    expect(cachedEntries(t)).toBe(0);
  });

  it('CLEAR drops the pending state; the next prune takes the LPI off the ap_list', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), INT(1, 0));
    expect(apList(t, 0)).toEqual([8200]);
    t.submit(CLEAR(1, 1), CLEAR(3, 0)); // unmapped: no effect
    expect(field(t, 8200, 'pendingLatch')).toBe(1);
    t.submit(CLEAR(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(0);
    pruneApList(t.h, 0);
    expect(apList(t, 0)).toEqual([]);
    expect(refs(t, 8200)).toBe(2); // ITE + cache
  });

  it('INV picks up property table changes; an LPI enabled while pending is queued', () => {
    const t = basic();
    setProp(t, 8200, 0x80); // disabled
    t.submit(MAPTI(1, 0, 8200, 1), INT(1, 0));
    expect(field(t, 8200, 'pendingLatch')).toBe(1);
    expect(apList(t, 1)).toEqual([]); // disabled: not queued
    setProp(t, 8200, 0x31);
    expect(field(t, 8200, 'enabled')).toBe(0); // guest edits are invisible until invalidated
    t.submit(INV(1, 1)); // unmapped event: nothing
    expect(field(t, 8200, 'enabled')).toBe(0);
    t.submit(INV(1, 0));
    expect(field(t, 8200, 'enabled')).toBe(1);
    expect(field(t, 8200, 'priority')).toBe(0x30);
    expect(apList(t, 1)).toEqual([8200]);
  });

  it("INVALL refreshes the LPIs targeting the collection's vCPU only; an unmapped collection does nothing", () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8201, 1), MAPTI(1, 2, 8202, 9));
    for (const i of [8200, 8201, 8202]) setProp(t, i, 0x51);
    t.submit(INVALL(9), INVALL(4)); // auto-created (unmapped) and nonexistent
    for (const i of [8200, 8201, 8202]) expect(field(t, i, 'priority')).toBe(0xa0);
    t.submit(INVALL(0));
    expect(field(t, 8200, 'priority')).toBe(0x50);
    expect(field(t, 8201, 'priority')).toBe(0xa0);
    expect(field(t, 8202, 'priority')).toBe(0xa0);
    t.submit(INVALL(1));
    expect(field(t, 8201, 'priority')).toBe(0x50);
  });
});

describe('MOVI, DISCARD, MOVALL (§9.4, §4.7)', () => {
  it("MOVI retargets a pending LPI; it migrates at the old holder's prune", () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), INT(1, 0));
    expect(apList(t, 0)).toEqual([8200]);
    expect(refs(t, 8200)).toBe(3);
    t.submit(MOVI(1, 0, 1));
    expect(iteIcid(t, 1, 0)).toBe(1);
    expect(field(t, 8200, 'target')).toBe(1);
    expect(field(t, 8200, 'vcpu')).toBe(0); // only the holder edits its list
    expect(cachedEntries(t)).toBe(0);
    expect(refs(t, 8200)).toBe(2); // the cache's reference went
    pruneApList(t.h, 0);
    expect(apList(t, 0)).toEqual([]);
    expect(apList(t, 1)).toEqual([8200]);
    expect(field(t, 8200, 'vcpu')).toBe(1);
    // A new INT now goes to vCPU 1 through a fresh translation.
    t.submit(INT(1, 0));
    expect(cachedEntries(t)).toBe(1);
  });

  it('MOVI error cases: unmapped event, unmapped target collection, ITE in an unmapped collection', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8201, 6), MOVI(1, 5, 1), MOVI(1, 0, 6), MOVI(1, 0, 7), MOVI(1, 1, 1));
    expect(iteIcid(t, 1, 0)).toBe(0);
    expect(iteIcid(t, 1, 1)).toBe(6);
    expect(field(t, 8200, 'target')).toBe(0);
    expect(field(t, 8201, 'target')).toBe(-1);
  });

  it('DISCARD of a pending LPI: the ITE and cache references go, the ap_list keeps the record until pruned', () => {
    const t = basic();
    t.h.ramView.setBigUint64(itt(1) + 2 * 8, 0xfeedn, true);
    t.submit(MAPTI(1, 2, 8200, 0), INT(1, 2));
    expect(refs(t, 8200)).toBe(3);
    t.submit(DISCARD(1, 2));
    expect(hasIte(t, 1, 2)).toBe(false);
    expect(guest64(t, itt(1) + 16)).toBe(0n);
    expect(cachedEntries(t)).toBe(0);
    expect(refs(t, 8200)).toBe(1);
    expect(apList(t, 0)).toEqual([8200]);
    // Once it is no longer pending (say, acknowledged), the prune drops the last reference.
    setField(t, 8200, 'pendingLatch', 0);
    pruneApList(t.h, 0);
    expect(apList(t, 0)).toEqual([]);
    expect(refs(t, 8200)).toBe(0);
    expect(field(t, 8200, 'intid')).toBe(0);
  });

  it('DISCARD of an unmapped event, or of an ITE whose collection is unmapped, does nothing', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 5), DISCARD(1, 1), DISCARD(4, 0), DISCARD(1, 0));
    expect(hasIte(t, 1, 0)).toBe(true);
    expect(refs(t, 8200)).toBe(1);
  });

  it('MOVALL moves the LPIs of RDbase1 (only those) to RDbase2 and invalidates the cache', () => {
    const t = basic({ vcpus: 3 });
    t.submit(MAPC(2, 2), MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8201, 0), MAPTI(1, 2, 8202, 2), MAPTI(1, 3, 8203, 9), INT(1, 0));
    expect(apList(t, 0)).toEqual([8200]);
    expect(cachedEntries(t)).toBe(1);
    t.submit(MOVALL(0, 1));
    expect(field(t, 8200, 'target')).toBe(1);
    expect(field(t, 8201, 'target')).toBe(1);
    expect(field(t, 8202, 'target')).toBe(2); // architectural: not on RDbase1, stays
    expect(field(t, 8203, 'target')).toBe(-1);
    expect(cachedEntries(t)).toBe(0);
    pruneApList(t.h, 0);
    expect(apList(t, 1)).toEqual([8200]);
    // Collections are not changed by MOVALL (the guest remaps them itself).
    expect(collectionTarget(t.h, 0, 0)).toBe(0);
  });

  it('MOVALL with a nonexistent vCPU or equal RDbases does nothing', () => {
    const t = basic();
    t.submit(MAPTI(1, 0, 8200, 0), INT(1, 0));
    t.submit(MOVALL(0, 2), MOVALL(2, 0), MOVALL(0, 0));
    expect(field(t, 8200, 'target')).toBe(0);
    expect(cachedEntries(t)).toBe(1);
  });
});

describe('lock order', () => {
  it('runs every command with lockdep on without a report (cmd_lock > its_lock > lpi > ap_list > irq)', () => {
    const t = basic();
    expect(t.vm.options.lockdep).toBe(true);
    expect(() =>
      t.submit(
        MAPTI(1, 0, 8200, 0), MAPI(1, 1, 1), INT(1, 0), INV(1, 0), INVALL(0), MOVI(1, 0, 1), MOVALL(1, 0),
        CLEAR(1, 0), MAPC(1, 0), DISCARD(1, 0), MAPC(0, 0, false), MAPD(1, 0, 1, false), SYNC(0),
      ),
    ).not.toThrow();
    expect(t.h.m[t.base + ITS.off.itsLock]).toBe(0);
  });
});

describe('KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES (§9.6)', () => {
  it('writes each LPI pending bit into its target redistributor table, and clears it once not pending', () => {
    const t = setup();
    // Two LPIs on vCPU 1, disabled in the property table so that INT leaves them pending.
    t.submit(MAPC(0, 1), MAPD(1, ITT, 2), MAPTI(1, 0, 8200, 0), MAPTI(1, 1, 8209, 0));
    t.submit(INT(1, 0), INT(1, 1), CLEAR(1, 1));
    const gic = t.gic;
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES);
    const bit = (intid: number, v: number): number => (t.h.ram[PEND + v * 0x10000 + (intid >> 3)]! >> (intid & 7)) & 1;
    expect(bit(8200, 1)).toBe(1);
    expect(bit(8209, 1)).toBe(0);
    expect(bit(8200, 0)).toBe(0); // not vCPU 0's LPI
    // Set the stale bit of 8209 by hand: a save must clear it (it is not pending).
    t.h.ram[PEND + 0x10000 + (8209 >> 3)] |= 1 << (8209 & 7);
    t.submit(CLEAR(1, 0));
    gic.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES);
    expect(bit(8200, 1)).toBe(0);
    expect(bit(8209, 1)).toBe(0);
  });
});
