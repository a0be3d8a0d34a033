/**
 * The test a mutant must survive: a short stress campaign over the built-in scenarios, in
 * controlled and chaos mode, stopping at the first failing run. It runs inside a mutant's private
 * copy of the package (node <copy>/dist/bench/mutants/probe.js '<json>'), so its relative imports
 * load the copy's modules. It prints one JSON line (a ProbeResult) on stdout; exit 0 = no finding,
 * 1 = a finding, 3 = the campaign itself threw (the mutant crashed the model at load or set-up).
 */
import { runCampaign } from '../../src/stress/campaign.js';
import type { StressMode } from '../../src/stress/runner.js';

export interface ProbeConfig {
  scenarios: readonly string[];
  modes: readonly StressMode[];
  /** Runs per scenario and mode. */
  runs: Partial<Record<StressMode, number>>;
  /** Campaign seed (the same for every mutant, so a controlled run is the same schedule). */
  seed: number;
  /** Bound on one run (the runner's own timeout finding). */
  runTimeoutMs: number;
}

export interface ProbeResult {
  killed: boolean;
  /** Where it was killed: scenario, mode and the failing run's seed. */
  scenario?: string;
  mode?: StressMode;
  seed?: number;
  findings?: { kind: string; message: string }[];
  /** The campaign threw: the mutant crashed the model outside any run's checks. */
  crash?: string;
  runs: number;
  ms: number;
}

export async function probe(c: ProbeConfig): Promise<ProbeResult> {
  const t0 = performance.now();
  let runs = 0;
  try {
    for (const scenario of c.scenarios) {
      for (const mode of c.modes) {
        const n = c.runs[mode] ?? 1;
        if (n <= 0) continue;
        const r = await runCampaign({ base: { scenario, mode, timeoutMs: c.runTimeoutMs }, seed: c.seed, runs: n });
        runs += r.runs;
        const f = r.failures[0];
        if (f) {
          return {
            killed: true, scenario, mode, seed: f.seed, runs, ms: performance.now() - t0,
            findings: f.findings.map((x) => ({ kind: x.kind, message: x.message.slice(0, 300) })),
          };
        }
      }
    }
  } catch (e) {
    return { killed: true, crash: e instanceof Error ? `${e.name}: ${e.message}`.slice(0, 300) : String(e), runs, ms: performance.now() - t0 };
  }
  return { killed: false, runs, ms: performance.now() - t0 };
}

const self = process.argv[1] ?? '';
if (self.endsWith('/bench/mutants/probe.js')) {
  const r = await probe(JSON.parse(process.argv[2] ?? '{}') as ProbeConfig);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(r.crash ? 3 : r.killed ? 1 : 0);
}
