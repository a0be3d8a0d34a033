/**
 * The short stress campaign `npm run coverage:stress` measures (under c8, which sets
 * NODE_V8_COVERAGE: every vCPU, driver and irqfd-injector worker writes its own profile when it
 * ends, so the guest-visible paths taken in vCPU threads are counted too).
 *
 *   node dist/bench/coverage-campaign.js [--gic v2|v3|both] [--seeds N] [--seed S]
 *
 * Every built-in scenario, in both modes, on each GIC version it runs on (a scenario that pins
 * one in its info runs on that one only), N seeds each (default 1: about two minutes on two
 * cores, plus c8's report); then three storms under the model's other designs (classic LR
 * overflow handling, the global lock, one LR). Exit code 1 if any run has a finding (coverage of a campaign that
 * fails measures a broken run) or if the worker threads' profiles are missing.
 */
import { readdirSync } from 'node:fs';
import { loadScenario, runStress } from '../src/stress/runner.js';
import { BUILTIN_SCENARIOS } from '../src/stress/scenarios/index.js';
import { runSeed } from '../src/stress/campaign.js';
import { formatSeed } from '../src/sched/prng.js';
import type { FlagSpec } from '../src/cli/args.js';
import { parseScriptFlags } from './script-flags.js';

const FLAGS: FlagSpec[] = [
  { name: 'gic', kind: 'string', choices: ['v2', 'v3', 'both'], default: 'both', help: 'GIC versions to run the scenarios on' },
  { name: 'seeds', kind: 'number', integer: true, min: 1, max: 100, default: 1, help: 'seeds per scenario, mode and GIC version' },
  { name: 'seed', kind: 'string', default: '0xc0de', help: 'campaign seed (decimal or 0x hex)' },
];
const { f, seed } = parseScriptFlags('coverage:stress', FLAGS);
const gics = f.gic === 'both' ? (['v2', 'v3'] as const) : ([f.gic] as ['v2' | 'v3']);
const seeds = f.seeds as number;
const t0 = performance.now();
let runs = 0;
let failing = 0;
const width = Math.max(...BUILTIN_SCENARIOS.map((s) => s.length));
for (const scenario of BUILTIN_SCENARIOS) {
  const pinned = (await loadScenario(scenario)).mod.info.gic;
  for (const gic of gics) {
    if (pinned && pinned !== gic) continue;
    for (const mode of ['controlled', 'chaos'] as const) {
      for (let i = 0; i < seeds; i++) {
        const s = runSeed(seed, i);
        const r = await runStress({ scenario, mode, gic, seed: s });
        runs++;
        if (!r.ok) {
          failing++;
          process.stderr.write(`${scenario} ${gic} ${mode} seed ${formatSeed(s)}: ${r.findings[0]!.kind}: ${r.findings[0]!.message}\n`);
        }
      }
    }
    process.stderr.write(`${scenario.padEnd(width)} ${gic} done\n`);
  }
}
// The model's other designs (createVm options a study switches): the classic LR overflow
// handling and the one global lock, with a single LR so that overflow happens, on storms that
// overflow it (SGIs from several sources, SPIs moving between vCPUs).
for (const scenario of ['spi-storm', 'ipi-storm', 'retarget']) {
  for (const gic of gics) {
    for (const mode of ['controlled', 'chaos'] as const) {
      const s = runSeed(seed, 0);
      const r = await runStress({ scenario, mode, gic, seed: s, lrPolicy: 'classic', locking: 'global', nrLr: 1 });
      runs++;
      if (!r.ok) {
        failing++;
        process.stderr.write(`${scenario} ${gic} ${mode} (classic LRs, global lock) seed ${formatSeed(s)}: ${r.findings[0]!.kind}: ${r.findings[0]!.message}\n`);
      }
    }
  }
}
process.stderr.write('classic LR policy + global lock variants done\n');
const dir = process.env.NODE_V8_COVERAGE;
// The main thread's own profile is written at exit; the workers' are already there.
const profiles = dir ? readdirSync(dir).length : 0;
process.stderr.write(
  `\n${runs} runs (${gics.join('+')}, ${seeds} seed(s) each) in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${failing} with findings` +
    (dir ? `; ${profiles} worker coverage profiles in ${dir}\n` : '; NODE_V8_COVERAGE is not set: nothing is measured\n'),
);
// Every run has at least three worker threads (two vCPUs and the driver): far fewer profiles
// than that means the workers' coverage was not collected and the table would under-report.
const workersMissed = dir !== undefined && profiles < 3 * runs;
if (workersMissed) process.stderr.write(`only ${profiles} coverage profiles for ${runs} runs: the worker threads' coverage is missing\n`);
process.exitCode = failing || workersMissed ? 1 : 0;
