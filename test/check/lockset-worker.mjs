// Worker side of lockset.test.ts: a real thread with its own Host on the test VM (as a stress
// driver has), which runs a list of accesses to the shared state and posts { done: true } (or
// { error }). Loads the COMPILED modules (Node 20 cannot start a .ts worker entry).
//
// workerData: { buffers, cfg, slot, steps: [{ op, ... }] }
//   op 'write' { word, value }       plain store through h.m
//   op 'read' { word }               plain load through h.m
//   op 'atomic' { word, value }      Atomics.store through h.m
//   op 'lockIrq' / 'unlockIrq' { r } that record's irq_lock
//   op 'lockMutex' / 'unlockMutex' { v } vCPU v's vcpu->mutex
import { parentPort, workerData } from 'node:worker_threads';
import { makeHost } from '../../dist/src/vgic/host.js';
import { computeGeometry } from '../../dist/src/shm/vm-memory.js';
import { lockIrq, unlockIrq, lockVcpuMutex, unlockVcpuMutex } from '../../dist/src/vgic/locks.js';

const { buffers, cfg, slot, steps } = workerData;
try {
  const h = makeHost(computeGeometry(cfg), cfg, buffers, slot, 'lockset-worker', -1, null);
  for (const s of steps) {
    if (s.op === 'write') h.m[s.word] = s.value;
    else if (s.op === 'read') void h.m[s.word];
    else if (s.op === 'atomic') Atomics.store(h.m, s.word, s.value);
    else if (s.op === 'lockIrq') lockIrq(h, s.r);
    else if (s.op === 'unlockIrq') unlockIrq(h, s.r);
    else if (s.op === 'lockMutex') lockVcpuMutex(h, s.v);
    else if (s.op === 'unlockMutex') unlockVcpuMutex(h, s.v);
    else throw new Error(`unknown step ${s.op}`);
  }
  parentPort.postMessage({ done: true });
} catch (e) {
  parentPort.postMessage({ error: String(e && e.stack) });
}
