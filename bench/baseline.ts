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

export interface BaselineWorkerData {
  sab: SharedArrayBuffer;
  mode: 'busy' | 'wait';
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

export async function measureBaselines(quick: boolean, reps: number): Promise<{ busyPoll: RoundTrip; waitNotify: RoundTrip }> {
  const busyPoll = await roundTrips('busy', quick ? 20_000 : 100_000, reps);
  const waitNotify = await roundTrips('wait', quick ? 300 : 1500, reps);
  return { busyPoll, waitNotify };
}
