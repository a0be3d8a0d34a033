/**
 * A stress campaign: many runs, one seed each (derived from the campaign seed), for a number of
 * runs or a duration. With jobs > 1 the runs fan out over a piscina pool, one seed per task;
 * every run is itself multi-threaded (its vCPUs and driver are worker threads).
 */
import { Piscina } from 'piscina';
import { deriveSeed } from '../sched/prng.js';
import { decide } from '../sched/hash.js';
import { distPath } from '../kvm/worker-path.js';
import { runStress, type Strategy, type StressRunOptions, type StressRunReport } from './runner.js';
import { Budget, EPOCH_RUNS, type ScenarioBudget } from './campaign-budget.js';

/** A campaign's strategy: one for every run, or `mix` (runStrategy picks one per run). */
export type CampaignStrategy = Strategy | 'mix';

export interface CampaignOptions {
  base: Omit<StressRunOptions, 'seed' | 'strategy'> & { strategy?: CampaignStrategy };
  seed: number;
  /** Number of runs (default 10 unless durationMs is given). */
  runs?: number;
  durationMs?: number;
  jobs?: number;
  /** Keep going after the first failure (default: stop at the first). */
  keepGoing?: boolean;
  /** Called as each run ends, with its index in the campaign (its seed is runSeed(seed, index)). */
  onRun?: (r: StressRunReport, done: number, index: number) => void;
  /** Stop starting runs (Ctrl-C); the runs under way finish and are reported. */
  signal?: AbortSignal;
  /**
   * Run only this deterministic slice of the campaign: the run indices k with k % count === index
   * (0-based). `runs` still counts the whole campaign's indices, so the shards of a campaign
   * together run exactly its runs, each with the seed it has in the whole campaign.
   */
  shard?: { index: number; count: number };
  /**
   * Run the first reported controlled failure once more and mark it `confirmed` (the same history
   * again) or not (default true). A report that does not replay says so instead of being believed.
   */
  confirm?: boolean;
  /**
   * Several scenarios: the campaign's budget goes to them by what each has found and covered
   * (campaign-budget.ts), in epochs decided from earlier results in run-index order (base.scenario
   * is then ignored). A shard adapts on its own results.
   */
  scenarios?: readonly string[];
}

export interface CampaignResult {
  runs: number;
  /** Failing runs, lowest run index first: the first is the one a one-job campaign reports. */
  failures: StressRunReport[];
  /** Each run's index, scenario, ok and duration, in index order (for per-seed reports). */
  results: { index: number; seed: number; scenario: string; ok: boolean; durationMs: number }[];
  /** With several scenarios: how the budget went, per scenario. */
  budget?: ScenarioBudget[];
  /** True when the signal stopped the campaign early. */
  aborted: boolean;
  schedulesExplored: number;
  schedulePoints: number;
  durationMs: number;
}

/** The seed of run i of a campaign. */
export function runSeed(campaignSeed: number, i: number): number {
  return i === 0 ? campaignSeed >>> 0 : deriveSeed(campaignSeed >>> 0, i);
}

/**
 * A controlled failure must replay: the same seed again must give the same history. If it does
 * not, something made progress outside the controlled scheduler, and the report is marked.
 */
export async function confirmed(r: StressRunReport, again: () => Promise<StressRunReport>): Promise<StressRunReport> {
  if (r.ok || r.mode !== 'controlled' || r.strategy === 'replay') return r;
  const b = await again();
  return { ...r, confirmed: b.decidedHash === r.decidedHash };
}

/**
 * The strategies a mixed campaign spreads its runs over: the random walk, and PCT at depths 1-4
 * (PCT finds a bug of depth d with probability >= 1/(n k^(d-1)): shallow depths catch the
 * ordering bugs, deeper ones the races that need two or three preemptions in the right places).
 */
export const MIX: readonly { strategy: Strategy; depth?: number }[] = [
  { strategy: 'random' },
  { strategy: 'pct', depth: 1 },
  { strategy: 'pct', depth: 2 },
  { strategy: 'pct', depth: 3 },
  { strategy: 'pct', depth: 4 },
];

/**
 * Run i's strategy in a mixed campaign: from (campaign seed, i) alone, so it is the same whatever
 * --jobs or --shard runs it. Run 0 (whose seed is the campaign seed) takes the random walk, so
 * that `--seed S --iterations 1` is the plain run of seed S.
 */
export function runStrategy(campaignSeed: number, i: number): { strategy: Strategy; depth?: number } {
  return i === 0 ? MIX[0]! : MIX[decide(campaignSeed | 0, i, 0x5a) % MIX.length]!;
}

