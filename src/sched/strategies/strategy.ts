/**
 * One scheduling strategy per module (as shuttle keeps scheduler/{random,pct,replay}.rs), behind
 * this interface. The controlled scheduler (../controlled.ts) owns the shared state (the SCHED
 * buffer) and the bookkeeping (steps, enabled threads, recording); at each schedule point it fills
 * one Decision and asks its strategy which thread runs next. A strategy decides from the Decision
 * and the SCHED words alone (the seed, the step, its own fields), never from time or thread-local
 * state, so a run is a function of (seed, step) and replays exactly.
 */
import { SCHED } from '../sched-layout.js';

export const STRATEGY_DEFAULT = 0; // continue the current thread; when it blocks, the lowest enabled slot
export const STRATEGY_RANDOM = 1;
export const STRATEGY_PCT = 2;
export const STRATEGY_REPLAY = 3;
export const STRATEGY_ORDER = 4;

/**
 * What is known at a schedule point. One per participating thread, refilled at every decision
 * (no allocation per schedule point).
 */
export class Decision {
  /** The SCHED words. */
  readonly s: Int32Array;
  readonly o = SCHED.off;
  /** This decision's step (1-based). */
  step = 0;
  /** The thread at the point (-1 at the start). */
  cur = -1;
  /** Whether cur could go on (false: it blocks, leaves or yields). */
  curCan = false;
  /** A yield: cur must not be chosen (unless nobody else can run: handled by the caller). */
  excludeCur = false;
  /** The schedule point's kind (sync/sched.ts SchedPoint). */
  kind = 0;
  /** Participants. */
  n = 0;
  /** Enabled candidates (cur excluded on a yield). */
  count = 0;
  /** The lowest enabled candidate. */
  lowest = -1;
  /** The default continuation (what a replay follows where its schedule records nothing). */
  dflt = -1;
  /** The VM is being stopped (its stop word is set): teardown, which no recording covers. */
  stopped = false;
  /** The point is inside a poll (poll-scope.ts): no recording has it. */
  polling = false;

  constructor(s: Int32Array, private readonly isEnabled: (t: number) => boolean) {
    this.s = s;
  }

  /** Thread t may be chosen. */
  candidate(t: number): boolean {
    return this.isEnabled(t) && !(this.excludeCur && t === this.cur);
  }
}

export interface Strategy {
  readonly name: string;
  /** The thread to run next: a candidate, or cur when cur can go on. */
  next(d: Decision): number;
}
