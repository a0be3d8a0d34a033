/**
 * `vgic-emu lockstat`: every (locking, vCPUs) configuration, R times, interleaved (repeat r of
 * every configuration before repeat r + 1 of any, so a change in the machine's load hits both
 * locking modes alike), then per configuration the median and spread of each figure, and `fine`
 * against `global` from the same run.
 */
import { availableParallelism } from 'node:os';
import type { LockClassStats } from '../kvm/vm.js';
import type { LockStatsMode } from '../sync/thread.js';
import type { LockingMode } from '../vgic/host.js';
import { packageVersion } from '../version.js';
import { measureTimedOverhead, type TimedOverhead } from './overhead.js';
import { runOnce, type RunResult } from './run.js';
import { percentile, ratioSpread, roundSpread, spread, type Spread } from './summary.js';
import type { LockTrace } from './trace.js';
import type { LockstatWorkload } from './workloads.js';

/** An interrupted window shorter than this is dropped (the shortest --seconds). */
const MIN_INTERRUPTED_WINDOW_S = 0.05;

export interface LockstatOptions {
  workload: LockstatWorkload;
  locking: LockingMode[];
  vcpus: number[];
  seconds: number;
  repeat: number;
  statsMode: LockStatsMode;
  /** Measure the cost of timed statistics first (skip for tests that only check the shape). */
  overhead: boolean;
  aborted: () => boolean;
  onProgress?: (done: number, total: number, detail: string) => void;
}

export interface RepeatReport {
  seconds: number;
  interrupted: boolean;
  acks: number;
  throughput: number;
  latencyNs: { p50: number; p99: number; max: number };
  /** The latency histogram: bucket b holds samples in [2^(b/4), 2^((b+1)/4)) ns. */
  latencyHist: number[];
  exits: Record<string, number>;
  lockStats: LockClassStats[];
}

export interface ConfigReport {
  locking: LockingMode;
  vcpus: number;
  /** Busy threads: vCPUs, device workers, the main thread. */
  threads: number;
  /** More busy threads than cores: the OS time-slices them, and lock holders get preempted. */
  oversubscribed: boolean;
  repeats: RepeatReport[];
  throughput: Spread;
  latencyP50Ns: Spread;
  latencyP99Ns: Spread;
  latencyMaxNs: Spread;
  /** Exits per second, per reason. */
  exitsPerSec: Record<string, Spread>;
  /** The lock_stat table of the repeat with the median throughput (classes that were taken). */
  lockStats: LockClassStats[];
  /** Per class, the contended-wait histogram summed over the repeats (timed mode). */
  waitHistogram: Record<string, number[]>;
  trace?: LockTrace;
}

export interface LockstatReport {
  tool: 'vgic-emu lockstat';
  version: string;
  cores: number;
  workload: { name: string; description: string };
  seconds: number;
  repeat: number;
  statsMode: LockStatsMode;
  vcpus: number[];
  locking: LockingMode[];
  interrupted: boolean;
  timedOverhead: TimedOverhead | null;
  configs: ConfigReport[];
  /** `fine` throughput / `global` throughput per vCPU count, with its spread. */
  ratios: { vcpus: number; fineOverGlobal: Spread; oversubscribed: boolean }[];
}

function repeatReport(r: RunResult): RepeatReport {
  return {
    seconds: Math.round(r.seconds * 1000) / 1000,
    interrupted: r.interrupted,
    acks: r.acks,
    throughput: Math.round(r.throughput),
    latencyNs: { p50: percentile(r.latencyHist, 0.5), p99: percentile(r.latencyHist, 0.99), max: r.latencyMaxNs },
    latencyHist: r.latencyHist,
    exits: r.exits,
    lockStats: r.lockStats.filter((c) => c.acquisitions > 0),
  };
}

