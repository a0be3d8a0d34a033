/**
 * The controlled scheduler's shared state: one SharedArrayBuffer per run (SCHED layout, then the
 * record array, then the replay schedule). Only the baton holder writes the decision fields.
 */
import { defineLayout } from '../shm/layout.js';

export const MAX_SCHED_THREADS = 16;
export const MAX_PCT_DEPTH = 16;

export const SCHED = defineLayout('sched', [
  { name: 'turn', doc: 'slot holding the baton; -1 before start; FREE when free-running' },
  { name: 'nThreads', doc: 'participants expected before the start' },
  { name: 'joined', doc: 'participants joined' },
  { name: 'step', doc: 'schedule points so far' },
  { name: 'seed', doc: 'run seed' },
  { name: 'strategy', doc: 'STRATEGY_*' },
  { name: 'pMicro', doc: 'random walk: switch probability x 1e6 at each point' },
  { name: 'pHotMicro', doc: 'random walk: the same at publication/kick/wake points (race windows)' },
  { name: 'pctDepth', doc: 'PCT: bug depth d (d-1 priority change points)' },
  { name: 'pctSteps', doc: 'PCT: expected number of steps k' },
  { name: 'maxSteps', doc: 'budget; exceeding it is reported as a livelock' },
  { name: 'failure', doc: 'FAIL_*' },
  { name: 'failStep', doc: 'step at which the failure was found' },
  { name: 'preemptions', doc: 'switches away from a thread that could have continued' },
  { name: 'lowPrio', doc: 'PCT: next priority to give a demoted thread (decreasing)' },
  { name: 'runLen', doc: 'consecutive steps of the running thread (PCT time slice)' },
  { name: 'skip', doc: 'steps of virtual time skipped while every thread waited for a timer' },
  { name: 'state', words: MAX_SCHED_THREADS, doc: 'per slot: T_*' },
  { name: 'waitWord', words: MAX_SCHED_THREADS, doc: 'per slot: word index it is blocked on' },
  { name: 'waitVal', words: MAX_SCHED_THREADS, doc: 'per slot: blocked while vm[waitWord] === waitVal' },
  { name: 'waitUntil', words: MAX_SCHED_THREADS, doc: 'per slot: a word wait also ends at this clock step (step + skip); -1 none' },
  { name: 'bell', words: MAX_SCHED_THREADS, doc: 'per slot doorbell: 1 when handed the baton' },
  { name: 'parked', words: MAX_SCHED_THREADS, doc: 'per slot: sleeping on its doorbell' },
  { name: 'prio', words: MAX_SCHED_THREADS, doc: 'PCT priorities (higher runs first)' },
  { name: 'changeAt', words: MAX_PCT_DEPTH, doc: 'PCT: steps at which the running thread is demoted' },
  { name: 'recCount', doc: 'recorded switches' },
  { name: 'recCap', doc: 'capacity of the record array' },
  { name: 'replayCount', doc: 'switches in the replay schedule (0: not replaying)' },
  { name: 'replayPos', doc: 'next replay entry' },
  { name: 'diverged', doc: 'replay: 1 + the first step whose recorded decision could not be followed (0: none)' },
  { name: 'orderCount', doc: 'order replay: schedule points in the recorded order (0: none)' },
  { name: 'orderBase', doc: 'order replay: word index of the order (thread per point), then of nextSame (next point of the same thread)' },
  { name: 'cursor', words: MAX_SCHED_THREADS, doc: 'order replay: per slot, index of its next recorded point; -1 none left' },
  { name: 'reordered', doc: 'order replay: points passed while a blocked thread held an earlier one' },
  { name: 'pollPoints', doc: '1: the end of each satisfied wait is a schedule point (order replays, and replays of their schedules)' },
  { name: 'orderLeft', doc: 'order replay: 1 + the first step at which a thread passed a point the recording does not have (0: none)' },
  { name: 'notified', words: MAX_SCHED_THREADS, doc: 'per slot: an Atomics.notify on its wait word arrived since it blocked (word waits are parks: lost wake-up detector)' },
  { name: 'changedBy', words: MAX_SCHED_THREADS, doc: 'per slot: 1 + the thread that ran when its wait word was first seen changed, 0 not yet' },
  { name: 'changedAt', words: MAX_SCHED_THREADS, doc: 'per slot: the step at which its wait word was first seen changed' },
  { name: 'writerPoints', words: MAX_SCHED_THREADS, doc: 'per slot: schedule points its word\'s writer passed since the change, without a notify' },
  { name: 'lostCount', doc: 'lost wake-ups found (each waiter then resumed as its park slice would have ended)' },
  { name: 'lostStep', doc: 'the first lost wake-up: the step at which it was found' },
  { name: 'lostWaiter', doc: 'the first lost wake-up: the waiter slot' },
  { name: 'lostWord', doc: 'the first lost wake-up: the VM word it waited on' },
  { name: 'lostVal', doc: 'the first lost wake-up: the value it waited while the word held' },
  { name: 'lostWriter', doc: 'the first lost wake-up: 1 + the writer slot (0: unknown)' },
  { name: 'lostChangedAt', doc: 'the first lost wake-up: the step at which the word was seen changed' },
]);

/** Words per recorded switch: step, thread, forced. */
export const REC_WORDS = 3;
