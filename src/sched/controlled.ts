/**
 * Controlled scheduling: exactly one participating thread runs at a time; the baton passes only
 * at schedule points (lock operations, flag publications, kicks, guest instruction boundaries)
 * and whenever the running thread blocks. Which thread runs next is decided by a strategy
 * (strategies/: random walk, PCT, replay, order replay, default) from (seed, step) alone, so the
 * same seed and scenario give the same schedule, hence the same history. Every switch is
 * recorded; a recorded schedule can be replayed exactly, and a schedule can be given as a short
 * list of preemptions (the minimiser's output).
 *
 * Shared state: one SharedArrayBuffer (SCHED layout). Only the baton holder writes the decision
 * fields, so they need no lock; the baton itself is `turn`, and each thread sleeps on its own
 * doorbell word so a hand-off wakes exactly one thread (spin first: a hand-off to a spinning
 * thread costs ~0.2 us, to a parked one 10-35 us).
 *
 * A thread is *enabled* when it is runnable, or blocked on a lock whose word is now free, or
 * blocked on a word (WFI doorbell, pause, signal, injector work) that changed *and* was notified.
 * No enabled thread while some are blocked is a deadlock: the run fails with that finding and
 * switches to free-running so every thread can be stopped.
 *
 * Lost wake-ups. Every word wait stands for a park in Atomics.wait (the plain run's code parks
 * there, with a 50 ms slice as its only safety net, after publishing whatever "parked" flag its
 * wakers look at). A writer that changes the word but forgets the notify costs a plain run one
 * slice, and nothing ever reports it. Here the notify is what wakes the waiter: this thread's
 * Atomics.notify is wrapped (install) and marks the waiters of that word whose word has changed.
 * A word seen changed while its waiter is not notified names its writer (the baton holder: nobody
 * else ran since the last point); if that writer passes LOST_NOTIFY_POINTS more schedule points
 * without notifying, or nobody else can run, that is a lost wake-up, found at that step: it is
 * recorded (the word, the waiter, the writer; readLostWakeup) and the waiter resumes, as a plain
 * run's would when its slice ends. Going on, rather than failing the run there, keeps the run's
 * end deterministic, so the report replays. The writer is allowed a few points because every
 * notifier stores first and notifies after a schedule point or two (kick: store, Wake point,
 * notify). While a thread outside the schedule runs (a VFIO-like device thread), a changed word
 * wakes its waiter as it did before and is not judged: that thread's stores and notifies are not
 * seen, nor is it scheduled, so no step count can be fair to it.
 */
import { SchedPoint, setSchedHook } from '../sync/sched.js';
import { polling, setPollEndHook } from './poll-scope.js';
import { setWaitHooks } from '../sync/wait-hooks.js';
import { TeardownError } from '../sync/lock.js';
import { NS_PER_STEP, setScheduleClock } from '../kvm/timer/counter.js';
import { MAX_SCHED_THREADS, REC_WORDS, SCHED } from './sched-layout.js';
import { Decision, randomWalk, STRATEGIES, STRATEGY_ORDER, STRATEGY_REPLAY } from './strategies/index.js';
import { initOrder, orderWords } from './strategies/order.js';
import { initPct } from './strategies/pct.js';
import { replayBase } from './strategies/replay.js';
import { unchecked } from '../check/lockset/view.js';

export { MAX_PCT_DEPTH, MAX_SCHED_THREADS, SCHED } from './sched-layout.js';
export { STRATEGY_DEFAULT, STRATEGY_ORDER, STRATEGY_PCT, STRATEGY_RANDOM, STRATEGY_REPLAY } from './strategies/index.js';

export const FREE = -2;
export const FAIL_NONE = 0;
export const FAIL_DEADLOCK = 1;
export const FAIL_BUDGET = 2;

// 0: not (yet) a participant
const T_RUNNABLE = 1;
const T_LOCK = 2;
const T_WORD = 3;
const T_EXITED = 4;

/** A switch: at `step`, run `to`; `forced` when the previous thread could not continue. */
export interface Switch {
  step: number;
  to: number;
  forced: boolean;
}


