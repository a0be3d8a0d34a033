/**
 * Reading lock_stat: sum the per-thread blocks of the stats buffer (sync/thread.ts) into the
 * /proc/lock_stat columns per class, plus the contention points and, on request, the most
 * contended instances. Runs on the VMM's thread, off every hot path.
 *
 * Reset is a baseline: the counters are only ever written by their own thread, so zeroing them
 * from here could lose a concurrent increment's reset (the owner's read-add-write would put the
 * old value back). Instead a reset remembers the current values and later reads subtract them.
 * Min and max cannot be subtracted: a reset clears them in place, so a sample that straddles
 * the reset may still count towards the next phase's min/max.
 */
import { LOCK_CLASSES, LockClass, NR_LOCK_CLASSES } from './lock-classes.js';
import { lockSiteName } from './lock-sites.js';
import {
  CP_OFF, CP_OVERFLOW_OFF, CP_SLOTS, CP_WIDTH, HIST_OFF, INST_OFF, INST_OVERFLOW_OFF, INST_SLOTS, INST_WIDTH,
  LOCK_STAT_WIDTH, LockStat, statsBaseOf, WAIT_HIST_BUCKETS, type LockStatsMode,
} from './thread.js';

export interface LockContentionPoint {
  /** The code path that waited (LockSite name). */
  waiter: string;
  /** The code path of the thread that had taken the lock last (the holder when it was contended). */
  holder: string;
  contentions: number;
  /** Wait time of those contentions, ns (timed mode; 0 in counting mode). */
  waitNs: number;
}

export interface LockInstanceStats {
  /** The lock's instance: the interrupt record for irq_lock, the vCPU index for ap_list_lock, … */
  instance: number;
  /** Readable name: `SPI 40`, `vCPU 2`, … */
  label: string;
  contentions: number;
  conBounces: number;
  waitNs: number;
}

/** One row of /proc/lock_stat. Times are whole nanoseconds (0 unless lockStats: 'timed'). */
export interface LockClassStats {
  name: string;
  acquisitions: number;
  contentions: number;
  conBounces: number;
  /** Timed mode only (it costs a load on every acquisition); 0 when counting. */
  acqBounces: number;
  /** Total wait time of the contended acquisitions. */
  waitNs: number;
  waitMinNs: number;
  waitMaxNs: number;
  waitAvgNs: number;
  /** Total hold time. */
  holdNs: number;
  holdMinNs: number;
  holdMaxNs: number;
  holdAvgNs: number;
  /** Contention points, most contended first (at most LOCK_STAT_POINTS). */
  points: LockContentionPoint[];
  /** The most contended instances, when asked for (`instances: N`). */
  instances?: LockInstanceStats[];
  /** Timed mode: contended waits per log2 bucket, bucket b = [2^b, 2^(b+1)) ns. */
  waitHistogram?: number[];
}

export interface LockStatsOptions {
  /** Return the statistics since the last reset, then start a new phase. */
  reset?: boolean;
  /** Also report the N most contended instances of each class. */
  instances?: number;
}

export interface LockStatsReport {
  classes: LockClassStats[];
  /** Contentions whose point or instance did not fit a thread's table (counted, not attributed). */
  untrackedPoints: number;
  untrackedInstances: number;
}

/** Contention points reported per class (the kernel keeps 4; we have room for more). */
export const LOCK_STAT_POINTS = 8;

export interface LockStatsSource {
  readonly stats: Float64Array;
  readonly threadSlots: number;
  readonly mode: LockStatsMode;
  /** Readable name of instance `sub` of class `cls`. */
  readonly label: (cls: LockClass, sub: number) => string;
}

const ZERO = new Float64Array(0);

