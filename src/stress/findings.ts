import type { ViolationKind } from '../check/violation.js';

/** What a stress run reports: findings of every kind, one shape (the history checkers' kinds included). */
export type FindingKind =
  | ViolationKind
  | 'accounting' | 'invariant' | 'lock-order' | 'deadlock' | 'lost-wakeup' | 'lost-kick' | 'livelock' | 'stall'
  | 'fault' | 'timeout' | 'audit' | 'bounded-delivery' | 'lockset';

export interface Finding {
  kind: FindingKind;
  message: string;
  /** Longer text: the event slice, the lockdep report, the wait-for graph… */
  details?: string;
}