export interface SchedConfig {
  seed: number;
  threads: number;
  strategy: number;
  /** Random walk switch probability per point. Default 0.05. */
  p?: number;
  /**
   * Random walk switch probability at the points that open race windows: flag publications
   * (mode, requests, latch), kicks, wakes, blocking. Default 0.5.
   */
  pHot?: number;
  /** PCT depth. Default 3. */
  depth?: number;
  /** PCT expected steps. Default 20000. */
  pctSteps?: number;
  maxSteps?: number;
  /** Replay these switches (strategy REPLAY). */
  replay?: readonly Switch[];
  /** Replay this order of schedule points, the thread slot of each (strategy ORDER). */
  order?: readonly number[];
  /**
   * The end of each satisfied wait is a schedule point (poll-scope.ts). Always so for an order
   * replay, and for the replay of a schedule an order replay made (its steps count those points).
   */
  pollPoints?: boolean;
  recordCapacity?: number;
}

/** Allocate and initialise the scheduler's shared buffer. */
export function createSchedBuffer(c: SchedConfig): SharedArrayBuffer {
  if (c.threads > MAX_SCHED_THREADS) throw new Error(`controlled mode supports at most ${MAX_SCHED_THREADS} threads`);
  const cap = c.recordCapacity ?? 1 << 18;
  const replay = c.replay ?? [];
  const order = c.order ?? [];
  const orderAt = SCHED.size + cap * REC_WORDS + replay.length * REC_WORDS;
  const sab = new SharedArrayBuffer((orderAt + orderWords(order.length)) * 4);
  const s = new Int32Array(sab);
  const o = SCHED.off;
  s[o.turn] = -1;
  s[o.nThreads] = c.threads;
  s[o.seed] = c.seed | 0;
  s[o.strategy] = c.strategy;
  s[o.pMicro] = Math.round((c.p ?? 0.05) * 1e6);
  s[o.pHotMicro] = Math.round((c.pHot ?? 0.5) * 1e6);
  s[o.maxSteps] = c.maxSteps ?? 2_000_000;
  s[o.recCap] = cap;
  s[o.replayCount] = replay.length;
  const rb = SCHED.size + cap * REC_WORDS;
  replay.forEach((sw, i) => {
    s[rb + i * REC_WORDS] = sw.step;
    s[rb + i * REC_WORDS + 1] = sw.to;
    s[rb + i * REC_WORDS + 2] = sw.forced ? 1 : 0;
  });
  // PCT: distinct random initial priorities (>= depth) and d-1 change points in [1, k].
  initPct(s, c.seed, c.depth ?? 3, c.pctSteps ?? 20000);
  for (let t = 0; t < MAX_SCHED_THREADS; t++) s[o.waitUntil + t] = -1;
  initOrder(s, orderAt, order);
  s[o.pollPoints] = c.pollPoints || c.strategy === STRATEGY_ORDER ? 1 : 0;
  return sab;
}

/**
 * A participant that will never join (the run's VM started no irqfd injector): count it as joined
 * and gone, so the start does not wait for it. Only before the others join: the last joiner
 * starts the run, and that must be a real thread.
 */
export function markAbsent(sab: SharedArrayBuffer, slot: number): void {
  const s = new Int32Array(sab);
  Atomics.store(s, SCHED.off.state + slot, T_EXITED);
  if (Atomics.add(s, SCHED.off.joined, 1) + 1 >= s[SCHED.off.nThreads]!) throw new Error(`scheduler slot ${slot} marked absent after every other participant joined`);
}

/** The scheduler's view of each thread, for failure reports (`names`: per slot). */
export function describeSched(sab: SharedArrayBuffer, names: readonly string[] = []): string {
  const s = new Int32Array(sab);
  const o = SCHED.off;
  const states = ['absent', 'runnable', 'blocked on lock', 'blocked on word', 'exited'];
  const lines = [`scheduler: step ${s[o.step]} (clock step ${s[o.step]! + s[o.skip]!}), turn ${s[o.turn]}, preemptions ${s[o.preemptions]}`];
  for (let t = 0; t < s[o.nThreads]!; t++) {
    const st = s[o.state + t]!;
    const until = st === T_WORD && s[o.waitUntil + t]! >= 0 ? `, or until clock step ${s[o.waitUntil + t]}` : '';
    const w = st === T_LOCK || st === T_WORD ? ` (word ${s[o.waitWord + t]}${st === T_WORD ? ` while == ${s[o.waitVal + t]}${until}` : ''})` : '';
    lines.push(`  thread ${t} (${names[t] ?? (t === 0 ? 'driver' : `vcpu${t - 1}`)}): ${states[st] ?? st}${w}, priority ${s[o.prio + t]}`);
  }
  return lines.join('\n');
}

