/**
 * The liveness watchdog on real threads: two worker threads take two of a VM's lock words in
 * opposite order with the VM's own lock protocol (src/sync/lock.ts, lockdep off so nothing stops
 * them first) and deadlock for real. The watchdog, sampling from the main thread, must report the
 * deadlock with a wait-for graph naming both threads and both locks; raising the VM's stop word
 * must then end both lock waits (TeardownError), so nothing hangs. A thread parked behind a holder
 * that never lets go is reported as stuck on the lock, naming the holder.
 */
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createVm, type Vm } from '../../src/kvm/vm.js';
import { distPath } from '../../src/kvm/worker-path.js';
import { DIST } from '../../src/shm/layouts.js';
import { LockClass } from '../../src/sync/lock-classes.js';
import { acquire, release, SPIN_LIMIT_MUTEX } from '../../src/sync/lock.js';
import { Watchdog, type WatchdogFinding } from '../../src/check/watchdog.js';
import { within } from '../helpers.js';

/**
 * A lock-taking thread: builds its own Host (as every VM thread does, makeHost over the VM's
 * buffers), takes `first`, raises its gate flag, waits (bounded) for the peer's flag, then takes
 * `second`. Reports how its last lock wait ended.
 */
const LOCKER = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const { makeHost } = await import(workerData.hostUrl);
  const { acquire, release, TeardownError, SPIN_LIMIT_MUTEX } = await import(workerData.lockUrl);
  const { g, cfg, buffers, slot, name, first, second, gate, me, peer } = workerData;
  const h = makeHost(g, cfg, buffers, slot, name, -1);
  const flags = new Int32Array(gate);
  try {
    if (first) {
      acquire(h.t, first.word, first.cls, -1, SPIN_LIMIT_MUTEX);
      Atomics.store(flags, me, 1);
      Atomics.notify(flags, me);
    }
    if (peer >= 0) {
      const deadline = Date.now() + 10000;
      while (Atomics.load(flags, peer) === 0) {
        if (Date.now() > deadline) throw new Error('the peer never took its first lock');
        Atomics.wait(flags, peer, 0, 100);
      }
    }
    parentPort.postMessage({ name, state: 'waiting' });
    acquire(h.t, second.word, second.cls, -1, SPIN_LIMIT_MUTEX);
    release(h.t, second.word, second.cls);
    parentPort.postMessage({ name, state: 'acquired' });
  } catch (e) {
    parentPort.postMessage({ name, state: e instanceof TeardownError ? 'teardown' : 'error', message: String(e && e.stack || e) });
  }
})();
`;

interface LockRef {
  word: number;
  cls: number;
}

interface Locker {
  worker: Worker;
  /** Resolves with the thread's final state: 'acquired', 'teardown' or 'error'. */
  done: Promise<{ state: string; message?: string }>;
  exited: Promise<void>;
}

function startLocker(vm: Vm, slot: number, name: string, first: LockRef | null, second: LockRef, gate: SharedArrayBuffer, me: number, peer: number): Locker {
  const ti = vm.threadInit();
  const worker = new Worker(LOCKER, {
    eval: true,
    workerData: {
      hostUrl: pathToFileURL(distPath('src/vgic/host.js')).href,
      lockUrl: pathToFileURL(distPath('src/sync/lock.js')).href,
      g: vm.geometry,
      cfg: ti.cfg,
      buffers: ti.buffers,
      slot,
      name,
      first,
      second,
      gate,
      me,
      peer,
    },
  });
  // Listeners at creation: a message emitted before a listener exists is lost.
  const done = new Promise<{ state: string; message?: string }>((res, rej) => {
    worker.on('message', (msg: { state: string; message?: string }) => {
      if (msg.state !== 'waiting') res(msg);
    });
    worker.once('error', rej);
    worker.once('exit', (code) => res({ state: 'exited', message: `exit code ${code}` }));
  });
  const exited = new Promise<void>((res) => worker.once('exit', () => res()));
  return { worker, done, exited };
}

let vm: Vm | null = null;
const workers: Worker[] = [];
afterEach(async () => {
  if (vm) Atomics.store(vm.host.m, vm.geometry.distBase + DIST.off.stop, 1);
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
  if (vm) await within(vm.destroy(), 5000, 'vm.destroy()');
  vm = null;
});

function watch(v: Vm, boundMs: number): { finding: Promise<WatchdogFinding>; dog: Watchdog } {
  let resolve!: (f: WatchdogFinding) => void;
  const finding = new Promise<WatchdogFinding>((r) => (resolve = r));
  const dog = new Watchdog(v.host.m, v.geometry, resolve, { boundMs, periodMs: 20 });
  dog.start();
  return { finding, dog };
}

describe('the watchdog', () => {
  it('reports an ABBA deadlock between two real threads with a wait-for graph, and the stop word ends both waits', async () => {
    vm = createVm({ maxVcpus: 2, lockdep: false });
    const g = vm.geometry;
    const kvmLock: LockRef = { word: g.distBase + DIST.off.kvmLock, cls: LockClass.KvmLock };
    const configLock: LockRef = { word: g.distBase + DIST.off.configLock, cls: LockClass.ConfigLock };
    const gate = new SharedArrayBuffer(8);
    // Slots past the vCPUs' (1..maxVcpus): host threads, named thread<slot> in reports.
    const a = startLocker(vm, 4, 'A', kvmLock, configLock, gate, 0, 1);
    const b = startLocker(vm, 5, 'B', configLock, kvmLock, gate, 1, 0);
    workers.push(a.worker, b.worker);

    const t0 = performance.now();
    const { finding, dog } = watch(vm, 200);
    let f: WatchdogFinding;
    try {
      f = await within(finding, 10_000, 'the watchdog to report the deadlock');
    } finally {
      dog.stop();
    }
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(dog.finding).toBe(f);

    expect(f.kind).toBe('deadlock');
    expect(f.message).toMatch(/thread4/);
    expect(f.message).toMatch(/thread5/);
    // Who holds what, who waits for what: each thread holds one lock and waits for the other's.
    expect(f.waitFor).toMatch(/^wait-for graph:/);
    expect(f.waitFor).toMatch(/thread4\s+holds \[kvm->lock\] waits for config_lock held by thread5/);
    expect(f.waitFor).toMatch(/thread5\s+holds \[config_lock\] waits for kvm->lock held by thread4/);

    // Neither thread got past its second acquire.
    const racing = await Promise.race([a.done, b.done, Promise.resolve(null)]);
    expect(racing).toBeNull();

    // The stop word (what the runner's stopAll raises) ends both parked lock waits.
    Atomics.store(vm.host.m, g.distBase + DIST.off.stop, 1);
    const [ra, rb] = await within(Promise.all([a.done, b.done]), 5000, 'both lock waits to end after the stop word');
    expect(ra.state, ra.message).toBe('teardown');
    expect(rb.state, rb.message).toBe('teardown');
    await within(Promise.all([a.exited, b.exited]), 5000, 'both threads to exit');
  });

  it('reports a thread parked behind a holder that never releases as stuck on the lock, naming the holder', async () => {
    vm = createVm({ maxVcpus: 2, lockdep: false });
    const g = vm.geometry;
    const configLock: LockRef = { word: g.distBase + DIST.off.configLock, cls: LockClass.ConfigLock };
    // The main thread (slot 0) takes config_lock and keeps it.
    acquire(vm.host.t, configLock.word, LockClass.ConfigLock, -1, SPIN_LIMIT_MUTEX);
    const c = startLocker(vm, 6, 'C', null, configLock, new SharedArrayBuffer(8), 0, -1);
    workers.push(c.worker);

    const { finding, dog } = watch(vm, 200);
    let f: WatchdogFinding;
    try {
      f = await within(finding, 10_000, 'the watchdog to report the stuck thread');
    } finally {
      dog.stop();
    }
    expect(f.kind).toBe('stuck-on-lock');
    expect(f.message).toMatch(/thread6 parked on a lock/);
    expect(f.waitFor).toMatch(/main\s+holds \[config_lock\]/);
    expect(f.waitFor).toMatch(/thread6\s+holds \[\] waits for config_lock held by main/);

    // Once the holder lets go, the waiter gets the lock (a stuck holder, not a broken lock).
    release(vm.host.t, configLock.word, LockClass.ConfigLock);
    const r = await within(c.done, 5000, 'the waiter to take the released lock');
    expect(r.state, r.message).toBe('acquired');
  });

  describe('its bound on a loaded machine', () => {
    // sample() is driven by hand with a fake clock over a real VM's memory: the states below
    // (a thread marked parked on a lock word, the word's owner) are written directly, so the
    // timing is exact. The real-thread cases are the tests above.
    const PARKED_SLOT = 3;
    function parkedOn(v: Vm, holderSlot: number, site: number): void {
      const m = v.host.m;
      const word = v.geometry.distBase + DIST.off.configLock;
      Atomics.store(m, word, 2);
      Atomics.store(m, word + 1, (holderSlot + 1) | ((holderSlot + 1) << 8) | (site << 16));
      Atomics.store(m, v.geometry.distBase + DIST.off.waitingOn + PARKED_SLOT, word + 1);
    }
    function manual(v: Vm, boundMs: number, load: number): { dog: Watchdog; at: (ms: number) => WatchdogFinding | null } {
      let t = 0;
      let found: WatchdogFinding | null = null;
      const dog = new Watchdog(v.host.m, v.geometry, (f) => (found = f), { boundMs, loadFactor: () => load, now: () => t });
      return { dog, at: (ms) => ((t = ms), dog.sample(), found) };
    }
    afterEach(() => {
      if (!vm) return;
      // Undo the hand-written state so destroy() sees free locks.
      Atomics.store(vm.host.m, vm.geometry.distBase + DIST.off.configLock, 0);
      Atomics.store(vm.host.m, vm.geometry.distBase + DIST.off.configLock + 1, 0);
      Atomics.store(vm.host.m, vm.geometry.distBase + DIST.off.waitingOn + PARKED_SLOT, 0);
    });

    it('stretches by the load factor, and says so', () => {
      vm = createVm({ maxVcpus: 2, lockdep: false });
      parkedOn(vm, 0, 5);
      const { at } = manual(vm, 100, 4);
      expect(at(0)).toBeNull();
      expect(at(150)).toBeNull(); // past the 100 ms bound, within 100 x 4
      expect(at(399)).toBeNull();
      const f = at(400);
      expect(f?.kind).toBe('stuck-on-lock');
      expect(f?.message).toMatch(/thread3 parked on a lock held by the same holder for over 400 ms \(bound 100 ms x load factor 4\.0\)/);
    });

    it('an idle machine keeps the plain bound', () => {
      vm = createVm({ maxVcpus: 2, lockdep: false });
      parkedOn(vm, 0, 5);
      const { at } = manual(vm, 100, 0.3);
      expect(at(0)).toBeNull();
      expect(at(99)).toBeNull();
      expect(at(100)?.message).toMatch(/for over 100 ms$/);
    });

    it('a lock that changed hands between samples is contention, not a stuck holder: the wait starts over', () => {
      vm = createVm({ maxVcpus: 2, lockdep: false });
      const { at } = manual(vm, 100, 1);
      parkedOn(vm, 0, 5);
      expect(at(0)).toBeNull();
      expect(at(60)).toBeNull();
      parkedOn(vm, 1, 7); // another holder took it meanwhile
      expect(at(120)).toBeNull(); // 120 ms parked, but only 0 ms behind this holder
      expect(at(200)).toBeNull();
      parkedOn(vm, 1, 9); // the same thread again, from another call site
      expect(at(260)).toBeNull();
      const f = at(360); // 100 ms behind one unchanged owner
      expect(f?.kind).toBe('stuck-on-lock');
      expect(f?.waitFor).toMatch(/thread3\s+holds \[\] waits for config_lock held by vcpu0/);
    });
  });
});

