/**
 * `vgic-emu stress`: run a scenario many times (one seed per run) under chaos or controlled
 * scheduling, check every run, and turn a failure into a one-line repro plus files: the report
 * (JSON, and JUnit XML with --junit), the history, and (controlled mode) the schedule, optionally
 * minimised.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec } from './args.js';
import { Progress } from './progress.js';
import { runCampaign, type CampaignResult } from '../stress/campaign.js';
import { runStress, scenarioUrl, type StressRunOptions, type StressRunReport } from '../stress/runner.js';
import { minimiseSchedule } from '../stress/minimise.js';
import { fileSwitches, readScheduleFile, toScheduleFile, writeScheduleFile } from '../stress/schedule-file.js';
import { BUILTIN_SCENARIOS } from '../stress/scenarios/index.js';
import { BUG, BUG_INFO } from '../vgic/bugs.js';
import { formatSeed, parseSeed } from '../sched/prng.js';
import { formatEvent } from '../check/events.js';
import { toJUnitXml } from '../check/report-junit.js';

export const STRESS_FLAGS: FlagSpec[] = [
  { name: 'scenario', kind: 'string', help: `built-in (${BUILTIN_SCENARIOS.join(', ')}) or a module path; default: the bug's scenario, else spi-storm` },
  { name: 'mode', kind: 'string', choices: ['controlled', 'chaos'], default: 'controlled', help: 'controlled: one thread at a time, exactly replayable; chaos: real parallelism plus seeded delays' },
  { name: 'strategy', kind: 'string', choices: ['random', 'pct'], default: 'random', help: 'controlled-mode strategy' },
  { name: 'depth', kind: 'number', integer: true, min: 1, max: 64, default: 3, help: 'PCT depth' },
  { name: 'seed', kind: 'string', help: 'campaign seed (decimal or 0x hex); run i uses a seed derived from it; default: random' },
  { name: 'iterations', kind: 'number', integer: true, min: 1, help: 'number of runs (default 20, or unbounded with --duration)' },
  { name: 'duration', kind: 'number', min: 0.1, help: 'run for this many seconds' },
  { name: 'bug', kind: 'string', help: `bug seed(s) to switch on, comma-separated: ${Object.keys(BUG).join(', ')}` },
  { name: 'vcpus', kind: 'number', integer: true, min: 1, max: 64, help: "vCPUs per run (default: the scenario's)" },
  { name: 'size', kind: 'number', integer: true, min: 1, help: "work items per run (default: the scenario's)" },
  { name: 'gic', kind: 'string', choices: ['v2', 'v3'], help: "GIC model (default: the scenario's, else v3)" },
  { name: 'locking', kind: 'string', choices: ['fine', 'global'], default: 'fine', help: 'lock design' },
  { name: 'jobs', kind: 'number', integer: true, min: 1, max: 64, default: 1, help: 'parallel runs (piscina pool, one seed per task)' },
  { name: 'replay', kind: 'string', help: 'replay a schedule file written by a failing controlled run' },
  { name: 'minimise', kind: 'boolean', help: 'on a controlled-mode failure, delta-debug the schedule to the fewest preemptions' },
  { name: 'keep-going', kind: 'boolean', help: 'do not stop at the first failure' },
  { name: 'out', kind: 'string', default: 'vgic-emu-out', help: 'directory for report, history and schedule files' },
  { name: 'junit', kind: 'string', help: 'also write a JUnit XML report to this file' },
  { name: 'json', kind: 'boolean', help: 'print the campaign summary as JSON on stdout' },
  { name: 'list', kind: 'boolean', help: 'list scenarios and bug seeds, then exit' },
  HELP_FLAG,
];

export const STRESS_USAGE = `usage: vgic-emu stress [options]

Exit codes: 0 no violation, 1 violation found, 2 usage error.

${flagHelp(STRESS_FLAGS)}
`;

function listing(): string {
  const lines = ['scenarios:', ...BUILTIN_SCENARIOS.map((s) => `  ${s}`), '', 'bug seeds:'];
  for (const b of BUG_INFO) lines.push(`  ${b.name} (scenario ${b.scenario})`, `      ${b.what}`, `      history: ${b.history}`);
  return `${lines.join('\n')}\n`;
}

function reproLine(r: StressRunReport, o: StressRunOptions): string {
  const parts = ['npx vgic-emu stress', `--scenario ${r.scenario}`, `--mode ${r.mode}`];
  if (r.mode === 'controlled' && r.strategy && r.strategy !== 'replay') parts.push(`--strategy ${r.strategy}`);
  if (r.strategy === 'pct') parts.push(`--depth ${o.depth ?? 3}`);
  parts.push(`--seed ${formatSeed(r.seed)}`, '--iterations 1', `--vcpus ${r.vcpus}`, `--size ${r.args.iterations}`, `--gic ${r.gic}`);
  if (o.locking && o.locking !== 'fine') parts.push(`--locking ${o.locking}`);
  if (r.bugs.length) parts.push(`--bug ${r.bugs.join(',')}`);
  return parts.join(' ');
}

function writeArtifacts(dir: string, r: StressRunReport, o: StressRunOptions, junit: string | undefined, campaign: CampaignResult | null): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const { history, ...rest } = r;
  const reportPath = join(dir, 'report.json');
  writeFileSync(reportPath, `${JSON.stringify({ ...rest, schedule: rest.schedule && { ...rest.schedule, switches: rest.schedule.switches.length } }, null, 2)}\n`);
  written.push(reportPath);
  if (history) {
    const hp = join(dir, 'history.txt');
    writeFileSync(hp, history.map(formatEvent).join('\n') + '\n');
    written.push(hp);
  }
  if (r.schedule) {
    const sp = join(dir, 'schedule.json');
    writeScheduleFile(sp, toScheduleFile({ scenario: r.scenario, seed: r.seed, strategy: r.strategy ?? 'random', bugs: [...r.bugs], vcpus: r.vcpus, gic: r.gic, size: r.args.iterations, spis: r.args.spis.length, nrLr: o.nrLr }, r.schedule.switches));
    written.push(sp);
  }
  if (junit) {
    const cases = [{ name: `${r.scenario} seed ${formatSeed(r.seed)}`, timeSec: r.durationMs / 1000, failure: r.ok ? undefined : { message: r.findings[0]!.message, details: r.findings.map((f) => `${f.kind}: ${f.message}\n${f.details ?? ''}`).join('\n\n') } }];
    if (campaign) cases.unshift({ name: `campaign: ${campaign.runs} runs`, timeSec: campaign.durationMs / 1000, failure: undefined });
    writeFileSync(junit, toJUnitXml('vgic-emu stress', cases));
    written.push(junit);
  }
  return written;
}

function describeFailure(r: StressRunReport): string {
  const lines = [`FAIL ${r.scenario} seed ${formatSeed(r.seed)} (${r.mode}${r.strategy ? `, ${r.strategy}` : ''}${r.bugs.length ? `, bugs ${r.bugs.join(',')}` : ''}):`];
  for (const f of r.findings.slice(0, 8)) {
    lines.push(`  ${f.kind}: ${f.message}`);
    if (f.details) lines.push(...f.details.split('\n').slice(0, 24).map((l) => `      ${l}`));
  }
  if (r.findings.length > 8) lines.push(`  … ${r.findings.length - 8} more findings in the report`);
  return lines.join('\n');
}

export async function stressCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, STRESS_FLAGS);
  if (f.help) {
    process.stdout.write(STRESS_USAGE);
    return 0;
  }
  if (f.list) {
    process.stdout.write(listing());
    return 0;
  }
  const out = f.out as string;
  const bugs = f.bug ? String(f.bug).split(',').filter(Boolean) : [];
  for (const b of bugs) if (!(b in BUG)) throw new UsageError(`unknown bug seed '${b}' (known: ${Object.keys(BUG).join(', ')})`);
  if (f.duration !== undefined && f.iterations !== undefined) throw new UsageError('give --duration or --iterations, not both');
  const intFlag = (n: string): number | undefined => f[n] as number | undefined;

  let base: StressRunOptions;
  let seed: number;
  if (f.replay) {
    // A file that is not a schedule (or of another version) is a usage error, not a violation.
    let sf: ReturnType<typeof readScheduleFile>;
    try {
      sf = readScheduleFile(f.replay as string);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    base = { scenario: sf.scenario, seed: sf.seed, mode: 'controlled', vcpus: sf.vcpus, gic: sf.gic, iterations: sf.size, spis: sf.spis, nrLr: sf.nrLr, bugs: sf.bugs, replay: fileSwitches(sf), keepHistory: true, locking: f.locking as 'fine' | 'global' };
    seed = sf.seed;
  } else {
    try {
      seed = f.seed !== undefined ? parseSeed(String(f.seed)) : (Math.random() * 2 ** 32) >>> 0;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const scenario = (f.scenario as string | undefined) ?? (bugs.length ? BUG_INFO.find((b) => b.name === bugs[0])!.scenario : 'spi-storm');
    // An unknown scenario is a usage error (exit 2), not a violation found (exit 1).
    try {
      scenarioUrl(scenario);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    base = {
      scenario,
      seed,
      mode: f.mode as 'controlled' | 'chaos',
      strategy: f.strategy as 'random' | 'pct',
      depth: intFlag('depth'),
      vcpus: intFlag('vcpus'),
      iterations: intFlag('size'),
      gic: f.gic as 'v2' | 'v3' | undefined,
      locking: f.locking as 'fine' | 'global',
      bugs,
      keepHistory: true,
    };
  }

  if (f.replay) {
    const r = await runStress(base);
    const files = writeArtifacts(out, r, base, f.junit as string | undefined, null);
    process.stdout.write(r.ok ? `replay of ${f.replay}: no violation (schedule ${r.schedule?.hash})\n` : `${describeFailure(r)}\n`);
    process.stdout.write(`wrote ${files.join(', ')}\n`);
    return r.ok ? 0 : 1;
  }

  const t0 = performance.now();
  let failuresSoFar = 0;
  let explored = 0;
  const runs = intFlag('iterations') ?? (f.duration ? undefined : 20);
  const durationMs = f.duration ? (f.duration as number) * 1000 : undefined;
  // The seed first, so that an interrupted or crashed campaign can still be rerun.
  process.stderr.write(`vgic-emu stress: ${base.scenario} (${base.mode}), campaign seed ${formatSeed(seed)}\n`);
  const progress = new Progress({ label: `${base.scenario} (${base.mode})`, total: runs, budgetMs: durationMs, suffix: `seed ${formatSeed(seed)}` });
  const campaign = await runCampaign({
    base: { ...base, keepHistory: true },
    seed,
    runs,
    durationMs,
    jobs: intFlag('jobs'),
    keepGoing: f['keep-going'] === true,
    onRun: (r, done) => {
      if (!r.ok) failuresSoFar++;
      if (r.schedule) explored++;
      progress.update(done, `${explored} schedules explored, ${failuresSoFar} failures`);
    },
  });
  progress.done();
  const summary = {
    scenario: base.scenario,
    mode: base.mode,
    campaignSeed: formatSeed(seed),
    runs: campaign.runs,
    failures: campaign.failures.length,
    schedulesExplored: campaign.schedulesExplored,
    schedulePointsPerSecond: campaign.schedulePoints / ((performance.now() - t0) / 1000),
    seconds: (performance.now() - t0) / 1000,
  };
  const failed = campaign.failures[0];
  if (!failed) {
    if (f.junit) writeFileSync(f.junit as string, toJUnitXml('vgic-emu stress', [{ name: `${base.scenario}: ${campaign.runs} runs`, timeSec: summary.seconds }]));
    process.stdout.write(f.json ? `${JSON.stringify(summary, null, 2)}\n` : `ok: ${campaign.runs} runs of ${base.scenario} (${base.mode}), campaign seed ${summary.campaignSeed}, no violation\n`);
    return 0;
  }
  let report = failed;
  const lines = [describeFailure(failed)];
  if (f.minimise && failed.schedule) {
    const mp = new Progress({ label: 'minimising', suffix: `seed ${formatSeed(failed.seed)}` });
    const m = await minimiseSchedule({ ...base, seed: failed.seed }, failed, {
      onTrial: (t, n, bad) => mp.update(t, `trial ${t}: ${n} switches, ${bad ? 'still fails' : 'passes'}`),
    });
    mp.done();
    report = m.report;
    lines.push(`minimised: ${m.preemptionsBefore} -> ${m.preemptions} preemptions in ${m.trials} trials (still fails with ${report.findings[0]?.kind})`);
  }
  const files = writeArtifacts(out, report, base, f.junit as string | undefined, campaign);
  lines.push(`repro: ${reproLine(failed, base)}`);
  if (report.schedule) lines.push(`   or: npx vgic-emu stress --replay ${join(out, 'schedule.json')}`);
  lines.push(`wrote ${files.join(', ')}`);
  process.stdout.write(f.json ? `${JSON.stringify({ ...summary, failure: { seed: formatSeed(failed.seed), findings: failed.findings.map((x) => ({ kind: x.kind, message: x.message })) } }, null, 2)}\n` : `${lines.join('\n')}\n`);
  return 1;
}
