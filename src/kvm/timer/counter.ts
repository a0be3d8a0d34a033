/**
 * The system counter behind CNTPCT/CNTVCT. CNTFRQ_EL0 is 1 GHz, the frequency ARMv8.6 makes
 * mandatory, so one tick is one nanosecond.
 *
 * Normal and chaos runs: the host's monotonic clock. Every thread of the process reads the same
 * CLOCK_MONOTONIC; each thread calibrates once how its `performance.now()` (allocation-free,
 * ~50 ns) maps onto it (process.hrtime.bigint() allocates), so threads agree to within the
 * calibration window (well under a microsecond). Counter values are doubles: exact integers up
 * to 2^53 ticks (104 days).
 *
 * Controlled runs (DIST.timerClock = 1): the counter is a function of the schedule, NS_PER_STEP
 * ticks per scheduler step plus the time the scheduler skipped while every thread waited for a
 * timer, so a replayed schedule sees exactly the same times. The controlled scheduler installs
 * that clock on each of its threads; a thread of such a VM without it (the VMM thread before the
 * run) reads 0, the time at which the schedule starts.
 */
import type { Host } from '../../vgic/host.js';
import { D } from '../../vgic/host.js';

export const CNTFRQ_HZ = 1_000_000_000;
/** Ticks a controlled scheduler's step stands for (1 us). */
export const NS_PER_STEP = 1000;

function calibrate(): number {
  // Bracket the hrtime read between two performance.now() reads: the error is half the window.
  let best = Infinity;
  let base = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const hr = process.hrtime.bigint();
    const t1 = performance.now();
    if (t1 - t0 < best) {
      best = t1 - t0;
      base = Number(hr) - ((t0 + t1) / 2) * 1e6;
    }
  }
  return base;
}

const realBase = calibrate();

function realCounter(): number {
  return Math.floor(realBase + performance.now() * 1e6);
}

let scheduleClock: (() => number) | null = null;

/** Installed by the controlled scheduler on its threads (null to remove). */
export function setScheduleClock(fn: (() => number) | null): void {
  scheduleClock = fn;
}

/** The physical counter (CNTPCT with no offset), in ticks. */
export function physCounter(h: Host): number {
  if (h.m[D.timerClock] === 0) return realCounter();
  return scheduleClock ? scheduleClock() : 0;
}

/** Milliseconds until the physical counter reaches `deadline` (0 if it has), for a bounded wait. */
export function msUntil(h: Host, deadline: number): number {
  const d = deadline - physCounter(h);
  return d > 0 ? d / 1e6 : 0;
}
