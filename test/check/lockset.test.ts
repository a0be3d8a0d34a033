/**
 * Lockset checking (check/lockset): a real worker thread with its own Host on a VM with
 * checkAccess makes handcrafted accesses; each one that breaks its field's declared protection
 * (shm/layouts.ts) is reported with the field, record, access, thread, held locks, rule and a
 * stack, and the same access done right is not. Eraser's refinement: a word used by one thread
 * only (initialisation) is not checked until a second thread touches it, so the main thread
 * touches every word first.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, type GuestCpu, type Vm } from '../../src/index.js';
import { accessViolations, AccessViolationError, isChecked, type AccessViolation } from '../../src/check/lockset/index.js';
import { describeLayout } from '../../src/shm/layout.js';
import { DIST, IRQ, IRQFD, ITS, PHYS_IRQ, ROUTE, VCPU } from '../../src/shm/layouts.js';
import { driverSlot, irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { inWorker } from './lockset-steps.js';
import { makeHost } from '../../src/vgic/host.js';
import { lockIrq, unlockIrq } from '../../src/vgic/locks.js';
import { build, expectErrno, runAll, within } from '../helpers.js';

let vms: Vm[] = [];
afterEach(async () => {
  // A VM whose test left violations on purpose fails its destroy: that is asserted where it matters.
  await within(Promise.all(vms.map((v) => v.destroy().catch(() => undefined))), 10_000, 'vm.destroy()');
  vms = [];
});

function checkedVm(locking: 'fine' | 'global' = 'fine'): Vm {
  const vm = createVm({ maxVcpus: 2, checkAccess: true, locking });
  vms.push(vm);
  return vm;
}

/** Record of SPI `intid` and the word of its field. */
const spi = (vm: Vm, intid: number): number => vm.geometry.spiRecordBase + intid - 32;
const irqWord = (vm: Vm, intid: number, f: keyof typeof IRQ.off): number => irqOff(vm.geometry, spi(vm, intid)) + IRQ.off[f];

function reports(vm: Vm): readonly AccessViolation[] {
  return accessViolations(vm.host)!.reports;
}

