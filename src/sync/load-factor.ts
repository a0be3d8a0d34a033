/**
 * How oversubscribed the machine is: runnable threads per core (the one-minute load average over
 * the core count), at least 1 and at most MAX_LOAD_FACTOR. Real-time bounds of detectors are
 * stretched by it. Why: each such detector reports "nothing happened for the bound", and on an
 * oversubscribed machine (load 38 on 2 cores: a campaign next to a test suite) the thread that
 * would end the condition (a lock holder, a waker, a vCPU about to see its request) may simply
 * not be on a core for a second. A fixed 1 s bound reported lr-overflow-v2 (chaos, seed 0x63) as
 * stuck on a lock there, on the correct model. A real hang persists however long we wait, so
 * waiting longer loses nothing; the cap keeps a hang's report (at most 10x the bound) ahead of a
 * stress run's own time limit.
 */
import { availableParallelism, loadavg } from 'node:os';

export const MAX_LOAD_FACTOR = 10;

export function machineLoadFactor(): number {
  return Math.min(MAX_LOAD_FACTOR, Math.max(1, loadavg()[0]! / availableParallelism()));
}
