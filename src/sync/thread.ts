import { NR_LOCK_CLASSES } from './lock-classes.js';

/**
 * Lock statistics (the kernel's lock_stat, kernel/locking/lockdep.c) per thread slot, in the
 * stats SharedArrayBuffer (Float64). Each thread writes only its own block, so no counter is
 * shared between threads; readers (vm.lockStats) sum the blocks. Times are whole nanoseconds.
 *
 * Per class, LOCK_STAT_WIDTH fields (LockStat). Min fields hold min + 1, so that the zeroed
 * buffer means "no sample yet" without an initialisation pass that every thread would have to
 * wait for.
 */
export const enum LockStat {
  Acquisitions = 0,
  Contentions = 1,
  /** Contentions where the lock was last taken by another thread (lock_contended's bounce). */
  ConBounces = 2,
  /** Acquisitions where the lock was last taken by another thread (lock_acquired's bounce; timed mode only). */
  AcqBounces = 3,
  WaitTotal = 4,
  WaitMinPlus1 = 5,
  WaitMax = 6,
  HoldTotal = 7,
  HoldMinPlus1 = 8,
  HoldMax = 9,
}
export const LOCK_STAT_WIDTH = 10;

/**
 * Contention points: an open-addressed table per thread keyed by (class, waiter site, holder site),
 * filled on the contended path only. Entry: [key + 1 (0 = empty), contentions, wait ns]. When it
 * is full a contention is counted in the overflow word instead (reports say so).
 */
export const CP_SLOTS = 64;
export const CP_WIDTH = 3;
/** Per-instance contention (which SPI's irq_lock): [key + 1, contentions, wait ns, con-bounces]. */
export const INST_SLOTS = 64;
export const INST_WIDTH = 4;
/** Timed mode: wait-time histogram per class, bucket b = [2^b, 2^(b+1)) ns (b = 0 also holds 0-1 ns). */
export const WAIT_HIST_BUCKETS = 32;
/** Timed mode: events recorded while the trace window is open (a swimlane), per thread. */
export const TRACE_EVENTS = 4096;
export const enum TraceKind {
  Contend = 0,
  Acquired = 1,
  Released = 2,
}

/** Words at the start of the stats buffer, before slot 0's block. */
export const STATS_HEADER = 8;
/** Header word: the main thread's performance.timeOrigin, the clock every thread's trace uses. */
export const STATS_CLOCK_BASE = 0;
/** Header word: non-zero while the trace window is open. */
export const STATS_TRACE_ON = 1;

export type LockStatsMode = 'off' | 'counts' | 'timed';

/** Offsets within one thread's block. */
export const CP_OFF = NR_LOCK_CLASSES * LOCK_STAT_WIDTH;
export const CP_OVERFLOW_OFF = CP_OFF + CP_SLOTS * CP_WIDTH;
export const INST_OFF = CP_OVERFLOW_OFF + 1;
export const INST_OVERFLOW_OFF = INST_OFF + INST_SLOTS * INST_WIDTH;
export const HIST_OFF = INST_OVERFLOW_OFF + 1;
/** Trace block: [events recorded] then TRACE_EVENTS x [time ms on the shared clock, code]. */
export const TRACE_OFF = HIST_OFF + NR_LOCK_CLASSES * WAIT_HIST_BUCKETS;

/**
 * What one thread needs to take locks: the shared words, its own identity, its statistics slot,
 * and (in checking mode) its held-lock stack. One per thread; never shared.
 */
export interface SyncThread {
  readonly m: Int32Array;
  /** 0 = main thread, 1 + vcpuId for vCPU threads, higher for device/injector threads. */
  readonly slot: number;
  readonly name: string;
  /** Float64 statistics view and the base index of this thread's block. */
  readonly stats: Float64Array;
  readonly statsBase: number;
  readonly statsMode: LockStatsMode;
  /** Word the VM sets at teardown; parked lock waiters give up when it is non-zero. */
  readonly stopWord: number;
  /** Word (per thread slot) holding the lock word index this thread is parked on, for the watchdog. */
  readonly waitingOnWord: number;
  /** Base of the NR_CLASSES x NR_CLASSES matrix of observed lock-order edges (lockdep). */
  readonly edgeBase: number;
  lockdep: boolean;
  /** Held-lock stack (class, instance, word), used by lockdep and by timed statistics. */
  readonly heldClass: Int32Array;
  readonly heldSub: Int32Array;
  readonly heldWord: Int32Array;
  readonly heldSince: Float64Array;
  depth: number;
  /** `locking: 'global'`: recursion depth on the distributor lock (nested acquisitions elided). */
  globalDepth: number;
  /** performance.now() + clockOffset is the VM's shared clock (each thread has its own timeOrigin). */
  readonly clockOffset: number;
}

export const MAX_HELD = 48;

export function statsIndex(t: SyncThread, cls: number, field: number): number {
  return t.statsBase + cls * LOCK_STAT_WIDTH + field;
}

/** Doubles per thread block: the histogram and trace ring exist only in timed mode. */
export function threadStatsSize(mode: LockStatsMode = 'counts'): number {
  return mode === 'timed' ? TRACE_OFF + 1 + 2 * TRACE_EVENTS : HIST_OFF;
}

/** Index of slot `slot`'s block in the stats buffer. */
export function statsBaseOf(slot: number, mode: LockStatsMode): number {
  return STATS_HEADER + slot * threadStatsSize(mode);
}

/** Doubles in a VM's stats buffer. */
export function statsBufferSize(threadSlots: number, mode: LockStatsMode = 'counts'): number {
  return STATS_HEADER + threadSlots * threadStatsSize(mode);
}

export function makeSyncThread(init: {
  m: Int32Array;
  stats: Float64Array;
  slot: number;
  name: string;
  statsBase: number;
  statsMode: LockStatsMode;
  stopWord: number;
  waitingOnWord: number;
  edgeBase: number;
  lockdep: boolean;
}): SyncThread {
  const base = init.stats[STATS_CLOCK_BASE] || performance.timeOrigin;
  return {
    ...init,
    heldClass: new Int32Array(MAX_HELD),
    heldSub: new Int32Array(MAX_HELD),
    heldWord: new Int32Array(MAX_HELD),
    heldSince: new Float64Array(MAX_HELD),
    depth: 0,
    globalDepth: 0,
    clockOffset: performance.timeOrigin - base,
  };
}