export interface LostWakeup {
  count: number;
  step: number;
  waiter: number;
  word: number;
  val: number;
  /** The writer's slot, -1 if unknown. */
  writer: number;
  changedAt: number;
}

/** The lost wake-ups a run found (the first one in full), or null. */
export function readLostWakeup(sab: SharedArrayBuffer): LostWakeup | null {
  const s = new Int32Array(sab);
  const o = SCHED.off;
  if (s[o.lostCount] === 0) return null;
  return { count: s[o.lostCount]!, step: s[o.lostStep]!, waiter: s[o.lostWaiter]!, word: s[o.lostWord]!, val: s[o.lostVal]!, writer: s[o.lostWriter]! - 1, changedAt: s[o.lostChangedAt]! };
}

/** The recorded switches of a finished run. */
export function readSchedule(sab: SharedArrayBuffer): { switches: Switch[]; steps: number; preemptions: number; failure: number; failStep: number; divergedAt: number | null; reordered: number; orderLeftAt: number | null } {
  const s = new Int32Array(sab);
  const o = SCHED.off;
  const n = Math.min(s[o.recCount]!, s[o.recCap]!);
  const switches: Switch[] = [];
  for (let i = 0; i < n; i++) {
    const b = SCHED.size + i * REC_WORDS;
    switches.push({ step: s[b]!, to: s[b + 1]!, forced: s[b + 2] === 1 });
  }
  // A replay also diverged if it ended before reaching every recorded decision.
  const rb = replayBase(s);
  const unreached = s[o.replayPos]! < s[o.replayCount]! ? s[rb + s[o.replayPos]! * REC_WORDS]! : -1;
  const divergedAt = s[o.diverged] ? s[o.diverged]! - 1 : unreached >= 0 ? unreached : null;
  return { switches, steps: s[o.step]!, preemptions: s[o.preemptions]!, failure: s[o.failure]!, failStep: s[o.failStep]!, divergedAt, reordered: s[o.reordered]!, orderLeftAt: s[o.orderLeft] ? s[o.orderLeft]! - 1 : null };
}

// Spin briefly before parking: with more participants than the 2 cores, long spinning waiters
// steal the core from the one thread that holds the baton (measured: 2000 spins was 10% slower).
const SPIN_HANDOFF = 300;
const PARK_SLICE_MS = 50;
/** Parked slices without a single schedule step, after `stop`, before the holder counts as gone. */
const STALE_SLICES = 40;
/** Schedule points a word's writer may pass between its store and its notify (module comment). */
export const LOST_NOTIFY_POINTS = 4;

/**
 * This thread's Atomics.notify, wrapped once (the lockset view wraps it too; either order works,
 * each calls the one it found), telling the installed scheduler thread about each notify.
 */
let notifyListener: ((ta: unknown, idx: number, count: number | undefined) => void) | null = null;
let notifyWrapped = false;
function wrapNotify(): void {
  if (notifyWrapped) return;
  notifyWrapped = true;
  const A = Atomics as unknown as { notify: (a: unknown, i: number, c?: number) => number };
  const orig = A.notify;
  A.notify = function (a: unknown, i: number, c?: number): number {
    notifyListener?.(a, i, c);
    return orig.call(Atomics, a, i, c);
  };
}

/** One participating thread's side of the scheduler. */
export class ControlledThread {
  private readonly s: Int32Array;
  private readonly vm: Int32Array;
  private readonly slot: number;
  private readonly stopIdx: number;
  private readonly vmBuffer: ArrayBufferLike;
  private readonly o = SCHED.off;

  /** Filled at each decision for the strategy (one per thread: no allocation per point). */
  private readonly d: Decision;

