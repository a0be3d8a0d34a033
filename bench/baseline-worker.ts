/**
 * The far side of the raw round-trip baselines (baseline.ts): answer each ping with a pong on
 * bare SAB words, either by busy-polling or by Atomics.wait/notify.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PARKED, PING, PONG, STAMP_F64, WAKE_F64, type BaselineWorkerData } from './baseline.js';

const { sab, mode, total } = workerData as BaselineWorkerData;
const m = new Int32Array(sab);
parentPort!.postMessage('ready');
if (mode === 'busy') {
  for (let i = 1; i <= total; i++) {
    while (Atomics.load(m, PING) !== i);
    Atomics.store(m, PONG, i);
  }
} else if (mode === 'wake') {
  const f = new Float64Array(sab);
  const origin = performance.timeOrigin;
  for (let i = 1; i <= total; i++) {
    Atomics.store(m, PARKED, i);
    while (Atomics.load(m, PING) !== i) Atomics.wait(m, PING, i - 1);
    f[WAKE_F64 + i - 1] = origin + performance.now() - f[STAMP_F64]!;
    Atomics.store(m, PONG, i);
  }
} else {
  for (let i = 1; i <= total; i++) {
    while (Atomics.load(m, PING) !== i) Atomics.wait(m, PING, i - 1);
    Atomics.store(m, PONG, i);
    Atomics.notify(m, PONG);
  }
}
