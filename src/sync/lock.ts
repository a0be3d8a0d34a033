/**
 * SpinLock (raw_spinlock analogue) and Mutex (sleeping lock) on SharedArrayBuffer words.
 *
 * A lock occupies two Int32 words: [state, owner].
 *   state: 0 = free, 1 = held, 2 = held and somebody may be parked on the word (futex protocol).
 *   owner: thread slot + 1 of the holder (0 when free); written only by the holder, read by the
 *          watchdog and by reports.
 *
 * Why not a pure spin lock: the kernel's raw spinlock can spin because its holder cannot be
 * preempted. Ours can: there are usually more threads than the machine's 2 cores, and a spinner can
 * wait on a holder the OS has descheduled (PLATFORM.md: 8 spinning threads on 2 cores collapse 3-6x,
 * single acquisitions stall up to 200 ms). So both kinds spin briefly and then park on the word
 * with Atomics.wait; they differ only in how long they spin first.
 *
 * Every park is bounded: the waiter wakes every PARK_SLICE_MS to look at the VM's stop word, so a
 * teardown (or a watchdog that found a deadlock) always gets the thread back.
 */
import { LockNotHeldError, lockdepAcquire } from './lockdep.js';
import { LockClass } from './lock-classes.js';
import { schedPoint, SchedPoint } from './sched.js';
import type { SyncThread } from './thread.js';
import { CP_OFF, CP_OVERFLOW_OFF, CP_SLOTS, CP_WIDTH, HIST_OFF, INST_OFF, INST_OVERFLOW_OFF, INST_SLOTS, INST_WIDTH, LOCK_STAT_WIDTH, LockStat, STATS_TRACE_ON, TRACE_EVENTS, TRACE_OFF, TraceKind, WAIT_HIST_BUCKETS } from './thread.js';
import { lockWaitHook } from './wait-hooks.js';

export const SPIN_LIMIT_SPINLOCK = 100;
export const SPIN_LIMIT_MUTEX = 20;
const PARK_SLICE_MS = 20;

/** Thrown out of a parked lock wait when the VM is being torn down. */
export class TeardownError extends Error {
  constructor(what: string) {
    super(`VM torn down while ${what}`);
    this.name = 'TeardownError';
  }
}

/** Number of vCPU thread slots, so lockdep reports can name threads. Set once per VM/thread. */
let nrVcpuSlots = 0;
export function setVcpuSlotCount(n: number): void {
  nrVcpuSlots = n;
}

/**
 * The owner word (lock word + 1): bits 0-7 the holder's slot + 1 (0 when free: the watchdog and
 * holds() read this), bits 8-15 the slot + 1 of the thread that took the lock last and bits 16-30
 * its call site (LockSite). The last two survive the release: they are lockdep's lock->cpu and
 * lock->ip, which lock_stat compares against to count bounces and to name the contending point.
 * Only the holder writes the word, so plain stores suffice.
 */
export const OWNER_HOLDER_MASK = 0xff;
const OWNER_LAST_SHIFT = 8;
const OWNER_SITE_SHIFT = 16;

/** Slot of the thread holding the lock at `w`, or -1 when it is free. */
export function lockHolderSlot(m: Int32Array, w: number): number {
  return (Atomics.load(m, w + 1) & OWNER_HOLDER_MASK) - 1;
}

/** The clock of timed statistics (ms). Tests install a deterministic one (setLockClock). */
let clock: () => number = () => performance.now();
/** @internal tests: replace the timed-mode clock (null restores performance.now). */
export function setLockClock(fn: (() => number) | null): void {
  clock = fn ?? (() => performance.now());
}

function slowAcquire(t: SyncThread, w: number, spinLimit: number): void {
  const m = t.m;
  for (let i = 0; i < spinLimit; i++) {
    if (Atomics.load(m, w) === 0 && Atomics.compareExchange(m, w, 0, 1) === 0) return;
  }
  // Park: mark the word "contended" (2) and sleep until a release notifies us.
  let c = Atomics.exchange(m, w, 2);
  if (c !== 0) Atomics.store(m, t.waitingOnWord, w + 1);
  while (c !== 0) {
    Atomics.wait(m, w, 2, PARK_SLICE_MS);
    c = Atomics.exchange(m, w, 2);
    if (c !== 0 && Atomics.load(m, t.stopWord) !== 0) {
      Atomics.store(m, t.waitingOnWord, 0);
      throw new TeardownError(`${t.name} waited for a lock`);
    }
  }
  Atomics.store(m, t.waitingOnWord, 0);
}

