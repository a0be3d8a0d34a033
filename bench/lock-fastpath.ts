/**
 * Lock fast paths (tinybench): uncontended acquire+release of our SpinLock and Mutex
 * (src/sync/lock.ts), lockdep off and on, against a raw Atomics.compareExchange + Atomics.store
 * pair measured in the same run. Each tinybench sample is a batch of BATCH operations (a single
 * op is far below performance.now()'s ~50 ns cost); the sample reports the batch mean.
 */
import { Bench } from 'tinybench';
import { acquire, release, SPIN_LIMIT_MUTEX, SPIN_LIMIT_SPINLOCK } from '../src/sync/lock.js';
import { LockClass, NR_LOCK_CLASSES } from '../src/sync/lock-classes.js';
import { makeSyncThread, threadStatsSize, type SyncThread } from '../src/sync/thread.js';

const BATCH = 1000;
// Word layout of the private SAB: two-word locks, then the thread's bookkeeping words.
const W_SPIN = 0;
const W_MUTEX = 2;
const W_OUTER = 4;
const W_STOP = 8;
const W_WAITING = 9;
const W_EDGES = 16;

export interface LockRow {
  name: string;
  nsPerOp: number;
  /** ns/op divided by the raw CAS+store pair's ns/op. */
  ratio: number;
}

function thread(lockdep: boolean): SyncThread {
  const m = new Int32Array(new SharedArrayBuffer(4 * (W_EDGES + NR_LOCK_CLASSES * NR_LOCK_CLASSES)));
  const stats = new Float64Array(new SharedArrayBuffer(8 * threadStatsSize()));
  // statsMode 'counts' is the VM default, so the fast path includes its per-acquisition counter.
  return makeSyncThread({ m, stats, slot: 0, name: 'bench', statsBase: 0, statsMode: 'counts', stopWord: W_STOP, waitingOnWord: W_WAITING, edgeBase: W_EDGES, lockdep });
}

function batched(op: () => void) {
  return () => {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) op();
    const d = performance.now() - t0;
    return { overriddenDuration: d / BATCH, overriddenIterationCost: d };
  };
}

export async function benchLockFastPaths(timeMs: number): Promise<LockRow[]> {
  const raw = new Int32Array(new SharedArrayBuffer(64));
  const off = thread(false);
  const on = thread(true);
  const nested = thread(true);
  const spin = (t: SyncThread) => () => {
    acquire(t, W_SPIN, LockClass.IrqLock, 1, SPIN_LIMIT_SPINLOCK);
    release(t, W_SPIN, LockClass.IrqLock);
  };
  const mutex = (t: SyncThread) => () => {
    acquire(t, W_MUTEX, LockClass.ConfigLock, -1, SPIN_LIMIT_MUTEX);
    release(t, W_MUTEX, LockClass.ConfigLock);
  };
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs), iterations: 32, throws: true });
  bench.add('raw CAS + store (baseline)', batched(() => {
    if (Atomics.compareExchange(raw, 0, 0, 1) !== 0) throw new Error('raw word busy');
    Atomics.store(raw, 0, 0);
  }));
  bench.add('SpinLock irq_lock, lockdep off', batched(spin(off)));
  bench.add('SpinLock irq_lock, lockdep on', batched(spin(on)));
  bench.add('Mutex config_lock, lockdep off', batched(mutex(off)));
  bench.add('Mutex config_lock, lockdep on', batched(mutex(on)));
  // The usual nesting on the hot path: irq_lock taken under a held ap_list_lock (one order check).
  bench.add('SpinLock irq_lock under ap_list_lock, lockdep on', batched(spin(nested)), {
    beforeAll: () => acquire(nested, W_OUTER, LockClass.ApListLock, 0, SPIN_LIMIT_SPINLOCK),
    afterAll: () => release(nested, W_OUTER, LockClass.ApListLock),
  });
  await bench.run();
  const ns = bench.tasks.map((t) => {
    const r = t.result;
    if (!('latency' in r)) throw new Error(`tinybench task '${t.name}' ended in state ${r.state}`);
    return r.latency.p50 * 1e6;
  });
  return bench.tasks.map((t, i) => ({ name: t.name, nsPerOp: ns[i]!, ratio: ns[i]! / ns[0]! }));
}
