import { NR_LOCK_CLASSES } from './lock-classes.js';

/** Lock statistics per thread slot and class: acquisitions, contentions, wait ns, hold ns. */
export const LOCK_STAT_FIELDS = ['acquisitions', 'contentions', 'waitNs', 'holdNs'] as const;
export const LOCK_STAT_WIDTH = LOCK_STAT_FIELDS.length;

export type LockStatsMode = 'off' | 'counts' | 'timed';

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
}

export const MAX_HELD = 48;

export function statsIndex(t: SyncThread, cls: number, field: number): number {
  return t.statsBase + cls * LOCK_STAT_WIDTH + field;
}

export function threadStatsSize(): number {
  return NR_LOCK_CLASSES * LOCK_STAT_WIDTH;
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
  return {
    ...init,
    heldClass: new Int32Array(MAX_HELD),
    heldSub: new Int32Array(MAX_HELD),
    heldWord: new Int32Array(MAX_HELD),
    heldSince: new Float64Array(MAX_HELD),
    depth: 0,
    globalDepth: 0,
  };
}
