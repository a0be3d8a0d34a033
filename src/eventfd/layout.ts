/**
 * Shared-memory layout of one eventfd, and the waiting primitives its blocking paths use.
 *
 * One SharedArrayBuffer of EVENTFD_SAB_BYTES holds the whole object, so any thread that receives
 * the buffer holds the same eventfd (like an fd passed with SCM_RIGHTS: one open file description).
 *
 *   u64[0]  count     the eventfd(2) counter, 0 .. 2^64-2. Lock-free: every change is one
 *                     Atomics.exchange or a compareExchange loop, so there is no lock to be
 *                     preempted inside (PLATFORM.md: never a pure spin lock).
 *   u64[1]  token     random 64-bit identity. SAB *objects* are per-thread, so two threads cannot
 *                     compare them; the token identifies the eventfd everywhere (irq bypass pairs
 *                     producer and consumer by it, as the kernel pairs them by the ctx pointer).
 *   i32[4]  flags     EFD_SEMAPHORE | EFD_NONBLOCK as created, plus F_CLOSED once closed.
 *   i32[5]  rdSeq     bumped when readers may proceed (a write, or close); readers park on it.
 *   i32[6]  rdWait    number of readers/pollers registered to park on rdSeq.
 *   i32[7]  wrSeq     bumped when writers may proceed (a read that made room, or close).
 *   i32[8]  wrWait    number of writers registered to park on wrSeq.
 *   i32[9]  magic     EVENTFD_MAGIC, so EventFd.from() rejects a buffer that is not an eventfd.
 *   i32[10] bindOwner who registered a wake-up callback (wakeup.ts): 0 none, -1 being bound, else
 *                     the owner's id (a VM's token). The kernel's eventfd wait queue entry with a
 *                     callback (irqfd_wakeup, virqfd_wakeup), reduced to one entry per eventfd.
 *   i32[11] bindCookie the owner's cookie for that callback (which irqfd / virqfd it is).
 *   i32[12] work      signals the bound callback could not finish in the signalling thread (no
 *                     handler there, or the handler declined: the kernel's -EWOULDBLOCK from
 *                     kvm_arch_set_irq_inatomic, then schedule_work). The owner's worker (the irqfd
 *                     injector) waits on this word, never on the count, so it only ever takes
 *                     counts that were handed to it ("work item steals the fast path's count").
 *   i32[13] added     sum of every value added to the count (initval included), modulo 2^32.
 *   i32[14] taken     sum of every value taken from it, modulo 2^32. Both are bumped after the
 *                     count changed, so once nothing is in flight added - taken = count (mod
 *                     2^32): the quiescence audit (check/audits.ts) finds a lost or invented count
 *                     from that, whatever path lost it.
 *   i32[15] lostWakes waits that ran out with their condition already true and got no wake even
 *                     after a grace period (park(): a waker that published but never woke).
 *                     The quiescence audit reports any.
 */
import { machineLoadFactor } from '../sync/load-factor.js';

export const EVENTFD_SAB_BYTES = 64;

export const U64_COUNT = 0;
export const U64_TOKEN = 1;

export const W_FLAGS = 4;
export const W_RD_SEQ = 5;
export const W_RD_WAIT = 6;
export const W_WR_SEQ = 7;
export const W_WR_WAIT = 8;
export const W_MAGIC = 9;
export const W_BIND_OWNER = 10;
export const W_BIND_COOKIE = 11;
export const W_WORK = 12;
export const W_ADDED = 13;
export const W_TAKEN = 14;
export const W_LOST_WAKES = 15;

/** 'EFD1' */
export const EVENTFD_MAGIC = 0x45464431;

/** Set in W_FLAGS by close(). Above every eventfd(2) flag bit we store. */
export const F_CLOSED = 1 << 30;

/**
 * Parking is done in slices. A correct wake never needs the slice (see park() for the protocol);
 * the slice is a backstop so that a waiter always comes back to look at the closed flag and its
 * deadline, which keeps close() and timeouts bounded even if a notify were ever missed.
 */
export const PARK_SLICE_MS = 50;

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };

