/**
 * Raw round-trip baselines between two threads (main thread and one worker), measured in the
 * same run as everything else: busy-poll ping/pong on bare SAB words (the cross-core floor) and
 * an Atomics.wait/notify ping/pong. Each repetition is a block of rounds; one warm-up block first.
 */
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { median } from './report.js';

export const PING = 0;
export const PONG = 16; // a different cache line
/** 'wake' mode: the worker sets PARKED just before Atomics.wait; f64 stamp and samples follow. */
export const PARKED = 32;
export const STAMP_F64 = 8; // byte 64
export const WAKE_F64 = 16; // byte 128 ..

export interface BaselineWorkerData {
  sab: SharedArrayBuffer;
  mode: 'busy' | 'wait' | 'wake';
  total: number;
}

export interface RoundTrip {
  /** Median ns per round trip over the repetitions. */
  ns: number;
  samples: number[];
  rounds: number;
}

async function roundTrips(mode: 'busy' | 'wait', rounds: number, reps: number): Promise<RoundTrip> {
  const sab = new SharedArrayBuffer(128);
  const m = new Int32Array(sab);
  const data: BaselineWorkerData = { sab, mode, total: rounds * (reps + 1) };
  const w = new Worker(new URL('./baseline-worker.js', import.meta.url), { workerData: data });
  const exited = once(w, 'exit');
  const failed = once(w, 'error').then(([e]) => Promise.reject(e as Error));
  await Promise.race([once(w, 'message'), failed]);
  const samples: number[] = [];
  let i = 0;
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    for (let k = 0; k < rounds; k++) {
      i++;
      Atomics.store(m, PING, i);
      if (mode === 'busy') {
        while (Atomics.load(m, PONG) !== i);
      } else {
        Atomics.notify(m, PING);
        while (Atomics.load(m, PONG) !== i) Atomics.wait(m, PONG, i - 1);
      }
    }
    if (r > 0) samples.push(((performance.now() - t0) * 1e6) / rounds);
  }
  await Promise.race([exited, failed]);
  return { ns: median(samples), samples, rounds };
}

/**
 * One-way wake-up latency: the main thread stamps the time and notifies a worker parked in
 * Atomics.wait (it published PARKED just before waiting, as a vCPU publishes `parked`); the worker
 * records now - stamp. The floor that waking a vCPU parked in WFI is compared with.
 */
export async function wakeLatency(count: number): Promise<{ p50Us: number; p99Us: number; samples: number }> {
  const sab = new SharedArrayBuffer(128 + 8 * count);
  const m = new Int32Array(sab);
  const f = new Float64Array(sab);
  const data: BaselineWorkerData = { sab, mode: 'wake', total: count };
  const w = new Worker(new URL('./baseline-worker.js', import.meta.url), { workerData: data });
  const exited = once(w, 'exit');
  const failed = once(w, 'error').then(([e]) => Promise.reject(e as Error));
  await Promise.race([once(w, 'message'), failed]);
  const origin = performance.timeOrigin;
  for (let i = 1; i <= count; i++) {
    const deadline = performance.now() + 5000;
    while (Atomics.load(m, PARKED) !== i) if (performance.now() > deadline) throw new Error('wake baseline: the worker did not park');
    f[STAMP_F64] = origin + performance.now();
    Atomics.store(m, PING, i);
    Atomics.notify(m, PING);
    while (Atomics.load(m, PONG) !== i) if (performance.now() > deadline) throw new Error('wake baseline: the worker did not wake');
  }
  await Promise.race([exited, failed]);
  const lat = Array.from(f.subarray(WAKE_F64, WAKE_F64 + count)).map((ms) => ms * 1000).sort((a, b) => a - b);
  return { p50Us: median(lat), p99Us: lat[Math.min(lat.length - 1, Math.floor(0.99 * lat.length))]!, samples: lat.length };
}

/**
 * Same-thread cost of one Atomics.store plus one Atomics.load on a SAB word, nobody else touching
 * it: the unit a single-vCPU round trip (mmio_read_vgic, mmio_read_user, eoi) is made of, where the
 * cross-core busy-poll floor says nothing. Median over many short blocks (~40 µs each, so that few
 * of them are cut by a preemption on a shared machine), as the other baselines take medians.
 */
export function atomicsPair(blocks: number, perBlock = 2_000): RoundTrip {
  const m = new Int32Array(new SharedArrayBuffer(64));
  const samples: number[] = [];
  for (let b = 0; b <= blocks; b++) {
    const t0 = performance.now();
    for (let i = 0; i < perBlock; i++) {
      Atomics.store(m, 0, i);
      Atomics.load(m, 0);
    }
    if (b > 0) samples.push(((performance.now() - t0) * 1e6) / perBlock);
  }
  return { ns: median(samples), samples, rounds: perBlock };
}

export async function measureBaselines(quick: boolean, reps: number): Promise<{ busyPoll: RoundTrip; waitNotify: RoundTrip; atomics: RoundTrip }> {
  const busyPoll = await roundTrips('busy', quick ? 20_000 : 100_000, reps);
  const waitNotify = await roundTrips('wait', quick ? 300 : 1500, reps);
  return { busyPoll, waitNotify, atomics: atomicsPair(200) };
}