  /**
   * Whether a thread outside the schedule (a VFIO-like device thread) runs now: it may change a
   * wait word and notify it where this scheduler cannot see, so such a change is not judged.
   */
  private readonly external: () => boolean;

  constructor(sab: SharedArrayBuffer, vm: Int32Array, slot: number, stopIdx: number, external: () => boolean = () => false) {
    if (slot >= MAX_SCHED_THREADS) throw new Error(`thread slot ${slot} beyond the controlled scheduler's ${MAX_SCHED_THREADS}`);
    this.s = new Int32Array(sab);
    this.vm = vm;
    this.vmBuffer = unchecked(vm).buffer;
    this.external = external;
    this.slot = slot;
    this.stopIdx = stopIdx;
    this.d = new Decision(this.s, (t) => this.enabled(t));
  }

  /** An Atomics.notify by this thread: wake (mark) the waiters of that VM word whose word changed. */
  private noteNotify(ta: unknown, idx: number, count: number | undefined): void {
    const s = this.s;
    const o = this.o;
    if (typeof ta !== 'object' || ta === null) return;
    if (unchecked(ta as Int32Array).buffer !== this.vmBuffer || Atomics.load(s, o.turn) !== this.slot) return;
    let left = count === undefined ? Infinity : count;
    for (let t = 0; t < s[o.nThreads]! && left > 0; t++) {
      if (s[o.state + t] !== T_WORD || s[o.waitWord + t] !== idx || s[o.notified + t]) continue;
      // A notify before the store wakes a waiter that finds the word unchanged and parks again.
      if (Atomics.load(this.vm, idx) === s[o.waitVal + t]) continue;
      s[o.notified + t] = 1;
      left--;
    }
  }

  /**
   * At each decision: a waiter whose word changed without a notify names the thread running now
   * as the writer, and counts that writer's points. Returns a waiter whose notify is lost, or -1.
   */
  private watchWords(cur: number, step: number): number {
    const s = this.s;
    const o = this.o;
    for (let t = 0; t < s[o.nThreads]!; t++) {
      if (s[o.state + t] !== T_WORD || s[o.notified + t] || Atomics.load(this.vm, s[o.waitWord + t]!) === s[o.waitVal + t]) continue;
      if (this.external()) return -1;
      if (s[o.changedBy + t] === 0) {
        s[o.changedBy + t] = cur + 1;
        s[o.changedAt + t] = step;
        s[o.writerPoints + t] = 0;
      } else if (s[o.changedBy + t] === cur + 1 && ++s[o.writerPoints + t]! > LOST_NOTIFY_POINTS) return t;
    }
    return -1;
  }

  /** A waiter whose word changed and was never notified, or -1 (for when nobody else can run). */
  private unnotifiedWaiter(): number {
    const s = this.s;
    const o = this.o;
    for (let t = 0; t < s[o.nThreads]!; t++) {
      if (s[o.state + t] === T_WORD && !s[o.notified + t] && Atomics.load(this.vm, s[o.waitWord + t]!) !== s[o.waitVal + t]) return this.external() ? -1 : t;
    }
    return -1;
  }

  /** Record a lost wake-up of waiter t (the first one in full), and let its park slice end. */
  private lostWakeup(t: number, step: number): void {
    const s = this.s;
    const o = this.o;
    if (s[o.lostCount]!++ === 0) {
      s[o.lostStep] = step;
      s[o.lostWaiter] = t;
      s[o.lostWord] = s[o.waitWord + t]!;
      s[o.lostVal] = s[o.waitVal + t]!;
      s[o.lostWriter] = s[o.changedBy + t]!;
      s[o.lostChangedAt] = s[o.changedAt + t]!;
    }
    s[o.notified + t] = 1;
  }

