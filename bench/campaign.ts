/**
 * `npm run stress:campaign [-- --minutes M]`: the correct model under every built-in scenario, in
 * both modes, for M minutes in all (default 10), split evenly. Prints one line per scenario and
 * mode, and exits 1 if any run found a violation.
 */
import { runCampaign } from '../src/stress/campaign.js';
import { BUILTIN_SCENARIOS } from '../src/stress/scenarios/index.js';
import { formatSeed } from '../src/sched/prng.js';
import type { FlagSpec } from '../src/cli/args.js';
import { parseScriptFlags } from './script-flags.js';

const FLAGS: FlagSpec[] = [
  { name: 'minutes', kind: 'number', min: 0.05, default: 10, help: 'total time, split evenly over scenarios and modes' },
  { name: 'jobs', kind: 'number', integer: true, min: 1, max: 64, default: 1, help: 'parallel runs' },
  { name: 'seed', kind: 'string', default: '0x5eed', help: 'campaign seed (decimal or 0x hex)' },
];
const { f, seed } = parseScriptFlags('stress:campaign', FLAGS);
const minutes = f.minutes as number;
const jobs = f.jobs as number;
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
