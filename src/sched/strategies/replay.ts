/**
 * Replay: follow a recorded schedule. The recording holds every decision that differed from the
 * default continuation, so elsewhere the default is followed. A recorded decision that cannot be
 * followed (its thread cannot run here) marks the run diverged (SCHED.diverged): this run is no
 * longer the recorded one (another build, a changed scenario, an edited file), and the report says
 * so rather than "no violation".
 */
import { REC_WORDS, SCHED } from '../sched-layout.js';
import type { Decision, Strategy } from './strategy.js';

/** Index of the replay schedule's first word in the SCHED buffer. */
export function replayBase(s: Int32Array): number {
  return SCHED.size + s[SCHED.off.recCap]! * REC_WORDS;
}

export const replay: Strategy = {
  name: 'replay',
  next(d: Decision): number {
    const s = d.s;
    const o = d.o;
    const rb = replayBase(s);
    const pos = s[o.replayPos]!;
    if (pos >= s[o.replayCount]! || s[rb + pos * REC_WORDS] !== d.step) return d.dflt;
    s[o.replayPos] = pos + 1;
    const want = s[rb + pos * REC_WORDS + 1]!;
    const can = want >= 0 && want < d.n && d.candidate(want);
    if (!can && s[o.diverged] === 0) s[o.diverged] = d.step + 1;
    return can ? want : d.dflt;
  },
};