  /** Install this thread's hooks (schedule points, lock/word waits, yields). */
  install(): void {
    setSchedHook((kind) => this.point(kind));
    // Virtual time is the schedule's (arch timer counter): a replay sees the same times.
    setScheduleClock(() => (this.s[this.o.step]! + this.s[this.o.skip]!) * NS_PER_STEP);
    setWaitHooks({
      lockWait: (w) => this.block(T_LOCK, w, 0),
      wordWait: (idx, val, deadline = Infinity) => {
        if (Atomics.load(this.s, this.o.turn) === FREE) return false;
        // Atomics.wait returns at once ('not-equal') when the word already differs: no park.
        if (Atomics.load(this.vm, idx) !== val) return true;
        const until = Math.ceil(deadline / NS_PER_STEP);
        this.block(T_WORD, idx, val, until <= 0x7fffffff ? until : -1);
        return true;
      },
      yield: () => this.yieldTurn(),
      step: () => this.s[this.o.step]!,
    });
    wrapNotify();
    notifyListener = (ta, idx, count) => this.noteNotify(ta, idx, count);
    // An order replay passes the end of a satisfied wait as the point its recording took there
    // (poll-scope.ts); other runs make no decision there, unless they replay an order replay's.
    if (this.s[this.o.pollPoints]) setPollEndHook(() => this.point(SchedPoint.Wake));
  }

  uninstall(): void {
    setSchedHook(null);
    setPollEndHook(null);
    setScheduleClock(null);
    setWaitHooks({ lockWait: null, wordWait: null, yield: null });
    notifyListener = null;
  }

  /** Join; the last participant to join starts the run. Returns when it is our turn. */
  join(): void {
    const s = this.s;
    Atomics.store(s, this.o.state + this.slot, T_RUNNABLE);
    const n = Atomics.add(s, this.o.joined, 1) + 1;
    if (n === s[this.o.nThreads]) {
      // Everyone is here: the first decision is made at step 0 from "nobody running".
      const first = this.choose(-1, false);
      this.handTo(first);
    }
    this.waitTurn();
  }

  /** Leave the controlled world (the thread is done). */
  leave(): void {
    const s = this.s;
    if (Atomics.load(s, this.o.turn) === FREE) {
      Atomics.store(s, this.o.state + this.slot, T_EXITED);
      return;
    }
    Atomics.store(s, this.o.state + this.slot, T_EXITED);
    const next = this.choose(this.slot, false);
    if (next >= 0) this.handTo(next);
    this.uninstall();
  }

  private enabled(t: number): boolean {
    const s = this.s;
    const st = s[this.o.state + t];
    if (st === T_RUNNABLE) return true;
    if (st === T_LOCK) return Atomics.load(this.vm, s[this.o.waitWord + t]!) === 0;
    if (st === T_WORD) {
      const until = s[this.o.waitUntil + t]!;
      if (until >= 0 && s[this.o.step]! + s[this.o.skip]! >= until) return true;
      // The word changed and a notify woke it (noteNotify checks the change), or a teardown.
      if (s[this.o.notified + t] !== 0 || Atomics.load(this.vm, this.stopIdx) !== 0) return true;
      // A thread outside the schedule may have changed it, and notified it unseen: the change wakes.
      return Atomics.load(this.vm, s[this.o.waitWord + t]!) !== s[this.o.waitVal + t] && this.external();
    }
    return false;
  }

