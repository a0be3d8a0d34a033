/**
 * Chaos mode: real parallel threads, plus seeded perturbation at schedule points, like rr's chaos
 * mode. Each thread's PRNG is derived from the run seed and its thread slot, so a thread's
 * sequence of decisions is reproducible (the interleaving is not: the OS still schedules).
 *
 * At a point, with probability p: usually a short busy delay (widens the window between the two
 * halves of a race: a store and the load that pairs with it), sometimes a real sleep of up to
 * ~200 us (gives the core away, so another thread runs in the middle of our critical section).
 */
import { setSchedHook, type SchedPoint } from '../sync/sched.js';
import { deriveSeed, Prng } from './prng.js';
import { takeTicket } from './chaos-record.js';
import { polling, setPollEndHook } from './poll-scope.js';

export interface ChaosConfig {
  seed: number;
  /** Probability of perturbing a schedule point. Default 0.02. */
  p?: number;
  /** Largest busy delay, in loop iterations (~10 ns each). Default 2000. */
  maxSpin?: number;
  /** Share of perturbations that sleep instead of spinning. Default 0.1. */
  sleepShare?: number;
  /** Record the order in which threads pass their schedule points (chaos-record.ts). */
  record?: SharedArrayBuffer | null;
}

/** Where a recording stops: the VM's stop word (teardown is not part of the run's interleaving). */
export interface ChaosStop {
  vm: Int32Array;
  stopIdx: number;
}

const nap = new Int32Array(new SharedArrayBuffer(4));

export function installChaos(c: ChaosConfig, slot: number, stop?: ChaosStop): Prng {
  const prng = new Prng(deriveSeed(c.seed >>> 0, slot));
  const p = c.p ?? 0.02;
  const maxSpin = c.maxSpin ?? 2000;
  const sleepShare = c.sleepShare ?? 0.1;
  const perturb = (_point: SchedPoint): void => {
    if (!prng.chance(p)) return;
    if (prng.chance(sleepShare)) {
      Atomics.wait(nap, 0, 0, prng.int(200) / 1000);
      return;
    }
    const n = prng.int(maxSpin);
    for (let i = 0; i < n; i++) Atomics.load(nap, 0);
  };
  const rec = c.record ? new Int32Array(c.record) : null;
  if (!rec || !stop) {
    setSchedHook(perturb);
    return prng;
  }
  // The ticket is taken after the delay: the moment the thread goes on past the point. Not
  // inside a poll (poll-scope.ts): its end is recorded instead.
  const ticket = (): void => {
    if (Atomics.load(stop.vm, stop.stopIdx) === 0) takeTicket(rec, slot);
  };
  setSchedHook((point: SchedPoint) => {
    perturb(point);
    if (!polling()) ticket();
  });
  setPollEndHook(ticket);
  return prng;
}
