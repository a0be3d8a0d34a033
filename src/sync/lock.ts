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
import { lockdepAcquire } from './lockdep.js';
import { LockClass } from './lock-classes.js';
import { schedPoint, SchedPoint } from './sched.js';
import type { SyncThread } from './thread.js';
import { statsIndex } from './thread.js';
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

function slowAcquire(t: SyncThread, w: number, cls: LockClass, spinLimit: number): void {
  const m = t.m;
  const timed = t.statsMode === 'timed';
  const t0 = timed ? performance.now() : 0;
  if (t.statsMode !== 'off') t.stats[statsIndex(t, cls, 1)]!++;
  for (let i = 0; i < spinLimit; i++) {
    if (Atomics.load(m, w) === 0 && Atomics.compareExchange(m, w, 0, 1) === 0) {
      if (timed) t.stats[statsIndex(t, cls, 2)]! += (performance.now() - t0) * 1e6;
      return;
    }
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
  if (timed) t.stats[statsIndex(t, cls, 2)]! += (performance.now() - t0) * 1e6;
}

/**
 * Acquire the lock at word `w`, of class `cls`, instance `sub` (vCPU id, INTID, … for reports).
 * `spinLimit`: SPIN_LIMIT_SPINLOCK or SPIN_LIMIT_MUTEX. `nestOk`: the ap_list sort comparator's
 * permission to hold two irq locks.
 */
export function acquire(t: SyncThread, w: number, cls: LockClass, sub: number, spinLimit: number, nestOk = false): void {
  schedPoint(SchedPoint.LockAcquire, w);
  if (t.lockdep) lockdepAcquire(t, cls, sub, nestOk, nrVcpuSlots);
  if (Atomics.compareExchange(t.m, w, 0, 1) !== 0) {
    if (lockWaitHook) {
      // Controlled scheduling: no spinning or parking while holding the baton; the scheduler
      // runs others until the lock is free, then we retry.
      do lockWaitHook(w);
      while (Atomics.compareExchange(t.m, w, 0, 1) !== 0);
    } else slowAcquire(t, w, cls, spinLimit);
  }
  t.m[w + 1] = t.slot + 1;
  pushHeld(t, w, cls, sub);
  schedPoint(SchedPoint.LockAcquired, w);
}

/** Try once; no waiting. Returns whether the lock was taken (kernel mutex_trylock). */
export function tryAcquire(t: SyncThread, w: number, cls: LockClass, sub: number): boolean {
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
  t.m[w + 1] = t.slot + 1;
  pushHeld(t, w, cls, sub);
  return true;
}

export function release(t: SyncThread, w: number, cls: LockClass): void {
  popHeld(t, w, cls);
  t.m[w + 1] = 0;
  // 1 -> 0: nobody parked. Otherwise it was 2: free it and wake one waiter.
  if (Atomics.sub(t.m, w, 1) !== 1) {
    Atomics.store(t.m, w, 0);
    Atomics.notify(t.m, w, 1);
  }
  schedPoint(SchedPoint.LockRelease, w);
}

function pushHeld(t: SyncThread, w: number, cls: LockClass, sub: number): void {
  if (t.statsMode !== 'off') t.stats[statsIndex(t, cls, 0)]!++;
  const d = t.depth;
  if (d < t.heldWord.length) {
    t.heldClass[d] = cls;
    t.heldSub[d] = sub;
    t.heldWord[d] = w;
    if (t.statsMode === 'timed') t.heldSince[d] = performance.now();
  }
  t.depth = d + 1;
}

function popHeld(t: SyncThread, w: number, cls: LockClass): void {
  // Locks are usually released innermost first, but not always (prune releases the irq lock,
  // then both ap_list locks): find the entry and close the gap.
  let i = t.depth - 1;
  while (i >= 0 && t.heldWord[i] !== w) i--;
  if (i < 0) throw new Error(`${t.name} released a lock it does not hold (word ${w}, class ${cls})`);
  if (t.statsMode === 'timed') t.stats[statsIndex(t, cls, 3)]! += (performance.now() - t.heldSince[i]!) * 1e6;
  for (let j = i; j < t.depth - 1; j++) {
    t.heldClass[j] = t.heldClass[j + 1]!;
    t.heldSub[j] = t.heldSub[j + 1]!;
    t.heldWord[j] = t.heldWord[j + 1]!;
    t.heldSince[j] = t.heldSince[j + 1]!;
  }
  t.depth--;
}

/** True if this thread holds the lock at word `w` (owner word check; exact for the caller itself). */
export function holds(t: SyncThread, w: number): boolean {
  return t.m[w + 1] === t.slot + 1;
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
