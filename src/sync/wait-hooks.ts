/**
 * Hooks a scheduler installs to take over blocking. In plain and chaos runs they are null and
 * the code spins/parks as usual. A controlled scheduler (one thread runs at a time) must never let
 * a thread spin or sleep while holding the baton: it turns each wait into "I am blocked on this
 * condition, run someone else", and decides who runs next.
 */

/** Contended lock at word `w`: return once it is this thread's turn and the word looks free. */
export let lockWaitHook: ((w: number) => void) | null = null;

/**
 * Wait while m[idx] === val (WFI doorbell, pause word), or until the physical counter reaches
 * `deadline` (a WFI bounded by a timer; Infinity: no bound). Returns false if not handled.
 */
export let wordWaitHook: ((idx: number, val: number, deadline?: number) => boolean) | null = null;

/**
 * A busy-wait loop iteration (spin on another thread's progress): let others run. Returns false
 * when no other thread can run, so the condition waited for cannot change.
 */
export let yieldHook: (() => boolean) | null = null;

/** The controlled schedule's current step (for detectors' reports), or null outside one. */
export let scheduleStepHook: (() => number) | null = null;

export function setWaitHooks(h: {
  lockWait: ((w: number) => void) | null;
  wordWait: ((idx: number, val: number, deadline?: number) => boolean) | null;
  yield: (() => boolean) | null;
  step?: (() => number) | null;
}): void {
  lockWaitHook = h.lockWait;
  wordWaitHook = h.wordWait;
  yieldHook = h.yield;
  scheduleStepHook = h.step ?? null;
}
