/**
 * Lockset checking of the fields guarded by sleeping locks (kvm->lock, config_lock, vcpu->mutex,
 * its_lock, cmd_lock) and of owner(vcpu) fields. The VMM (main) thread is mostly their only
 * writer, so Eraser's refinement (a word is not checked until a second thread touches it) would
 * never check them: a write is checked once a vCPU is online, i.e. once a vCPU thread may be
 * running beside the VMM thread. A record being (re)allocated is exempt for its allocator
 * (accessRecycled) until another thread touches it. Also: lockdep_assert_held (assertHeld).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, guestFromFunction, type GuestCpu, type Vm } from '../../src/index.js';
import { accessRecycled, accessViolations, unchecked, type AccessViolation } from '../../src/check/lockset/index.js';
import { lockAllVcpus, unlockAllVcpus } from '../../src/kvm/vcpu-locks.js';
import { vgicCreate } from '../../src/kvm/vgic-device.js';
import { DIST, ITS, ITS_ITE, TIMER_CTX, VCPU } from '../../src/shm/layouts.js';
import { itsOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { LockNotHeldError } from '../../src/sync/lockdep.js';
import { KVM_DEV_TYPE_ARM_VGIC_V3 } from '../../src/uapi/index.js';
import { vgicInit } from '../../src/vgic/init.js';
import { lockConfig, lockKvm, lockVcpuMutex, unlockConfig, unlockKvm, unlockVcpuMutex } from '../../src/vgic/locks.js';
import { runAll, waitRam, within } from '../helpers.js';
import { inWorker } from './lockset-steps.js';

let vms: Vm[] = [];
afterEach(async () => {
  // A VM whose test left violations on purpose fails its destroy: that is asserted where it matters.
  await within(Promise.all(vms.map((v) => v.destroy().catch(() => undefined))), 10_000, 'vm.destroy()');
  vms = [];
});

function track(vm: Vm): Vm {
  vms.push(vm);
  return vm;
}

const checkedVm = (): Vm => track(createVm({ maxVcpus: 2, checkAccess: true }));

function reports(vm: Vm): readonly AccessViolation[] {
  return accessViolations(vm.host)!.reports;
}
const described = (vm: Vm): string[] => reports(vm).map((r) => `${r.access} ${r.field} ${r.thread}`);

const dist = (vm: Vm, f: keyof typeof DIST.off): number => vm.geometry.distBase + DIST.off[f];
/** Store a word's own value back (the state stays as it was; only the access matters). */
const rewrite = (vm: Vm, w: number): void => {
  vm.host.m[w] = unchecked(vm.host.m)[w]!;
};

/** RAM words of the spinning guest: it sets READY, then spins until GO. */
const READY = 0;
const GO = 1;
const spinner = guestFromFunction((cpu: GuestCpu) => {
  cpu.store(0, 1);
  while (cpu.load(1) === 0) cpu.relax();
  return cpu.id;
});

/** Run `body` on the main thread while vCPU 0's thread is inside KVM_RUN (a real concurrent thread). */
async function whileVcpuRuns(vm: Vm, body: () => void): Promise<void> {
  const run = runAll(vm, 20_000, 'the spinning guest to return');
  try {
    await waitRam(vm, READY, 10_000, 'the guest to be running');
    body();
  } finally {
    Atomics.store(vm.ram, GO, 1);
  }
  expect((await run).map((r) => r.result)).toEqual([0]);
}