/** Atomics.waitAsync exists in Node 20 but is typed only from lib ES2024; we compile for ES2022. */
// Looked up at each call, not captured at load: lockset checking (check/lockset/view.ts) may
// replace the Atomics functions later in the thread's life.
export const waitAsync = (ta: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult => (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult;
}).waitAsync(ta, index, value, timeout);

/**
 * Register as a waiter on (seqW, waitW), re-check, then sleep at most one slice.
 *
 * The lost-wake-up race ("check, then sleep after the waker has already passed"): the waiter
 * increments `waitW`, reads `seq`, and only then re-checks its condition (`ready`); the waker first
 * publishes its change (counter CAS / closed flag), then reads `waitW` and, if non-zero, bumps
 * `seq` and notifies. All are sequentially consistent Atomics, so either the waiter's re-check sees
 * the change, or the waker's load of `waitW` sees the waiter and its `seq` bump comes after the
 * waiter read `seq`, making Atomics.wait return 'not-equal' or be woken by the notify.
 *
 * Returns after one wake, timeout or slice; the caller loops and re-evaluates.
 */
export function park(i32: Int32Array, seqW: number, waitW: number, ready: () => boolean, timeoutMs: number): void {
  Atomics.add(i32, waitW, 1);
  try {
    const s = Atomics.load(i32, seqW);
    if (ready()) return;
    const ms = Math.min(PARK_SLICE_MS, Math.max(0, timeoutMs));
    if (Atomics.wait(i32, seqW, s, ms) === 'timed-out' && ms > 0 && ready()) {
      // Still registered, so a waker that published must still bump seq: wait for that.
      if (Atomics.wait(i32, seqW, s, lostWakeGraceMs()) === 'timed-out' && ready()) Atomics.add(i32, W_LOST_WAKES, 1);
    }
  } finally {
    Atomics.sub(i32, waitW, 1);
  }
}

/**
 * The lost-wake-up detector's grace (ms). A slice that runs out with the condition already true
 * is either a waker caught between its publish and its seq bump (it saw us registered, so the
 * bump is coming: we wait for it, still registered) or a waker that never woke us, which the
 * slice would otherwise hide as 50 ms of latency where the kernel's waiter would sleep for good
 * (the mutant that drops wakeAfterAdd's wake-up survived every campaign for that reason). Only
 * this rare path pays for it; stretched by the machine's load (sync/load-factor.ts).
 */
const LOST_WAKE_GRACE_MS = 1000;
function lostWakeGraceMs(): number {
  return LOST_WAKE_GRACE_MS * machineLoadFactor();
}

/** park() for the event loop: the same protocol with Atomics.waitAsync. */
export async function parkAsync(
  i32: Int32Array, seqW: number, waitW: number, ready: () => boolean, timeoutMs: number,
): Promise<void> {
  Atomics.add(i32, waitW, 1);
  try {
    const s = Atomics.load(i32, seqW);
    if (ready()) return;
    const ms = Math.min(PARK_SLICE_MS, Math.max(0, timeoutMs));
    const r = waitAsync(i32, seqW, s, ms);
    if ((r.async ? await r.value : r.value) === 'timed-out' && ms > 0 && ready()) {
      // As in park(): the grace for a waker between its publish and its seq bump.
      const g = waitAsync(i32, seqW, s, lostWakeGraceMs());
      if ((g.async ? await g.value : g.value) === 'timed-out' && ready()) Atomics.add(i32, W_LOST_WAKES, 1);
    }
  } finally {
    Atomics.sub(i32, waitW, 1);
  }
}

/**
 * Wake everyone parked on (seqW, waitW), but only if someone registered: Atomics.notify with a
 * waiter costs the caller 8-12 µs, a load ~10 ns (PLATFORM.md). Must be called *after* the change
 * that the waiters wait for has been published (see park()).
 *
 * Everyone, not one: a registered waiter may be a poller (waitReadable) that consumes nothing, so
 * waking only one could wake the poller and strand a blocked reader ("stranded consumer" race);
 * semaphore-mode writes of n > 1 also let n readers proceed.
 */
export function wakeAll(i32: Int32Array, seqW: number, waitW: number): void {
  if (Atomics.load(i32, waitW) === 0) return;
  Atomics.add(i32, seqW, 1);
  Atomics.notify(i32, seqW);
}
