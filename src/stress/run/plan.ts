/**
 * Step 0 of a stress run: the configuration it runs with, resolved from the options and the
 * scenario's defaults, and (controlled mode) the scheduler's shared buffer.
 */
import { createSchedBuffer, STRATEGY_ORDER, STRATEGY_PCT, STRATEGY_RANDOM, STRATEGY_REPLAY } from '../../sched/controlled.js';
import { createChaosRecording } from '../../sched/chaos-record.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import type { Strategy, StressRunOptions } from './types.js';

export interface RunPlan {
  vcpus: number;
  gic: 'v2' | 'v3';
  args: ScenarioArgs;
  controlled: boolean;
  strategy: Strategy | 'replay' | null;
  nrLr: number;
  lrPolicy: 'mainline' | 'classic';
  locking: 'fine' | 'global';
  seed: number;
}

export function planRun(o: StressRunOptions, info: ScenarioInfo): RunPlan {
  const nSpis = o.spis ?? info.spis ?? 4;
  const controlled = o.mode === 'controlled';
  return {
    vcpus: o.vcpus ?? info.vcpus ?? 2,
    gic: o.gic ?? info.gic ?? 'v3',
    args: {
      iterations: o.iterations ?? info.iterations ?? 100,
      spis: Array.from({ length: nSpis }, (_, i) => 32 + i),
      seed: o.seed >>> 0,
    },
    controlled,
    strategy: controlled ? (o.replay || o.replayOrder ? 'replay' : (o.strategy ?? 'random')) : null,
    nrLr: o.nrLr ?? info.nrLr ?? 4,
    lrPolicy: o.lrPolicy ?? 'mainline',
    locking: o.locking ?? 'fine',
    seed: o.seed >>> 0,
  };
}

/** Controlled mode: the scheduler for the driver, the vCPUs and the irqfd injector (thread-config.ts slots). */
export function planSched(o: StressRunOptions, p: RunPlan): SharedArrayBuffer | null {
  if (!p.controlled) return null;
  return createSchedBuffer({
    seed: p.seed,
    threads: 2 + p.vcpus,
    strategy: o.replayOrder ? STRATEGY_ORDER : o.replay ? STRATEGY_REPLAY : p.strategy === 'pct' ? STRATEGY_PCT : STRATEGY_RANDOM,
    p: o.p,
    depth: o.depth,
    replay: o.replay,
    order: o.replayOrder,
    pollPoints: o.pollPoints,
  });
}

/** Chaos mode with `record`: the buffer the threads take their tickets in. */
export function planRecording(o: StressRunOptions, p: RunPlan): SharedArrayBuffer | null {
  return !p.controlled && o.record ? createChaosRecording() : null;
}