function summarise(locking: LockingMode, vcpus: number, threads: number, cores: number, runs: RunResult[]): ConfigReport {
  const reps = runs.map(repeatReport);
  const tp = spread(reps.map((r) => r.throughput));
  const byTp = [...reps].sort((a, b) => a.throughput - b.throughput);
  const median = byTp[(byTp.length - 1) >> 1]!;
  const exitsPerSec: Record<string, Spread> = {};
  for (const k of Object.keys(reps[0]?.exits ?? {})) exitsPerSec[k] = roundSpread(spread(reps.map((r) => (r.seconds > 0 ? r.exits[k]! / r.seconds : 0))));
  const waitHistogram: Record<string, number[]> = {};
  for (const r of reps) {
    for (const c of r.lockStats) {
      if (!c.waitHistogram) continue;
      const h = (waitHistogram[c.name] ??= new Array<number>(c.waitHistogram.length).fill(0));
      c.waitHistogram.forEach((n, i) => (h[i]! += n));
    }
  }
  const trace = runs.find((r) => r.trace)?.trace;
  return {
    locking, vcpus, threads, oversubscribed: threads > cores, repeats: reps,
    throughput: roundSpread(tp),
    latencyP50Ns: roundSpread(spread(reps.map((r) => r.latencyNs.p50))),
    latencyP99Ns: roundSpread(spread(reps.map((r) => r.latencyNs.p99))),
    latencyMaxNs: roundSpread(spread(reps.map((r) => r.latencyNs.max))),
    exitsPerSec,
    lockStats: median.lockStats,
    waitHistogram,
    ...(trace ? { trace } : {}),
  };
}

export async function runLockstat(o: LockstatOptions): Promise<LockstatReport> {
  const cores = availableParallelism();
  const keys = o.vcpus.flatMap((v) => o.locking.map((l) => ({ v, l })));
  const runs = new Map<string, RunResult[]>(keys.map((k) => [`${k.l}/${k.v}`, []]));
  const total = keys.length * o.repeat + (o.overhead ? 2 : 0);
  let done = 0;
  const detail = (what: string): void => o.onProgress?.(done, total, what);
  let timedOverhead: TimedOverhead | null = null;
  if (o.overhead) {
    detail('timed-mode overhead');
    const plan = { mainSpis: 4, devices: [], lpis: 0, sgi: false, churn: 0 };
    timedOverhead = await measureTimedOverhead({ plan, name: 'spi (4 edge SPIs from the main thread)', vcpus: 2, seconds: Math.min(0.5, o.seconds) }, o.aborted);
    done += 2;
  }
  const maxV = Math.max(...o.vcpus);
  outer: for (let r = 0; r < o.repeat; r++) {
    for (const k of keys) {
      if (o.aborted()) break outer;
      detail(`${k.l} ${k.v} vCPUs, repeat ${r + 1}/${o.repeat}`);
      const res = await runOnce({
        plan: o.workload.plan(k.v), locking: k.l, vcpus: k.v, seconds: o.seconds, statsMode: o.statsMode,
        trace: r === 0 && k.v === maxV, aborted: o.aborted,
        onProgress: (f) => o.onProgress?.(done + f, total, `${k.l} ${k.v} vCPUs, repeat ${r + 1}/${o.repeat}`),
      });
      // A window cut short by Ctrl-C is still a measurement (its rate is over its own length),
      // unless it is too short to mean anything.
      if (!res.interrupted || res.seconds >= MIN_INTERRUPTED_WINDOW_S) runs.get(`${k.l}/${k.v}`)!.push(res);
      done++;
    }
  }
  const configs: ConfigReport[] = [];
  for (const k of keys) {
    const rs = runs.get(`${k.l}/${k.v}`)!;
    if (rs.length === 0) continue;
    const p = o.workload.plan(k.v);
    configs.push(summarise(k.l, k.v, k.v + p.devices.length + 1, cores, rs));
  }
  const ratios: LockstatReport['ratios'] = [];
  for (const v of o.vcpus) {
    const f = configs.find((c) => c.locking === 'fine' && c.vcpus === v);
    const g = configs.find((c) => c.locking === 'global' && c.vcpus === v);
    if (f && g) ratios.push({ vcpus: v, fineOverGlobal: roundSpread(ratioSpread(f.throughput, g.throughput), 2), oversubscribed: f.oversubscribed || g.oversubscribed });
  }
  return {
    tool: 'vgic-emu lockstat', version: packageVersion(), cores,
    workload: { name: o.workload.name, description: o.workload.description },
    seconds: o.seconds, repeat: o.repeat, statsMode: o.statsMode, vcpus: o.vcpus, locking: o.locking,
    interrupted: o.aborted(), timedOverhead, configs, ratios,
  };
}