describe('lockset: writes to mutex-guarded fields are checked once a vCPU is online', () => {
  it('a kvm->lock field written by main without kvm->lock while a vCPU runs is reported; before any vCPU is online it is not', async () => {
    const vm = checkedVm();
    const w = dist(vm, 'createdVcpus');
    rewrite(vm, w); // no vCPU yet: the VM is the VMM thread's alone
    expect(accessViolations(vm.host)!.count).toBe(0);
    vm.createVcpu(0, { guest: spinner });
    await whileVcpuRuns(vm, () => {
      rewrite(vm, w); // the missing lock
      lockKvm(vm.host);
      rewrite(vm, w); // the same write done right
      unlockKvm(vm.host);
    });
    const r = reports(vm);
    expect(described(vm)).toEqual(['write vgic_dist.createdVcpus main']);
    expect(r[0]!.rule).toMatch(/^kvm->lock racy-read: a write must hold kvm->lock; kvm->lock is not held/);
    expect(r[0]!.stack.split('\n')[0]).toMatch(/lockset-mutex\.test\.ts/);
  });

  it('a config_lock field written without config_lock while a vCPU is online is reported, not under config_lock', async () => {
    const vm = checkedVm();
    vm.createVcpu(0, { guest: spinner });
    const w = dist(vm, 'timerPpisImmutable');
    await whileVcpuRuns(vm, () => {
      rewrite(vm, w);
      lockConfig(vm.host);
      rewrite(vm, w);
      unlockConfig(vm.host);
    });
    expect(described(vm)).toEqual(['write vgic_dist.timerPpisImmutable main']);
    expect(reports(vm)[0]!.rule).toMatch(/^config_lock: a write must hold config_lock; config_lock is not held/);
  });

  it("an owner(vcpu) field written by main without that vCPU's mutex is reported once the vCPU is online, not holding the mutex, not before it is online", () => {
    const vm = checkedVm();
    vm.createVcpu(0);
    const ctl = (v: number): number => vcpuOff(vm.geometry, v) + VCPU.off.timers + TIMER_CTX.off.ctl;
    // vCPU 1 does not exist yet: its record is reachable by nobody (kvm_get_vcpu stops at online_vcpus).
    vm.host.m[ctl(1)] = 0;
    vm.host.m[ctl(0)] = 0; // vCPU 0 is online (its thread exists) and main does not hold its mutex
    lockVcpuMutex(vm.host, 0);
    vm.host.m[ctl(0)] = 0; // as KVM_SET_ONE_REG does it
    unlockVcpuMutex(vm.host, 0);
    expect(described(vm)).toEqual(['write vcpu[0].timers[0].ctl main']);
    expect(reports(vm)[0]!.rule).toMatch(/only vcpu0's thread, or a thread holding its vcpu->mutex/);
  });

  it('the ITS command-queue registers may be written under cmd_lock or under kvm->lock plus every vCPU mutex, not under kvm->lock alone', () => {
    const vm = checkedVm();
    vm.createVcpu(0);
    vm.createVcpu(1);
    const cwriter = itsOff(vm.geometry, 0) + ITS.off.cwriter;
    lockKvm(vm.host);
    lockAllVcpus(vm.host);
    Atomics.store(vm.host.m, cwriter, 0); // vgic_its_attr_regs_access restoring GITS_CWRITER
    unlockAllVcpus(vm.host);
    Atomics.store(vm.host.m, cwriter, 0); // kvm->lock without the vCPUs: a guest may write it meanwhile
    unlockKvm(vm.host);
    expect(described(vm)).toEqual(['atomic-write vgic_its[0].cwriter main']);
    expect(reports(vm)[0]!.rule).toMatch(/a write must hold cmd_lock, or kvm->lock and all vcpu->mutex; cmd_lock is not held/);
  });

  it("a recycled record's initialisation is not reported; once another thread touches it, it is checked again", async () => {
    const vm = checkedVm();
    vm.createVcpu(0);
    const ite = (k: number, f: keyof typeof ITS_ITE.off): number => itsOff(vm.geometry, 0) + ITS.off.ites + k * ITS_ITE.size + ITS_ITE.off[f];
    vm.host.m[ite(3, 'eventId')] = 7; // an ITE main did not allocate: its_lock is missing
    // A new ITE (vgic_add_lpi / MAPTI's kzalloc): nobody else can reach it until it is linked.
    accessRecycled(vm.host, ite(4, 'valid'), ITS_ITE.size);
    vm.host.m[ite(4, 'eventId')] = 9;
    vm.host.m[ite(4, 'icid')] = 1;
    expect(described(vm)).toEqual(['write vgic_its[0].ites[3].eventId main']);
    // Published: a second thread's unlocked write is a race like any other.
    await inWorker(vm, [], [{ op: 'write', word: ite(4, 'eventId'), value: 10 }]);
    expect(described(vm)).toEqual(['write vgic_its[0].ites[3].eventId main', 'write vgic_its[0].ites[4].eventId lockset-worker']);
  });
});

describe('assertHeld (lockdep_assert_held)', () => {
  it('lock_all_vcpus without kvm->lock and vgic_init without config_lock fail with LockNotHeldError in checking mode', () => {
    const vm = track(createVm({ maxVcpus: 2, checkAccess: true, lockdep: false }));
    vm.createVcpu(0);
    expect(() => lockAllVcpus(vm.host)).toThrow(LockNotHeldError);
    expect(() => lockAllVcpus(vm.host)).toThrow(/lockdep_assert_held\(kvm->lock\) failed in lock_all_vcpus: main does not hold it \(holding \[\]\)/);
    // kvm_vgic_create's callers hold kvm->lock (the mutant that dropped it dies here).
    expect(() => vgicCreate(vm.host, KVM_DEV_TYPE_ARM_VGIC_V3)).toThrow(/lockdep_assert_held\(kvm->lock\) failed in lock_all_vcpus/);
    lockKvm(vm.host);
    try {
      vgicCreate(vm.host, KVM_DEV_TYPE_ARM_VGIC_V3);
      expect(() => vgicInit(vm.host)).toThrow(/lockdep_assert_held\(config_lock\) failed in vgic_init: main does not hold it \(holding \[kvm->lock\]\)/);
    } finally {
      unlockKvm(vm.host);
    }
    lockConfig(vm.host);
    try {
      vgicInit(vm.host);
    } finally {
      unlockConfig(vm.host);
    }
    expect(Atomics.load(vm.host.m, dist(vm, 'initialized'))).toBe(1);
  });

  it('is live under lockdep alone, and compiled out with neither lockdep nor lockset checking (as without CONFIG_LOCKDEP)', () => {
    const dep = track(createVm({ maxVcpus: 1, checkAccess: false, lockdep: true }));
    expect(() => lockAllVcpus(dep.host)).toThrow(LockNotHeldError);
    const off = track(createVm({ maxVcpus: 1, checkAccess: false, lockdep: false }));
    off.createVcpu(0);
    lockAllVcpus(off.host);
    unlockAllVcpus(off.host);
  });
});