/** The options of run i: its seed and, in a mixed controlled campaign, its strategy. */
export function runOptions(o: CampaignOptions, i: number, scenario = o.base.scenario): StressRunOptions {
  const { strategy, ...b } = o.base;
  const rest = { ...b, scenario };
  const seed = runSeed(o.seed, i);
  if (strategy !== 'mix') return { ...rest, strategy, seed };
  if (rest.mode !== 'controlled' || rest.replay) return { ...rest, seed };
  const pick = runStrategy(o.seed, i);
  return { ...rest, seed, strategy: pick.strategy, depth: pick.depth ?? rest.depth };
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const maxRuns = o.runs ?? (o.durationMs ? Number.MAX_SAFE_INTEGER : 10);
  const deadline = o.durationMs ? t0 + o.durationMs : Number.POSITIVE_INFINITY;
  const jobs = Math.max(1, o.jobs ?? 1);
  const failures: { index: number; r: StressRunReport }[] = [];
  const results: CampaignResult['results'] = [];
  const shard = o.shard ?? { index: 0, count: 1 };
  if (!Number.isInteger(shard.count) || shard.count < 1 || !Number.isInteger(shard.index) || shard.index < 0 || shard.index >= shard.count) {
    throw new RangeError(`bad shard ${shard.index + 1}/${shard.count}`);
  }
  // `started` walks this shard's campaign indices: shard.index, shard.index + count, ...
  let started = shard.index;
  const step = shard.count;
  let done = 0;
  let points = 0;
  let explored = 0;
  // The lowest failing index seen so far. Runs start in index order, so stopping at it (rather
  // than at the first failure to *finish*) makes the reported failure the same for any --jobs:
  // every run below it is still started, and may turn out to be the lowest ("jobs race").
  let lowestFail = Number.POSITIVE_INFINITY;
  const more = (): boolean =>
    started < maxRuns && performance.now() < deadline && !o.signal?.aborted && (o.keepGoing || started < lowestFail);
  const spread = o.scenarios && o.scenarios.length > 1 ? new SpreadBudget(o.scenarios, shard) : null;
  const record = (index: number, r: StressRunReport): void => {
    done++;
    if (r.schedule) {
      explored++;
      points += r.schedule.steps;
    }
    spread?.finished(index, r);
    results.push({ index, seed: r.seed, scenario: r.scenarioRef, ok: r.ok, durationMs: r.durationMs });
    if (!r.ok) {
      failures.push({ index, r });
      lowestFail = Math.min(lowestFail, index);
    }
    o.onRun?.(r, done, index);
  };
  if (jobs === 1) {
    while (more()) {
      const index = started;
      started += step;
      const opts = runOptions(o, index, spread ? await spread.scenarioOf(index) : undefined);
      record(index, await runStress(opts));
    }
  } else {
    const pool = new Piscina({ filename: distPath('workers/campaign-task.js'), minThreads: jobs, maxThreads: jobs, idleTimeout: 1000 });
    try {
      const lanes = Array.from({ length: jobs }, async () => {
        while (more()) {
          const index = started;
          started += step;
          const opts = runOptions(o, index, spread ? await spread.scenarioOf(index) : undefined);
          record(index, (await pool.run(opts)) as StressRunReport);
        }
      });
      await Promise.all(lanes);
    } finally {
      await pool.destroy();
    }
  }
  failures.sort((x, y) => x.index - y.index);
  results.sort((x, y) => x.index - y.index);
  // Without keepGoing a one-job campaign stops at its first failure; report exactly that one.
  const reported = o.keepGoing ? failures : failures.slice(0, 1);
  // The failure the campaign reports first is run once more (the others would double a
  // keep-going campaign's time): it must give the same history to be believed.
  if (o.confirm !== false && reported[0]) {
    const f = reported[0];
    f.r = await confirmed(f.r, () => runStress(runOptions(o, f.index, f.r.scenarioRef)));
  }
  return {
    runs: done, failures: reported.map((f) => f.r), results, aborted: o.signal?.aborted === true,
    schedulesExplored: explored, schedulePoints: points, durationMs: performance.now() - t0,
    ...(spread ? { budget: spread.summary() } : {}),
  };
}

/**
 * The epochs of a campaign over several scenarios. Epoch e holds this shard's runs at local
 * positions [e * EPOCH_RUNS, (e + 1) * EPOCH_RUNS); its scenarios are allocated once every run of
 * epoch e - 1 has finished, from the results so far in run-index order, so the allocation does
 * not depend on how many lanes run them or in which order they finish.
 */
class SpreadBudget {
  private readonly budget: Budget;
  private readonly alloc: number[][] = [];
  private readonly pending = new Map<number, { started: number; done: { index: number; r: Pick<StressRunReport, 'signature' | 'findings'> }[] }>();
  private readonly scenarioIdx = new Map<number, number>();
  private waiters: (() => void)[] = [];

  constructor(private readonly scenarios: readonly string[], private readonly shard: { index: number; count: number }) {
    this.budget = new Budget(scenarios);
  }

  private pos(index: number): number {
    return (index - this.shard.index) / this.shard.count;
  }

  private epoch(e: number): { started: number; done: { index: number; r: Pick<StressRunReport, 'signature' | 'findings'> }[] } {
    let p = this.pending.get(e);
    if (!p) this.pending.set(e, (p = { started: 0, done: [] }));
    return p;
  }

  async scenarioOf(index: number): Promise<string> {
    const p = this.pos(index);
    const e = Math.floor(p / EPOCH_RUNS);
    while (this.alloc.length <= e) {
      const prev = this.alloc.length - 1;
      // Wait for every started run of the previous epoch (it is full: runs start in index order).
      if (prev >= 0) {
        const ep = this.epoch(prev);
        while (ep.done.length < ep.started) await new Promise<void>((r) => this.waiters.push(r));
        if (this.alloc.length > prev + 1) continue; // another lane allocated meanwhile
        ep.done.sort((a, b) => a.index - b.index);
        for (const d of ep.done) this.budget.add(this.scenarioIdx.get(d.index)!, d.r);
      }
      this.alloc.push(this.budget.allocate(EPOCH_RUNS));
    }
    const s = this.alloc[e]![p % EPOCH_RUNS]!;
    this.scenarioIdx.set(index, s);
    this.epoch(e).started++;
    return this.scenarios[s]!;
  }

  finished(index: number, r: StressRunReport): void {
    this.epoch(Math.floor(this.pos(index) / EPOCH_RUNS)).done.push({ index, r: { signature: r.signature, findings: r.findings } });
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  summary(): ScenarioBudget[] {
    // Every finished run, the last epoch's included (the allocation never needed those).
    const b = new Budget(this.scenarios);
    const all = [...this.pending.values()].flatMap((v) => v.done).sort((x, y) => x.index - y.index);
    for (const d of all) b.add(this.scenarioIdx.get(d.index)!, d.r);
    return b.summary();
  }
}