/**
 * lock_contended: the first try failed. Count the contention, its bounce (the lock was last taken
 * by another thread), its point (our site waiting on the last taker's site) and its instance.
 * Only on the contended path, so the counting mode's fast path stays one increment.
 */
function contended(t: SyncThread, o: number, cls: LockClass, sub: number, site: number): number {
  const st = t.stats;
  const last = (o >>> OWNER_LAST_SHIFT) & OWNER_HOLDER_MASK;
  const bounce = last !== 0 && last !== t.slot + 1 ? 1 : 0;
  const b = t.statsBase + cls * LOCK_STAT_WIDTH;
  st[b + LockStat.Contentions]!++;
  st[b + LockStat.ConBounces]! += bounce;
  const cp = cpEntry(t, cls + 16 * (site + 32768 * (o >>> OWNER_SITE_SHIFT)));
  if (cp >= 0) st[cp + 1]!++;
  else st[t.statsBase + CP_OVERFLOW_OFF]!++;
  const inst = instEntry(t, cls + 16 * (sub + 1));
  if (inst >= 0) {
    st[inst + 1]!++;
    st[inst + 3]! += bounce;
  } else st[t.statsBase + INST_OVERFLOW_OFF]!++;
  if (t.statsMode !== 'timed') return 0;
  const now = clock();
  if (st[STATS_TRACE_ON] !== 0) trace(t, TraceKind.Contend, cls, sub, now);
  return now;
}

/** lock_acquired after a contention (timed mode): the wait, in whole ns, everywhere it is kept. */
function waited(t: SyncThread, cls: LockClass, sub: number, site: number, ownerBefore: number, t0: number): void {
  const st = t.stats;
  const ns = Math.round((clock() - t0) * 1e6);
  lockTimeInc(st, t.statsBase + cls * LOCK_STAT_WIDTH + LockStat.WaitTotal, ns);
  const bucket = ns >= 0x80000000 ? WAIT_HIST_BUCKETS - 1 : Math.max(0, 31 - Math.clz32(ns));
  st[t.statsBase + HIST_OFF + cls * WAIT_HIST_BUCKETS + bucket]!++;
  // The point and instance were found at contention time (their entries exist or overflowed).
  const cp = cpEntry(t, cls + 16 * (site + 32768 * (ownerBefore >>> OWNER_SITE_SHIFT)));
  if (cp >= 0) st[cp + 2]! += ns;
  const inst = instEntry(t, cls + 16 * (sub + 1));
  if (inst >= 0) st[inst + 2]! += ns;
}

/** Open-addressed lookup-or-insert in this thread's table; -1 when full. Contended path only. */
function tableEntry(t: SyncThread, off: number, slots: number, width: number, key: number): number {
  const st = t.stats;
  let i = (Math.imul(key | 0, 0x9e3779b1) ^ Math.floor(key / 0x100000000)) & (slots - 1);
  for (let n = 0; n < slots; n++, i = (i + 1) & (slots - 1)) {
    const e = t.statsBase + off + i * width;
    const k = st[e]!;
    if (k === key + 1) return e;
    if (k === 0) {
      st[e] = key + 1;
      return e;
    }
  }
  return -1;
}
function cpEntry(t: SyncThread, key: number): number {
  return tableEntry(t, CP_OFF, CP_SLOTS, CP_WIDTH, key);
}
function instEntry(t: SyncThread, key: number): number {
  return tableEntry(t, INST_OFF, INST_SLOTS, INST_WIDTH, key);
}

