/**
 * A real second thread for the lockset tests: a worker with its own Host on the test VM (as a
 * stress driver has) runs a list of accesses to the shared state (lockset-worker.mjs).
 */
import { Worker } from 'node:worker_threads';
import { expect } from 'vitest';
import type { Vm } from '../../src/index.js';
import { driverSlot } from '../../src/shm/vm-memory.js';
import { within } from '../helpers.js';

const WORKER_URL = new URL('./lockset-worker.mjs', import.meta.url);

export type Step = { op: 'write' | 'atomic'; word: number; value: number } | { op: 'read'; word: number } | { op: 'lockIrq' | 'unlockIrq'; r: number } | { op: 'lockMutex' | 'unlockMutex'; v: number };

/** Main touches each word first (so it is shared once the worker does), then the worker runs `steps`. */
export async function inWorker(vm: Vm, touch: readonly number[], steps: readonly Step[]): Promise<void> {
  for (const w of touch) void Atomics.load(vm.host.m, w);
  const ti = vm.threadInit();
  const worker = new Worker(WORKER_URL, { workerData: { buffers: ti.buffers, cfg: ti.cfg, slot: driverSlot(vm.geometry), steps } });
  try {
    const msg = await within(new Promise<{ done?: true; error?: string }>((res, rej) => {
      worker.once('message', res);
      worker.once('error', rej);
    }), 10_000, 'the lockset worker');
    expect(msg.error).toBeUndefined();
  } finally {
    await worker.terminate();
  }
}