  /**
   * Decide who runs after a schedule point of `cur` (or -1 at start). `curCan`: whether cur could
   * go on. Records the switch. Returns a slot, or FREE after declaring a failure.
   */
  private choose(cur: number, curCan: boolean, excludeCur = false, kind = 0): number {
    const s = this.s;
    const o = this.o;
    const step = ++s[o.step]!;
    if (step > s[o.maxSteps]!) return this.fail(2, step);
    const lost = this.watchWords(cur, step);
    if (lost >= 0) this.lostWakeup(lost, step);
    const n = s[o.nThreads]!;
    let count = 0;
    let lowest = -1;
    for (let t = 0; t < n; t++) {
      if (this.enabled(t) && !(excludeCur && t === cur)) {
        count++;
        if (lowest < 0) lowest = t;
      }
    }
    // Nobody else can run but a thread waits for a timer: time passes (before deciding a yield
    // has nobody to hand to, or that everyone is stuck).
    if (count === 0 && this.skipToTimer()) return this.choose(cur, curCan, excludeCur, kind);
    if (count === 0) {
      // Everyone else waits, one of them on a word that changed: its notify was lost.
      const unwoken = this.unnotifiedWaiter();
      if (unwoken >= 0) {
        this.lostWakeup(unwoken, step);
        return this.choose(cur, curCan, excludeCur, kind);
      }
    }
    if (count === 0 && excludeCur) return cur; // a yield with nobody else to run: go on
    if (count === 0) {
      let anyLive = false;
      for (let t = 0; t < n; t++) if (s[o.state + t] !== T_EXITED) anyLive = true;
      return anyLive ? this.fail(1, step) : FREE;
    }
    // The default continuation: the current thread goes on if it can; otherwise the lowest enabled
    // thread (the current one if it is enabled again and not yielding). A schedule records every
    // decision that differs from it, so a replay (which follows the default elsewhere) is exact.
    const d = this.d;
    d.stopped = Atomics.load(this.vm, this.stopIdx) !== 0;
    d.polling = polling();
    d.step = step;
    d.cur = cur;
    d.curCan = curCan;
    d.excludeCur = excludeCur;
    d.kind = kind;
    d.n = n;
    d.count = count;
    d.lowest = lowest;
    d.dflt = curCan && !excludeCur ? cur : !excludeCur && cur >= 0 && this.enabled(cur) ? cur : lowest;
    const dflt = d.dflt;
    // A yield goes to the random walk under every strategy but replay (random.ts says why).
    const strategy = s[o.strategy]!;
    // (An order replay decides yields itself: the recording says who passed the next point.)
    const next = (excludeCur && strategy !== STRATEGY_REPLAY && strategy !== STRATEGY_ORDER ? randomWalk : STRATEGIES[strategy]!).next(d);
    if (curCan && next !== cur) s[o.preemptions]!++;
    s[o.runLen] = next === cur ? s[o.runLen]! + 1 : 0;
    if (next !== dflt) {
      const i = s[o.recCount]!;
      if (i < s[o.recCap]!) {
        const b = SCHED.size + i * REC_WORDS;
        s[b] = step;
        s[b + 1] = next;
        s[b + 2] = curCan ? 0 : 1;
      }
      s[o.recCount] = i + 1;
    }
    return next;
  }

  /**
   * Nobody can run, but some thread waits for a timer: let virtual time pass up to the earliest
   * such deadline (as an idle machine would), deterministically. False if no thread has one.
   */
  private skipToTimer(): boolean {
    const s = this.s;
    const o = this.o;
    let earliest = -1;
    for (let t = 0; t < s[o.nThreads]!; t++) {
      const u = s[o.waitUntil + t]!;
      if (s[o.state + t] === T_WORD && u >= 0 && (earliest < 0 || u < earliest)) earliest = u;
    }
    if (earliest < 0) return false;
    const now = s[o.step]! + s[o.skip]!;
    if (earliest > now) s[o.skip] = s[o.skip]! + (earliest - now);
    return true;
  }

  private fail(code: number, step: number): number {
    const s = this.s;
    if (s[this.o.failure] === FAIL_NONE) {
      s[this.o.failure] = code;
      s[this.o.failStep] = step;
    }
    this.freeRun();
    return FREE;
  }

  /** Give up control: every thread runs freely (used after a failure, and at teardown). */
  freeRun(): void {
    const s = this.s;
    Atomics.store(s, this.o.turn, FREE);
    for (let t = 0; t < MAX_SCHED_THREADS; t++) {
      Atomics.store(s, this.o.bell + t, 1);
      Atomics.notify(s, this.o.bell + t);
    }
  }

  private handTo(next: number): void {
    const s = this.s;
    if (next === FREE) return;
    Atomics.store(s, this.o.turn, next);
    Atomics.store(s, this.o.bell + next, 1);
    if (Atomics.load(s, this.o.parked + next)) Atomics.notify(s, this.o.bell + next, 1);
  }