/** Append to this thread's trace ring while the window is open (timed mode); full: drop. */
function trace(t: SyncThread, kind: TraceKind, cls: LockClass, sub: number, now: number): void {
  const st = t.stats;
  const b = t.statsBase + TRACE_OFF;
  const n = st[b]!;
  if (n >= TRACE_EVENTS) return;
  st[b + 1 + 2 * n] = now + t.clockOffset;
  st[b + 2 + 2 * n] = kind + 4 * (cls + 16 * (sub + 1));
  st[b] = n + 1;
}

/**
 * Acquire the lock at word `w`, of class `cls`, instance `sub` (vCPU id, INTID, … for reports).
 * `spinLimit`: SPIN_LIMIT_SPINLOCK or SPIN_LIMIT_MUTEX. `nestOk`: the ap_list sort comparator's
 * permission to hold two irq locks. `site`: the caller's LockSite, for contention points.
 */
export function acquire(t: SyncThread, w: number, cls: LockClass, sub: number, spinLimit: number, nestOk = false, site = 0): void {
  schedPoint(SchedPoint.LockAcquire, w);
  if (t.lockdep) lockdepAcquire(t, cls, sub, nestOk, nrVcpuSlots);
  if (Atomics.compareExchange(t.m, w, 0, 1) !== 0) acquireContended(t, w, cls, sub, spinLimit, site);
  took(t, w, cls, sub, site);
  schedPoint(SchedPoint.LockAcquired, w);
}

/** The first try failed: count the contention, wait, time the wait (out of line: the fast path stays small). */
function acquireContended(t: SyncThread, w: number, cls: LockClass, sub: number, spinLimit: number, site: number): void {
  const ownerBefore = t.m[w + 1]!;
  const t0 = t.statsMode === 'off' ? 0 : contended(t, ownerBefore, cls, sub, site);
  if (lockWaitHook) {
    // Controlled scheduling: no spinning or parking while holding the baton; the scheduler
    // runs others until the lock is free, then we retry.
    do lockWaitHook(w);
    while (Atomics.compareExchange(t.m, w, 0, 1) !== 0);
  } else slowAcquire(t, w, spinLimit);
  if (t.statsMode === 'timed') waited(t, cls, sub, site, ownerBefore, t0);
}

/** Try once; no waiting. Returns whether the lock was taken (kernel mutex_trylock). */
export function tryAcquire(t: SyncThread, w: number, cls: LockClass, sub: number, site = 0): boolean {
  schedPoint(SchedPoint.LockAcquire, w);
  if (Atomics.compareExchange(t.m, w, 0, 1) !== 0) return false;
  // A successful trylock cannot deadlock, but it still creates an ordering edge: check it.
  if (t.lockdep) {
    try {
      lockdepAcquire(t, cls, sub, false, nrVcpuSlots);
    } catch (e) {
      Atomics.store(t.m, w, 0);
      throw e;
    }
  }
  took(t, w, cls, sub, site);
  return true;
}

/**
 * lock_acquired: claim the owner word, count the acquisition, push the held entry. The
 * acquisition bounce needs the owner word's previous value, one more load on every acquisition
 * (measured: ~2.7 ns on a ~30 ns uncontended pair), so only timed mode counts it; counting mode
 * stays what it was (one increment), and counts bounces on the contended path only.
 */
function took(t: SyncThread, w: number, cls: LockClass, sub: number, site: number): void {
  const me = t.slot + 1;
  const timed = t.statsMode === 'timed';
  if (timed) acqBounce(t, w, cls, me);
  t.m[w + 1] = (site << OWNER_SITE_SHIFT) | (me << OWNER_LAST_SHIFT) | me;
  if (t.statsMode !== 'off') t.stats[t.statsBase + cls * LOCK_STAT_WIDTH + LockStat.Acquisitions]!++;
  const d = t.depth;
  if (d < t.heldWord.length) {
    t.heldClass[d] = cls;
    t.heldSub[d] = sub;
    t.heldWord[d] = w;
    if (timed) holdStarts(t, d, cls, sub);
  }
  t.depth = d + 1;
}

