// Worker side of lock-stat.test.ts: one thread of a real contention on one real lock (the
// COMPILED sync modules; Node 20 cannot start a .ts worker entry).
// workerData: { state, stats, slot, mode, n, lockWord, counterWord, seqBase, startWord }
//   Waits for the start word, then n times: acquire (class irq_lock, instance slot % 2, site =
//   slot), append its slot to the acquisition log at seq[counter], counter++, release.
//   Posts { done: n } when finished.
import { parentPort, workerData } from 'node:worker_threads';
import { acquire, release, SPIN_LIMIT_SPINLOCK } from '../../dist/src/sync/lock.js';
import { makeSyncThread, statsBaseOf } from '../../dist/src/sync/thread.js';

const { state, stats, slot, mode, n, lockWord, counterWord, seqBase, startWord, stopWord } = workerData;
const m = new Int32Array(state);
const t = makeSyncThread({
  m, stats: new Float64Array(stats), slot, name: `contender${slot}`, statsBase: statsBaseOf(slot, mode), statsMode: mode,
  stopWord, waitingOnWord: stopWord + 1 + slot, edgeBase: 0, lockdep: false,
});
// Bounded start barrier (the test's waits are bounded too).
while (Atomics.load(m, startWord) === 0) Atomics.wait(m, startWord, 0, 50);
const IRQ_LOCK = 7;
for (let i = 0; i < n; i++) {
  acquire(t, lockWord, IRQ_LOCK, slot % 2, SPIN_LIMIT_SPINLOCK, false, slot);
  const c = m[counterWord];
  m[seqBase + c] = slot;
  m[counterWord] = c + 1;
  release(t, lockWord, IRQ_LOCK);
}
parentPort.postMessage({ done: n });