describe('lockset checking', () => {
  it('reports a write to pendingLatch without irq_lock from a worker thread, and not the same write holding it', async () => {
    const vm = checkedVm();
    const bad = irqWord(vm, 40, 'pendingLatch');
    const good = irqWord(vm, 41, 'pendingLatch');
    await inWorker(vm, [bad, good], [
      { op: 'write', word: bad, value: 1 },
      { op: 'lockIrq', r: spi(vm, 41) },
      { op: 'write', word: good, value: 1 },
      { op: 'unlockIrq', r: spi(vm, 41) },
    ]);
    const r = reports(vm);
    expect(r).toHaveLength(1);
    const v = r[0]!;
    expect(v.field).toBe('vgic_irq[INTID 40].pendingLatch');
    expect(v.layout).toBe('vgic_irq');
    expect(v.access).toBe('write');
    expect(v.thread).toBe('lockset-worker');
    expect(v.held).toEqual([]);
    expect(v.rule).toMatch(/^irq_lock: a write must hold irq_lock; irq_lock is not held/);
    // The JS stack names where it happened: the worker's step loop, not the checker.
    expect(v.stack.split('\n')[0]).toMatch(/lockset-worker\.mjs/);
    expect(v.stack).not.toMatch(/check[/\\]lockset[/\\]/);
    // The stores themselves happened (checking records, it does not change behaviour).
    expect(Atomics.load(vm.host.m, bad)).toBe(1);
    expect(Atomics.load(vm.host.m, good)).toBe(1);
  });

  it("names the locks held: another record's irq_lock does not protect this one", async () => {
    const vm = checkedVm();
    const w = irqWord(vm, 42, 'priority');
    await inWorker(vm, [w], [
      { op: 'lockIrq', r: spi(vm, 43) },
      { op: 'write', word: w, value: 0xa0 },
      { op: 'unlockIrq', r: spi(vm, 43) },
    ]);
    const r = reports(vm);
    expect(r.map((x) => x.field)).toEqual(['vgic_irq[INTID 42].priority']);
    expect(r[0]!.held).toEqual([`irq_lock#${spi(vm, 43)}`]);
  });

  it('reports a plain write of an atomic-only field; the Atomics store of it is fine and lands', async () => {
    const vm = checkedVm();
    const req = vcpuOff(vm.geometry, 0) + VCPU.off.requests;
    const stop = DIST.off.stop;
    await inWorker(vm, [req, stop], [
      { op: 'write', word: req, value: 4 },
      { op: 'atomic', word: req, value: 8 },
      { op: 'read', word: stop },
    ]);
    const r = reports(vm);
    expect(r.map((x) => `${x.access} ${x.field}`)).toEqual(['write vcpu[0].requests', 'read vgic_dist.stop']);
    expect(r[0]!.rule).toMatch(/^atomic: only Atomics may access it; this is a plain write/);
    expect(Atomics.load(vm.host.m, req)).toBe(8);
  });

  it("reports an owner-only field (a vCPU's VMCR) written by another thread, not when it holds that vCPU's mutex", async () => {
    const vm = checkedVm();
    const pmr1 = vcpuOff(vm.geometry, 1) + VCPU.off.pmr;
    const bpr1 = vcpuOff(vm.geometry, 1) + VCPU.off.bpr1;
    await inWorker(vm, [pmr1, bpr1], [
      { op: 'write', word: pmr1, value: 0xf0 },
      { op: 'lockMutex', v: 1 },
      { op: 'write', word: bpr1, value: 3 },
      { op: 'unlockMutex', v: 1 },
    ]);
    const r = reports(vm);
    expect(r.map((x) => x.field)).toEqual(['vcpu[1].pmr']);
    expect(r[0]!.rule).toMatch(/only vcpu1's thread, or a thread holding its vcpu->mutex/);
  });

  it('allows the declared racy reads (dist->enabled, READ_ONCE in the oracle) but not their plain writes', async () => {
    const vm = checkedVm();
    const en = DIST.off.enabled;
    await inWorker(vm, [en], [
      { op: 'read', word: en },
      { op: 'write', word: en, value: 1 },
    ]);
    expect(reports(vm).map((x) => `${x.access} ${x.field}`)).toEqual(['write vgic_dist.enabled']);
  });

  it('a word used by one thread only (initialisation) is not checked: no report without a second thread', () => {
    const vm = checkedVm();
    vm.host.m[irqWord(vm, 44, 'pendingLatch')] = 1;
    vm.host.m[irqWord(vm, 44, 'priority')] = 0x80;
    expect(accessViolations(vm.host)!.count).toBe(0);
  });

  it("checks the Float64 view too, and in locking 'global' dist->lock stands for irq_lock", () => {
    const vm = checkedVm('global');
    const w = irqWord(vm, 45, 'active');
    vm.host.m[w] = 0;
    // A second Host of the same VM on this thread stands for another thread (its own slot).
    const ti = vm.threadInit();
    const other = makeHost(vm.geometry, ti.cfg, ti.buffers, driverSlot(vm.geometry), 'other', -1, null);
    lockIrq(other, spi(vm, 45));
    other.m[w] = 1; // under dist->lock: fine
    unlockIrq(other, spi(vm, 45));
    const dl = vcpuOff(vm.geometry, 1) + VCPU.off.timerDeadline;
    vm.host.f[dl / 2] = 5;
    other.f[dl / 2] = 6; // owner(vcpu): not vcpu1's thread
    expect(reports(vm).map((x) => `${x.access} ${x.field} ${x.thread}`)).toEqual(['write vcpu[1].timerDeadline other']);
  });

  it('fails destroy() with every violation named (API use), after a full teardown', async () => {
    const vm = checkedVm();
    const w = irqWord(vm, 46, 'enabled');
    await inWorker(vm, [w], [{ op: 'write', word: w, value: 1 }]);
    const err = await vm.destroy().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AccessViolationError);
    expect((err as Error).message).toMatch(/lockset: 1 access violation\(s\):\n {2}write of vgic_irq\[INTID 46\]\.enabled by lockset-worker holding \[\]: irq_lock: a write must hold irq_lock/);
    expect(vm.teardownLog).toContain('vgic');
  });

  // Regressions: what the checker found in the model (each fails destroy() without its fix).
  it.each([2, 3] as const)('GICv%i: a VM whose vCPUs ran tears down clean (kvm_vgic_destroy holds config_lock; vgic_init re-initialises records and vCPU interfaces before publishing them)', async (model) => {
    const guest = guestFromFunction((cpu: GuestCpu) => {
      cpu.initCpuInterface();
      return cpu.id;
    });
    // v2 initialises lazily, on the first vCPU's first run: it writes every record and the other
    // vCPU's interface, which the main thread touched at creation.
    const { vm } = build(model, { vcpus: 2, guest, vm: { checkAccess: true, maxVcpus: 2 } });
    vms.push(vm);
    const res = await runAll(vm);
    expect(res.map((r) => r.result)).toEqual([0, 1]);
    await expect(vm.destroy()).resolves.toBeUndefined();
    expect(accessViolations(vm.host)!.count).toBe(0);
  });

  it('off: h.m and h.f are the raw typed arrays the locks use (no Proxy on the hot path)', () => {
    const vm = createVm({ maxVcpus: 1, checkAccess: false });
    vms.push(vm);
    expect(vm.host.m).toBe(vm.host.t.m);
    expect(isChecked(vm.host.m)).toBe(false);
    expect(isChecked(vm.host.f)).toBe(false);
    expect(accessViolations(vm.host)).toBeNull();
    const on = checkedVm();
    expect(on.host.m).not.toBe(on.host.t.m);
    expect(isChecked(on.host.m)).toBe(true);
    expect(on.host.t.m).toBeInstanceOf(Int32Array);
    expectErrno(() => createVm({ checkAccess: 'yes' as unknown as boolean }), 'EINVAL');
  });

  it('every field of the VM state declares its protection, shown by `vgic-emu layout`', () => {
    for (const l of [DIST, VCPU, IRQ, IRQFD, PHYS_IRQ, ITS, ROUTE]) {
      for (const f of l.fields) {
        const ok = f.kind === 'lock' || (f.elem ? f.elem.fields.every((e) => e.prot) : f.prot);
        expect(ok, `${l.name}.${f.name}`).toBeTruthy();
      }
    }
    expect(describeLayout(IRQ)).toMatch(/pendingLatch\s+irq_lock\s/);
    expect(describeLayout(VCPU)).toMatch(/apHead\s+ap_list_lock racy-read\s.*\(racy read: /);
  });
});
