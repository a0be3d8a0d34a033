/**
 * Schedule points. Every lock operation, every publication of a shared flag (mode, requests,
 * pending latch, blocked/wake words) and every kick calls `schedPoint`. By default it does
 * nothing; a chaos scheduler injects seeded delays there and a controlled scheduler passes a baton
 * (see DESIGN §6). The hook is per thread: each worker installs its own.
 */
export const enum SchedPoint {
  LockAcquire = 1,
  LockAcquired = 2,
  LockRelease = 3,
  PublishMode = 4,
  PublishRequest = 5,
  PublishLatch = 6,
  Kick = 7,
  Wake = 8,
  Block = 9,
  GuestBoundary = 10,
  /** Inside a lock-free (RCU-style) lookup, between reading a pointer and taking its reference. */
  RcuRead = 11,
}

export type SchedHook = (point: SchedPoint, object: number) => void;

function noop(_p: SchedPoint, _o: number): void {}

/** Live binding: callers read the current hook at each call. */
export let schedPoint: SchedHook = noop;

export function setSchedHook(hook: SchedHook | null): void {
  schedPoint = hook ?? noop;
}
