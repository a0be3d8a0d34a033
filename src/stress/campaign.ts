/**
 * A stress campaign: many runs, one seed each (derived from the campaign seed), for a number of
 * runs or a duration. With jobs > 1 the runs fan out over a piscina pool, one seed per task;
 * every run is itself multi-threaded (its vCPUs and driver are worker threads).
 */
import { Piscina } from 'piscina';
import { deriveSeed } from '../sched/prng.js';
import { distPath } from '../kvm/worker-path.js';
import { runStress, type StressRunOptions, type StressRunReport } from './runner.js';

export interface CampaignOptions {
  base: Omit<StressRunOptions, 'seed'>;
  seed: number;
  /** Number of runs (default 10 unless durationMs is given). */
  runs?: number;
  durationMs?: number;
  jobs?: number;
  /** Keep going after the first failure (default: stop at the first). */
  keepGoing?: boolean;
  onRun?: (r: StressRunReport, done: number) => void;
}

export interface CampaignResult {
  runs: number;
  failures: StressRunReport[];
  schedulesExplored: number;
  schedulePoints: number;
  durationMs: number;
}

/** The seed of run i of a campaign. */
export function runSeed(campaignSeed: number, i: number): number {
  return i === 0 ? campaignSeed >>> 0 : deriveSeed(campaignSeed >>> 0, i);
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const maxRuns = o.runs ?? (o.durationMs ? Number.MAX_SAFE_INTEGER : 10);
  const deadline = o.durationMs ? t0 + o.durationMs : Number.POSITIVE_INFINITY;
  const jobs = Math.max(1, o.jobs ?? 1);
  const failures: StressRunReport[] = [];
  let started = 0;
  let done = 0;
  let points = 0;
  let explored = 0;
  const more = (): boolean => started < maxRuns && performance.now() < deadline && (o.keepGoing || failures.length === 0);
  const record = (r: StressRunReport): void => {
    done++;
    if (r.schedule) {
      explored++;
      points += r.schedule.steps;
    }
    if (!r.ok) failures.push(r);
    o.onRun?.(r, done);
  };
  if (jobs === 1) {
    while (more()) record(await runStress({ ...o.base, seed: runSeed(o.seed, started++) }));
  } else {
    const pool = new Piscina({ filename: distPath('workers/campaign-task.js'), minThreads: jobs, maxThreads: jobs, idleTimeout: 1000 });
    try {
      const lanes = Array.from({ length: jobs }, async () => {
        while (more()) {
          const opts: StressRunOptions = { ...o.base, seed: runSeed(o.seed, started++) };
          record((await pool.run(opts)) as StressRunReport);
        }
      });
      await Promise.all(lanes);
    } finally {
      await pool.destroy();
    }
  }
  return { runs: done, failures, schedulesExplored: explored, schedulePoints: points, durationMs: performance.now() - t0 };
}