  /** Wait until the baton is ours (or everyone runs freely). Spin, then park on our doorbell. */
  private waitTurn(): void {
    const s = this.s;
    const bell = this.o.bell + this.slot;
    const turn = this.o.turn;
    for (let i = 0; i < SPIN_HANDOFF; i++) {
      const tv = Atomics.load(s, turn);
      if (tv === this.slot || tv === FREE) {
        Atomics.store(s, bell, 0);
        return;
      }
    }
    let lastStep = -1;
    let stale = 0;
    for (;;) {
      Atomics.store(s, this.o.parked + this.slot, 1);
      const tv = Atomics.load(s, turn);
      if (tv === this.slot || tv === FREE) break;
      Atomics.wait(s, bell, 0, PARK_SLICE_MS);
      Atomics.store(s, bell, 0);
      if (Atomics.load(this.vm, this.stopIdx) !== 0 && Atomics.load(s, turn) !== this.slot) {
        // Teardown while we wait: if the baton holder is gone (a worker terminated while holding
        // it), nobody will hand us the baton any more. But a scenario's driver also sets `stop`
        // (its end), and the schedule goes on deterministically until every thread has left: so
        // only a holder that takes no step for STALE_SLICES slices counts as gone. Free-running on
        // the first slice made the schedule depend on how long the OS let the holder run
        // ("parked slice vs baton" nondeterminism, seen as a different schedule hash under load).
        const step = Atomics.load(s, this.o.step);
        stale = step === lastStep ? stale + 1 : 0;
        lastStep = step;
        if (stale >= STALE_SLICES) this.freeRun();
      }
    }
    Atomics.store(s, this.o.parked + this.slot, 0);
    Atomics.store(s, bell, 0);
  }

  /** A schedule point: maybe hand the baton to someone else and wait for it to come back. */
  point(kind = 0): void {
    if (Atomics.load(this.s, this.o.turn) !== this.slot) return; // free-running, or not started
    const next = this.choose(this.slot, true, false, kind);
    if (next === this.slot || next === FREE) return;
    this.handTo(next);
    this.waitTurn();
  }

  /** Block (lock / word condition) until enabled and scheduled again. */
  private block(kind: number, word: number, val: number, until = -1): void {
    const s = this.s;
    if (Atomics.load(s, this.o.turn) !== this.slot) {
      // Free-running (after a failure, or at teardown): a plain short wait, then the caller
      // re-checks; a teardown ends lock waits, which may never be satisfied after a deadlock.
      if (Atomics.load(this.vm, this.stopIdx) !== 0 && kind === T_LOCK) throw new TeardownError('waiting for a lock after the controlled run ended');
      Atomics.wait(this.vm, word, kind === T_LOCK ? Atomics.load(this.vm, word) : val, 2);
      return;
    }
    s[this.o.waitWord + this.slot] = word;
    s[this.o.waitVal + this.slot] = val;
    s[this.o.notified + this.slot] = 0;
    s[this.o.changedBy + this.slot] = 0;
    s[this.o.waitUntil + this.slot] = until;
    s[this.o.state + this.slot] = kind;
    const next = this.choose(this.slot, false);
    s[this.o.state + this.slot] = T_RUNNABLE;
    if (next === this.slot || next === FREE) {
      s[this.o.waitUntil + this.slot] = -1;
      return;
    }
    // We stay "blocked" from the others' point of view until someone hands the baton back,
    // which they only do once our condition holds (enabled()).
    s[this.o.state + this.slot] = kind;
    this.handTo(next);
    this.waitTurn();
    s[this.o.state + this.slot] = T_RUNNABLE;
    s[this.o.waitUntil + this.slot] = -1;
  }

  /**
   * A busy-wait iteration: prefer running someone else. Returns false when nobody else could run
   * (every other thread is blocked or gone): the caller's condition cannot change by waiting.
   */
  private yieldTurn(): boolean {
    const s = this.s;
    if (Atomics.load(s, this.o.turn) !== this.slot) return true;
    // A yield lets another thread take this one decision (under PCT: the highest-priority other
    // enabled thread). It does not demote the yielding thread: a waiter that loses its priority at
    // every poll is starved by any thread that does not wait (an interrupt storm); the PCT time
    // slice below bounds how long a non-yielding thread keeps the baton.
    const next = this.choose(this.slot, false, true);
    if (next < 0 || next === this.slot) return next !== this.slot;
    this.handTo(next);
    this.waitTurn();
    return true;
  }

  /** For tests and reports. */
  get failure(): number {
    return this.s[this.o.failure]!;
  }
}
