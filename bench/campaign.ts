/**
 * `npm run stress:campaign [-- --minutes M]`: the correct model under every built-in scenario, in
 * both modes, for M minutes in all (default 10), split evenly. Prints one line per scenario and
 * mode, and exits 1 if any run found a violation.
 */
import { runCampaign } from '../src/stress/campaign.js';
import { BUILTIN_SCENARIOS } from '../src/stress/scenarios/index.js';
import { formatSeed } from '../src/sched/prng.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const minutes = Number(arg('minutes') ?? 10);
const jobs = Number(arg('jobs') ?? 1);
const seed = Number(arg('seed') ?? 0x5eed);
const slots = BUILTIN_SCENARIOS.length * 2;
const each = (minutes * 60_000) / slots;
let violations = 0;
let runs = 0;
const t0 = performance.now();
for (const scenario of BUILTIN_SCENARIOS) {
  for (const mode of ['controlled', 'chaos'] as const) {
    const r = await runCampaign({ base: { scenario, mode }, seed, durationMs: each, jobs, keepGoing: true });
    runs += r.runs;
    violations += r.failures.length;
    const first = r.failures[0];
    console.log(
      `${scenario.padEnd(Math.max(...BUILTIN_SCENARIOS.map((s) => s.length)))} ${mode.padEnd(10)} ${String(r.runs).padStart(5)} runs  ${r.failures.length} failing` +
        (first ? `  first: seed ${formatSeed(first.seed)} ${first.findings[0]?.kind}: ${first.findings[0]?.message}` : ''),
    );
  }
}
console.log(`\n${runs} runs in ${((performance.now() - t0) / 60000).toFixed(1)} min, ${violations} with violations`);
process.exitCode = violations ? 1 : 0;
