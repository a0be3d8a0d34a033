/**
 * Polling, for the recording of a chaos run (chaos-record.ts) and its replay (strategies/order.ts).
 * How often a thread re-checks a condition while it waits for another thread is a matter of
 * timing: a chaos run's driver may poll 3 times where its replay polls 40. The schedule points
 * inside such a poll (its predicate's lock operations) are therefore not recorded; the end of a
 * satisfied wait is, as one point: "here the waiter saw its condition hold".
 *
 * Per thread (module state, like the schedule hook): the depth of polls this thread is in.
 */
let depth = 0;
let onEnd: (() => void) | null = null;

/** Inside a poll: schedule points now are not part of a recorded order. */
export function polling(): boolean {
  return depth > 0;
}

/** Install (or remove) what the end of a satisfied wait does: take a ticket, or pass a replayed point. */
export function setPollEndHook(fn: (() => void) | null): void {
  onEnd = fn;
}

export function pollBegin(): void {
  depth++;
}

/** Leave a poll; `satisfied`: the wait is over (the outermost one then counts as one point). */
export function pollEnd(satisfied: boolean): void {
  depth--;
  if (satisfied && depth === 0) onEnd?.();
}