export function readLockStats(src: LockStatsSource, o: LockStatsOptions = {}, baseline: Float64Array | null = null): LockStatsReport {
  const st = src.stats;
  const base = baseline ?? ZERO;
  const d = (i: number): number => st[i]! - (base[i] ?? 0);
  const timed = src.mode === 'timed';
  const classes: LockClassStats[] = LOCK_CLASSES.map((c) => ({
    name: c.name, acquisitions: 0, contentions: 0, conBounces: 0, acqBounces: 0,
    waitNs: 0, waitMinNs: 0, waitMaxNs: 0, waitAvgNs: 0, holdNs: 0, holdMinNs: 0, holdMaxNs: 0, holdAvgNs: 0, points: [],
    ...(timed ? { waitHistogram: new Array<number>(WAIT_HIST_BUCKETS).fill(0) } : {}),
  }));
  const points = new Map<number, LockContentionPoint>();
  const inst = new Map<number, LockInstanceStats>();
  let untrackedPoints = 0;
  let untrackedInstances = 0;
  const minOf = (a: number, plus1: number): number => (plus1 === 0 ? a : a === 0 ? plus1 : Math.min(a, plus1));
  const waitMin = new Array<number>(NR_LOCK_CLASSES).fill(0);
  const holdMin = new Array<number>(NR_LOCK_CLASSES).fill(0);
  for (let s = 0; s < src.threadSlots; s++) {
    const tb = statsBaseOf(s, src.mode);
    for (let c = 0; c < NR_LOCK_CLASSES; c++) {
      const b = tb + c * LOCK_STAT_WIDTH;
      const row = classes[c]!;
      row.acquisitions += d(b + LockStat.Acquisitions);
      row.contentions += d(b + LockStat.Contentions);
      row.conBounces += d(b + LockStat.ConBounces);
      row.acqBounces += d(b + LockStat.AcqBounces);
      row.waitNs += d(b + LockStat.WaitTotal);
      row.holdNs += d(b + LockStat.HoldTotal);
      waitMin[c] = minOf(waitMin[c]!, st[b + LockStat.WaitMinPlus1]!);
      holdMin[c] = minOf(holdMin[c]!, st[b + LockStat.HoldMinPlus1]!);
      row.waitMaxNs = Math.max(row.waitMaxNs, st[b + LockStat.WaitMax]!);
      row.holdMaxNs = Math.max(row.holdMaxNs, st[b + LockStat.HoldMax]!);
      if (row.waitHistogram) for (let k = 0; k < WAIT_HIST_BUCKETS; k++) row.waitHistogram[k]! += d(tb + HIST_OFF + c * WAIT_HIST_BUCKETS + k);
    }
    for (let i = 0; i < CP_SLOTS; i++) {
      const e = tb + CP_OFF + i * CP_WIDTH;
      const k = st[e]!;
      if (k === 0) continue;
      const n = d(e + 1);
      if (n === 0) continue;
      const p = points.get(k) ?? { waiter: lockSiteName(Math.floor((k - 1) / 16) % 32768), holder: lockSiteName(Math.floor((k - 1) / (16 * 32768))), contentions: 0, waitNs: 0 };
      p.contentions += n;
      p.waitNs += d(e + 2);
      points.set(k, p);
    }
    untrackedPoints += d(tb + CP_OVERFLOW_OFF);
    if (o.instances) {
      for (let i = 0; i < INST_SLOTS; i++) {
        const e = tb + INST_OFF + i * INST_WIDTH;
        const k = st[e]!;
        if (k === 0) continue;
        const n = d(e + 1);
        if (n === 0) continue;
        const cls = (k - 1) % 16;
        const sub = Math.floor((k - 1) / 16) - 1;
        const r = inst.get(k) ?? { instance: sub, label: src.label(cls as LockClass, sub), contentions: 0, conBounces: 0, waitNs: 0 };
        r.contentions += n;
        r.conBounces += d(e + 3);
        r.waitNs += d(e + 2);
        inst.set(k, r);
      }
      untrackedInstances += d(tb + INST_OVERFLOW_OFF);
    }
  }
  for (let c = 0; c < NR_LOCK_CLASSES; c++) {
    const row = classes[c]!;
    row.waitMinNs = waitMin[c]! > 0 ? waitMin[c]! - 1 : 0;
    row.holdMinNs = holdMin[c]! > 0 ? holdMin[c]! - 1 : 0;
    row.waitAvgNs = row.contentions > 0 && timed ? Math.round(row.waitNs / row.contentions) : 0;
    row.holdAvgNs = row.acquisitions > 0 && timed ? Math.round(row.holdNs / row.acquisitions) : 0;
  }
  const byCount = <T extends { contentions: number }>(a: T, b: T): number => b.contentions - a.contentions;
  for (const [k, p] of points) classes[(k - 1) % 16]!.points.push(p);
  for (const row of classes) row.points = row.points.sort(byCount).slice(0, LOCK_STAT_POINTS);
  if (o.instances) {
    for (const row of classes) row.instances = [];
    for (const [k, r] of inst) classes[(k - 1) % 16]!.instances!.push(r);
    for (const row of classes) row.instances = row.instances!.sort(byCount).slice(0, o.instances);
  }
  return { classes, untrackedPoints, untrackedInstances };
}

/** Start a new phase: the baseline for later reads, and min/max cleared in place. */
export function resetLockStats(src: LockStatsSource): Float64Array {
  const st = src.stats;
  for (let s = 0; s < src.threadSlots; s++) {
    const tb = statsBaseOf(s, src.mode);
    for (let c = 0; c < NR_LOCK_CLASSES; c++) {
      const b = tb + c * LOCK_STAT_WIDTH;
      st[b + LockStat.WaitMinPlus1] = 0;
      st[b + LockStat.WaitMax] = 0;
      st[b + LockStat.HoldMinPlus1] = 0;
      st[b + LockStat.HoldMax] = 0;
    }
  }
  return st.slice();
}