/** Timed mode: the lock was last taken by another thread (lockdep's lock->cpu != this CPU). */
function acqBounce(t: SyncThread, w: number, cls: LockClass, me: number): void {
  const last = (t.m[w + 1]! >>> OWNER_LAST_SHIFT) & OWNER_HOLDER_MASK;
  if (last !== me && last !== 0) t.stats[t.statsBase + cls * LOCK_STAT_WIDTH + LockStat.AcqBounces]!++;
}

function holdStarts(t: SyncThread, d: number, cls: LockClass, sub: number): void {
  const now = clock();
  t.heldSince[d] = now;
  if (t.stats[STATS_TRACE_ON] !== 0) trace(t, TraceKind.Acquired, cls, sub, now);
}

export function release(t: SyncThread, w: number, cls: LockClass): void {
  popHeld(t, w, cls);
  // Free for the watchdog; the last taker and its site stay for the next acquirer's statistics.
  t.m[w + 1] = t.m[w + 1]! & ~OWNER_HOLDER_MASK;
  // 1 -> 0: nobody parked. Otherwise it was 2: free it and wake one waiter.
  if (Atomics.sub(t.m, w, 1) !== 1) {
    Atomics.store(t.m, w, 0);
    Atomics.notify(t.m, w, 1);
  }
  schedPoint(SchedPoint.LockRelease, w);
}

function popHeld(t: SyncThread, w: number, cls: LockClass): void {
  // Locks are usually released innermost first, but not always (prune releases the irq lock,
  // then both ap_list locks): find the entry and close the gap.
  let i = t.depth - 1;
  while (i >= 0 && t.heldWord[i] !== w) i--;
  if (i < 0) throw new Error(`${t.name} released a lock it does not hold (word ${w}, class ${cls})`);
  if (t.statsMode === 'timed') held(t, cls, t.heldSub[i]!, t.heldSince[i]!);
  for (let j = i; j < t.depth - 1; j++) {
    t.heldClass[j] = t.heldClass[j + 1]!;
    t.heldSub[j] = t.heldSub[j + 1]!;
    t.heldWord[j] = t.heldWord[j + 1]!;
    t.heldSince[j] = t.heldSince[j + 1]!;
  }
  t.depth--;
}

/** lock_release's hold time (timed mode). */
function held(t: SyncThread, cls: LockClass, sub: number, since: number): void {
  const now = clock();
  lockTimeInc(t.stats, t.statsBase + cls * LOCK_STAT_WIDTH + LockStat.HoldTotal, Math.round((now - since) * 1e6));
  if (t.stats[STATS_TRACE_ON] !== 0) trace(t, TraceKind.Released, cls, sub, now);
}

/**
 * lockdep's lock_time_inc: one sample into [total, min + 1, max] at `i` (LockStat's WaitTotal
 * and HoldTotal are each followed by their min and max).
 */
function lockTimeInc(st: Float64Array, i: number, ns: number): void {
  st[i]! += ns;
  const min = st[i + 1]!;
  if (min === 0 || ns + 1 < min) st[i + 1] = ns + 1;
  if (ns > st[i + 2]!) st[i + 2] = ns;
}

/** True if this thread holds the lock at word `w` (owner word check; exact for the caller itself). */
export function holds(t: SyncThread, w: number): boolean {
  return (t.m[w + 1]! & OWNER_HOLDER_MASK) === t.slot + 1;
}

/**
 * lockdep_assert_held: throw LockNotHeldError unless this thread holds the lock at `w` (class
 * `cls`, instance `sub`, for the report). Only in checking mode (`on`: lockdep or lockset
 * checking), as the kernel's assertion compiles away without CONFIG_LOCKDEP.
 */
export function assertHeld(t: SyncThread, on: boolean, w: number, cls: LockClass, sub: number, where: string): void {
  if (on && !holds(t, w)) throw new LockNotHeldError(t, cls, sub, where);
}

/**
 * Release every lock this thread still holds (a guest or host path threw mid-way). Used only on
 * the fault path so other threads are not left spinning on a dead holder.
 */
export function releaseAll(t: SyncThread): void {
  while (t.depth > 0) {
    const w = t.heldWord[t.depth - 1]!;
    release(t, w, t.heldClass[t.depth - 1]! as LockClass);
  }
  t.globalDepth = 0;
}
