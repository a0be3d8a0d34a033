/**
 * `vgic-emu stress`: run a scenario many times (one seed per run) under chaos or controlled
 * scheduling, check every run, and turn a failure into a one-line repro plus files: the report
 * (JSON, and JUnit XML with --junit), the history, and (controlled mode) the schedule, optionally
 * minimised.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec, type Flags } from './args.js';
import { packageVersion } from '../version.js';
import { Progress } from './progress.js';
import { runCampaign, type CampaignOptions, type CampaignResult, type CampaignStrategy } from '../stress/campaign.js';
import { loadScenario, runStress, type StressRunOptions, type StressRunReport } from '../stress/runner.js';
import { minimiseSchedule } from '../stress/minimise.js';
import { encodeOrder, fileSwitches, readScheduleFile, scenarioHash, scheduleMismatch, toScheduleFile, writeScheduleFile, type ScheduleConfig, type ScheduleFile } from '../stress/schedule-file.js';
import { BUILTIN_SCENARIOS } from '../stress/scenarios/index.js';
import { BUG, BUG_INFO } from '../vgic/bugs.js';
import { formatSeed, parseSeed } from '../sched/prng.js';
import { formatEvent } from '../record/events.js';
import { toJUnitXml, type JUnitCase } from '../check/report-junit.js';

export const STRESS_FLAGS: FlagSpec[] = [
  { name: 'scenario', kind: 'string', help: `built-in (${BUILTIN_SCENARIOS.join(', ')}) or a module path; several, comma-separated, or all: the budget goes to each by what it finds and covers; default: the bug's scenario, else spi-storm` },
  { name: 'mode', kind: 'string', choices: ['controlled', 'chaos'], default: 'controlled', help: 'controlled: one thread at a time, exactly replayable; chaos: real parallelism plus seeded delays' },
  { name: 'strategy', kind: 'string', choices: ['mix', 'random', 'pct'], default: 'mix', help: 'controlled-mode strategy; mix: each run its own, random walk or PCT at depth 1-4, from the campaign seed and the run index' },
  { name: 'depth', kind: 'number', integer: true, min: 1, max: 64, default: 3, help: 'PCT depth' },
  { name: 'seed', kind: 'string', help: 'campaign seed (decimal or 0x hex); run i uses a seed derived from it; default: random' },
  { name: 'iterations', kind: 'number', integer: true, min: 1, help: 'number of runs (default 20, or unbounded with --duration)' },
  { name: 'duration', kind: 'number', min: 0.1, help: 'run for this many seconds' },
  { name: 'bug', kind: 'string', help: `bug seed(s) to switch on, comma-separated: ${Object.keys(BUG).join(', ')}` },
  { name: 'vcpus', kind: 'number', integer: true, min: 1, max: 64, help: "vCPUs per run (default: the scenario's)" },
  { name: 'size', kind: 'number', integer: true, min: 1, help: "work items per run (default: the scenario's)" },
  { name: 'gic', kind: 'string', choices: ['v2', 'v3'], help: "GIC model (default: the scenario's, else v3)" },
  { name: 'locking', kind: 'string', choices: ['fine', 'global'], default: 'fine', help: 'lock design' },
  { name: 'lr-policy', kind: 'string', choices: ['mainline', 'classic'], default: 'mainline', help: 'LR overflow handling (createVm lrPolicy)' },
  { name: 'shard', kind: 'string', help: 'i/n: run only the campaign runs k with k % n = i-1 (merge the shards with vgic-emu merge)' },
  { name: 'jobs', kind: 'number', integer: true, min: 1, max: 64, default: 1, help: 'parallel runs (piscina pool, one seed per task)' },
  { name: 'replay', kind: 'string', help: 'replay a schedule file written by a failing controlled run (or by --record)' },
  { name: 'record', kind: 'string', help: 'chaos mode: record the order in which the threads passed their schedule points (the failing run, else the first) and write it to this file as a schedule that --replay replays exactly' },
  { name: 'minimise', kind: 'boolean', help: 'on a controlled-mode failure, delta-debug the schedule to the fewest preemptions' },
  { name: 'keep-going', kind: 'boolean', help: 'do not stop at the first failure' },
  { name: 'out', kind: 'string', default: 'vgic-emu-out', help: 'where each run writes its own artefact directory (report, history, schedule)' },
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

/** A shell word: quoted when it holds anything a shell would split or expand. */
function shq(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The command that runs this seed again; in chaos mode it reproduces only with some probability. */
function reproLine(r: StressRunReport): string {
  const parts = ['npx vgic-emu stress', `--scenario ${shq(r.scenarioRef)}`, `--mode ${r.mode}`];
  if (r.mode === 'controlled' && r.strategy && r.strategy !== 'replay') parts.push(`--strategy ${r.strategy}`);
  if (r.strategy === 'pct') parts.push(`--depth ${r.depth}`);
  parts.push(`--seed ${formatSeed(r.seed)}`, '--iterations 1', `--vcpus ${r.vcpus}`, `--size ${r.args.iterations}`, `--gic ${r.gic}`);
  if (r.locking !== 'fine') parts.push(`--locking ${r.locking}`);
  if (r.lrPolicy !== 'mainline') parts.push(`--lr-policy ${r.lrPolicy}`);
  if (r.bugs.length) parts.push(`--bug ${r.bugs.join(',')}`);
  return parts.join(' ');
}

function reproNote(r: StressRunReport): string {
  return r.mode === 'chaos' ? ' (chaos mode: real parallelism, so this reproduces only with some probability)' : '';
}

/**
 * A new artefact directory under `out`: `name`, or `name-2`, `name-3`… if taken. Claimed with a
 * non-recursive mkdir, so two runs (or a replay and the run it replays) never share one and no
 * run overwrites another's files, its own input included.
 */
function claimDir(out: string, name: string): string {
  mkdirSync(out, { recursive: true });
  for (let n = 1; ; n++) {
    const d = join(out, n === 1 ? name : `${name}-${n}`);
    try {
      mkdirSync(d);
      return d;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function artefactName(r: StressRunReport, prefix = ''): string {
  const scen = r.scenarioRef.includes('/') ? basename(r.scenarioRef).replace(/\.[cm]?[jt]s$/, '') : r.scenarioRef;
  return `${prefix}${scen}-${r.mode}-${formatSeed(r.seed)}`;
}

function scheduleConfig(r: StressRunReport): ScheduleConfig {
  return {
    scenario: r.scenarioRef, scenarioHash: r.scenarioHash, seed: r.seed, strategy: r.strategy ?? 'random', depth: r.strategy === 'pct' ? r.depth : undefined,
    bugs: [...r.bugs], vcpus: r.vcpus, gic: r.gic, size: r.args.iterations, spis: r.args.spis.length, nrLr: r.nrLr, lrPolicy: r.lrPolicy, locking: r.locking,
  };
}

/** report.json, history.txt and (controlled mode) schedule.json of one run, in `dir`. */
function writeArtifacts(dir: string, r: StressRunReport, recordedSwitches?: ScheduleFile['switches']): string[] {
  const written: string[] = [];
  const { history, ...rest } = r;
  const reportPath = join(dir, 'report.json');
  writeFileSync(reportPath, `${JSON.stringify({ ...rest, repro: reproLine(r), schedule: rest.schedule && { ...rest.schedule, switches: rest.schedule.switches.length } }, null, 2)}\n`);
  written.push(reportPath);
  if (history) {
    const hp = join(dir, 'history.txt');
    writeFileSync(hp, history.map(formatEvent).join('\n') + '\n');
    written.push(hp);
  }
  if (r.schedule) {
    const sp = join(dir, 'schedule.json');
    const f = toScheduleFile(scheduleConfig(r), r.schedule.switches);
    writeScheduleFile(sp, recordedSwitches ? { ...f, switches: recordedSwitches } : f);
    written.push(sp);
  }
  return written;
}

function failureCase(r: StressRunReport, files: string[]): JUnitCase['failure'] {
  const findings = r.findings.map((f) => `${f.kind}: ${f.message}\n${f.details ?? ''}`).join('\n\n');
  const replay = files.find((p) => p.endsWith('schedule.json'));
  return {
    message: `${r.confirmed === false ? '(unconfirmed: does not replay) ' : ''}${r.findings[0]?.message ?? 'failed'}`,
    details: [`repro: ${reproLine(r)}${reproNote(r)}`, ...(replay ? [`replay: npx vgic-emu stress --replay ${replay}`] : []), ...(files.length ? [`artefacts: ${files.join(', ')}`] : []), '', findings].join('\n'),
  };
}

function describeFailure(r: StressRunReport): string {
  const lines = [`FAIL ${r.scenario} seed ${formatSeed(r.seed)} (${r.mode}${r.strategy ? `, ${r.strategy}` : ''}${r.bugs.length ? `, bugs ${r.bugs.join(',')}` : ''}):`];
  if (r.confirmed === false) lines.push(`  UNCONFIRMED: a second controlled run of this seed gave another history; this report does not replay`);
  for (const f of r.findings.slice(0, 8)) {
    lines.push(`  ${f.kind}: ${f.message}`);
    if (f.details) lines.push(...f.details.split('\n').slice(0, 24).map((l) => `      ${l}`));
  }
  if (r.findings.length > 8) lines.push(`  … ${r.findings.length - 8} more findings in the report`);
  return lines.join('\n');
}

/** A scenario that does not exist or fails to load is a usage error (exit 2), not a violation. */
async function checkScenario(scenario: string): Promise<void> {
  try {
    await loadScenario(scenario);
  } catch (e) {
    throw new UsageError(`cannot load scenario '${scenario}': ${(e as Error).message}`);
  }
}

export async function stressCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, STRESS_FLAGS);
  // The flags the user gave (a replay refuses those that contradict its schedule file).
  const given = parseFlags(argv, STRESS_FLAGS.map((s) => ({ ...s, default: undefined })));
  if (f.help) {
    process.stdout.write(STRESS_USAGE);
    return 0;
  }
  if (f.list) {
    process.stdout.write(listing());
    return 0;
  }
  const bugs = f.bug ? String(f.bug).split(',').filter(Boolean) : [];
  for (const b of bugs) if (!(b in BUG)) throw new UsageError(`unknown bug seed '${b}' (known: ${Object.keys(BUG).join(', ')})`);
  if (f.duration !== undefined && f.iterations !== undefined) throw new UsageError('give --duration or --iterations, not both');
  if (f.replay) return replayCommand(f, given, bugs);
  return campaignCommand(f, bugs);
}

async function replayCommand(f: Flags, given: Flags, bugs: string[]): Promise<number> {
  const path = f.replay as string;
  // A file that is not a schedule (or of another version) is a usage error, not a violation.
  let sf: ScheduleFile;
  try {
    sf = readScheduleFile(path);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  for (const k of ['mode', 'jobs', 'iterations', 'duration', 'minimise', 'keep-going', 'record'] as const) {
    if (given[k] !== undefined && !(k === 'mode' && given.mode === 'controlled')) throw new UsageError(`--${k} does not go with --replay (a replay is one controlled run of the file's schedule)`);
  }
  await checkScenario(sf.scenario);
  const builtin = (BUILTIN_SCENARIOS as readonly string[]).includes(sf.scenario);
  const asked: Partial<ScheduleConfig> = { scenarioHash: scenarioHash(pathUrl(sf.scenario), builtin) };
  if (given.scenario !== undefined) asked.scenario = builtin || String(given.scenario).includes('/') ? resolveRef(String(given.scenario)) : String(given.scenario);
  if (given.seed !== undefined) asked.seed = parseSeedFlag(String(given.seed));
  if (given.strategy !== undefined) asked.strategy = String(given.strategy);
  if (given.gic !== undefined) asked.gic = given.gic as 'v2' | 'v3';
  if (given.vcpus !== undefined) asked.vcpus = given.vcpus as number;
  if (given.size !== undefined) asked.size = given.size as number;
  if (given.locking !== undefined) asked.locking = given.locking as 'fine' | 'global';
  if (given['lr-policy'] !== undefined) asked.lrPolicy = given['lr-policy'] as 'mainline' | 'classic';
  if (given.bug !== undefined) asked.bugs = bugs;
  const mismatch = scheduleMismatch(sf, asked);
  if (mismatch) throw new UsageError(`cannot replay ${path}: ${mismatch}`);
  const base: StressRunOptions = {
    scenario: sf.scenario, seed: sf.seed, mode: 'controlled', vcpus: sf.vcpus, gic: sf.gic, iterations: sf.size, spis: sf.spis,
    nrLr: sf.nrLr, lrPolicy: sf.lrPolicy, locking: sf.locking, bugs: sf.bugs, replay: fileSwitches(sf), keepHistory: true,
    // A schedule made from a chaos recording counts the ends of satisfied waits as steps.
    pollPoints: sf.recordedFrom !== undefined,
  };
  if (sf.vgicEmu !== packageVersion() || sf.node !== process.version) {
    process.stderr.write(`note: ${path} was recorded by vgic-emu ${sf.vgicEmu} on Node ${sf.node}; this is ${packageVersion()} on ${process.version}\n`);
  }
  const r = await runStress(base);
  // Its own directory: a replay never rewrites its input (nor any other run's files).
  const dir = claimDir(f.out as string, artefactName(r, 'replay-'));
  const files = writeArtifacts(dir, r, sf.switches);
  if (f.junit) {
    writeFileSync(f.junit as string, toJUnitXml('vgic-emu stress', [{ name: `replay of ${path}`, timeSec: r.durationMs / 1000, failure: r.ok ? undefined : failureCase(r, files) }]));
    files.push(f.junit as string);
  }
  const summary = { replay: path, ok: r.ok, divergedAt: r.divergedAt, seed: formatSeed(r.seed), schedule: r.schedule?.hash, files, findings: r.findings.map((x) => ({ kind: x.kind, message: x.message })) };
  if (r.divergedAt !== null) {
    // The run is not the recorded one: whatever it found (or did not) says nothing about the file.
    if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    process.stderr.write(`vgic-emu stress: replay of ${path} diverged at step ${r.divergedAt}: the recorded schedule cannot be followed (another vgic-emu, scenario or configuration?)${r.ok ? '' : `; this run found: ${r.findings[0]?.kind}`}\nwrote ${files.join(', ')}\n`);
    return 2;
  }
  if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    process.stdout.write(r.ok ? `replay of ${path}: no violation (schedule ${r.schedule?.hash})\n` : `${describeFailure(r)}\n`);
    process.stdout.write(`wrote ${files.join(', ')}\n`);
  }
  return r.ok ? 0 : 1;
}

async function campaignCommand(f: Flags, bugs: string[]): Promise<number> {
  const out = f.out as string;
  if (f.record !== undefined && f.mode !== 'chaos') throw new UsageError('--record records a chaos run: it needs --mode chaos (a controlled run writes its schedule anyway)');
  const seed = f.seed !== undefined ? parseSeedFlag(String(f.seed)) : (Math.random() * 2 ** 32) >>> 0;
  const asked = (f.scenario as string | undefined) ?? (bugs.length ? BUG_INFO.find((b) => b.name === bugs[0])!.scenario : 'spi-storm');
  // Several scenarios (`all`, or a comma-separated list): the budget is spread by what each finds.
  const scenarios = asked === 'all' ? [...BUILTIN_SCENARIOS] : asked.split(',').filter(Boolean);
  if (scenarios.length === 0) throw new UsageError('--scenario: no scenario given');
  for (const sc of scenarios) await checkScenario(sc);
  const scenario = scenarios.join(',');
  const base: CampaignOptions['base'] = {
    scenario: scenarios[0]!,
    mode: f.mode as 'controlled' | 'chaos',
    strategy: f.strategy as CampaignStrategy,
    depth: f.depth as number,
    vcpus: f.vcpus as number | undefined,
    iterations: f.size as number | undefined,
    gic: f.gic as 'v2' | 'v3' | undefined,
    locking: f.locking as 'fine' | 'global',
    lrPolicy: f['lr-policy'] as 'mainline' | 'classic',
    bugs,
    keepHistory: true,
    record: f.record !== undefined,
  };

  const t0 = performance.now();
  // --record without a failure keeps the lowest run index's recording.
  let firstRun = null as { index: number; r: StressRunReport } | null;
  let failuresSoFar = 0;
  let explored = 0;
  const runs = (f.iterations as number | undefined) ?? (f.duration ? undefined : 20);
  const shard = f.shard === undefined ? undefined : parseShard(String(f.shard));
  const durationMs = f.duration ? (f.duration as number) * 1000 : undefined;
  // Ctrl-C: stop starting runs, let those under way finish, then report what was measured (a
  // second Ctrl-C kills at once: the handler is a one-shot). Installed before anything is printed:
  // a user (or a test) reacting to the first line must find it in place.
  const ac = new AbortController();
  const onInt = (): void => {
    ac.abort();
    process.stderr.write('\ninterrupted: finishing the runs under way (Ctrl-C again to kill)\n');
  };
  process.once('SIGINT', onInt);
  // The seed first, so that an interrupted or crashed campaign can still be rerun.
  process.stderr.write(`vgic-emu stress: ${scenario} (${base.mode}), campaign seed ${formatSeed(seed)}\n`);
  const progress = new Progress({ label: `${scenario} (${base.mode})`, total: runs, budgetMs: durationMs, suffix: `seed ${formatSeed(seed)}` });
  let campaign: CampaignResult;
  try {
    campaign = await runCampaign({
      base: { ...base, keepHistory: true },
      seed,
      runs,
      durationMs,
      jobs: f.jobs as number,
      keepGoing: f['keep-going'] === true,
      signal: ac.signal,
      shard,
      scenarios: scenarios.length > 1 ? scenarios : undefined,
      onRun: (r, done, index) => {
        if (!r.ok) failuresSoFar++;
        if (base.record && (!firstRun || index < firstRun.index)) firstRun = { index, r };
        if (r.schedule) explored++;
        progress.update(done, `${explored} schedules explored, ${failuresSoFar} failures`);
      },
    });
  } finally {
    process.off('SIGINT', onInt);
    progress.done();
  }
  const seconds = (performance.now() - t0) / 1000;
  const failed = campaign.failures[0];
  const files: string[] = [];
  let minimised: string | null = null;
  let report = failed;
  if (failed) {
    if (f.minimise && failed.schedule && !campaign.aborted) {
      const mp = new Progress({ label: 'minimising', suffix: `seed ${formatSeed(failed.seed)}` });
      // The failing run's own strategy (a mixed campaign gives each run its own).
      const strategy = failed.strategy === 'pct' || failed.strategy === 'random' ? failed.strategy : undefined;
      const m = await minimiseSchedule({ ...base, scenario: failed.scenarioRef, seed: failed.seed, strategy, depth: failed.depth }, failed, {
        onTrial: (t, n, bad) => mp.update(t, `trial ${t}: ${n} switches, ${bad ? 'still fails' : 'passes'}`),
      });
      mp.done();
      report = m.report;
      minimised = `minimised: ${m.preemptionsBefore} -> ${m.preemptions} preemptions in ${m.trials} trials (still fails with ${report.findings[0]?.kind})`;
    }
    files.push(...writeArtifacts(claimDir(out, artefactName(report!)), report!));
  }
  const recorded = base.record ? await writeChaosRecording(f.record as string, base, failed ?? firstRun?.r ?? null) : null;
  if (recorded) files.push(recorded.file);
  const filesOf = new Map<number, string[]>(failed ? [[failed.seed, files]] : []);
  if (f.junit) {
    // One testcase per seed, in campaign order; each failure carries its repro line and files.
    const bySeed = new Map(campaign.failures.map((r) => [r.seed, r]));
    const cases: JUnitCase[] = campaign.results.map((x) => {
      const r = bySeed.get(x.seed);
      return { name: `${x.scenario} seed ${formatSeed(x.seed)}`, timeSec: x.durationMs / 1000, failure: r ? failureCase(r === failed ? report! : r, filesOf.get(x.seed) ?? []) : x.ok ? undefined : { message: 'failed (see the campaign report)', details: '' } };
    });
    writeFileSync(f.junit as string, toJUnitXml('vgic-emu stress', cases));
    files.push(f.junit as string);
  }
  const repro = failed ? `${reproLine(failed)}` : null;
  const replay = files.find((p) => p.endsWith('schedule.json'));
  const summary = {
    scenario,
    mode: base.mode,
    campaignSeed: formatSeed(seed),
    runs: campaign.runs,
    interrupted: campaign.aborted,
    failures: campaign.failures.length,
    schedulesExplored: campaign.schedulesExplored,
    schedulePointsPerSecond: campaign.schedulePoints / seconds,
    seconds,
    repro,
    replay: recorded ? `npx vgic-emu stress --replay ${recorded.file}` : replay ? `npx vgic-emu stress --replay ${replay}` : null,
    ...(recorded ? { recording: recorded } : {}),
    files,
    ...(failed ? { failure: { seed: formatSeed(failed.seed), confirmed: failed.confirmed ?? null, findings: failed.findings.map((x) => ({ kind: x.kind, message: x.message })) } } : {}),
    // What `vgic-emu merge` combines: the configuration, this shard, every run and every failure.
    config: { strategy: base.strategy, depth: base.depth, vcpus: base.vcpus ?? null, size: base.iterations ?? null, gic: base.gic ?? null, locking: base.locking, lrPolicy: base.lrPolicy, bugs: base.bugs },
    shard: shard ? `${shard.index + 1}/${shard.count}` : null,
    results: campaign.results.map((x) => ({ index: x.index, seed: formatSeed(x.seed), ...(scenarios.length > 1 ? { scenario: x.scenario } : {}), ok: x.ok, durationMs: Math.round(x.durationMs) })),
    ...(campaign.budget ? { budget: campaign.budget } : {}),
    failureList: campaign.failures.map((r) => ({
      index: campaign.results.find((x) => x.seed === r.seed)?.index ?? -1, seed: formatSeed(r.seed), repro: reproLine(r), confirmed: r.confirmed ?? null,
      findings: r.findings.map((x) => ({ kind: x.kind, message: x.message })), files: filesOf.get(r.seed) ?? [],
    })),
  };
  if (!f.json && campaign.budget) {
    process.stdout.write(`budget: ${campaign.budget.map((b) => `${b.scenario} ${b.runs} runs (${b.covered} transitions${b.findings.length ? `, found ${b.findings.join('+')}` : ''})`).join('; ')}\n`);
  }
  if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else if (!failed) {
    const what = campaign.aborted ? `interrupted after ${campaign.runs} runs` : `${campaign.runs} runs`;
    process.stdout.write(`ok: ${what} of ${scenario} (${base.mode}), campaign seed ${summary.campaignSeed}, no violation${recorded ? `\n${recordingLine(recorded)}` : ''}${files.length ? `\nwrote ${files.join(', ')}` : ''}\n`);
  } else {
    const lines = [describeFailure(failed)];
    if (minimised) lines.push(minimised);
    lines.push(`repro: ${repro}${reproNote(failed)}`);
    if (recorded) lines.push(recordingLine(recorded), `   or: npx vgic-emu stress --replay ${recorded.file}`);
    if (replay) lines.push(`   or: npx vgic-emu stress --replay ${replay}`);
    lines.push(`wrote ${files.join(', ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  if (failed) return 1;
  return campaign.aborted ? 130 : 0;
}

interface ChaosRecordingSummary {
  file: string;
  seed: string;
  points: number;
  chaosFailed: boolean;
  replayFailed: boolean;
  replayFindings: string[];
}

/**
 * --record: replay the chosen chaos run's recorded order once under the controlled scheduler and
 * write that replay's schedule (plus the recording) to `file`. From then on the file replays
 * exactly, like any controlled schedule; whether it fails as the chaos run did is said here.
 */
async function writeChaosRecording(file: string, base: CampaignOptions['base'], r: StressRunReport | null): Promise<ChaosRecordingSummary | null> {
  if (!r?.recording) return null;
  const { strategy: _s, record: _r, ...rest } = base;
  const rep = await runStress({ ...rest, scenario: r.scenarioRef, mode: 'controlled', seed: r.seed, replayOrder: r.recording.order });
  const sf = toScheduleFile(scheduleConfig(rep), rep.schedule!.switches);
  sf.recordedFrom = {
    mode: 'chaos', chaosFailed: !r.ok, replayFailed: !rep.ok, points: r.recording.order.length, truncated: r.recording.truncated,
    reordered: rep.order?.reordered ?? 0, leftAt: rep.order?.leftAt ?? null, order: encodeOrder(r.recording.order),
  };
  writeScheduleFile(file, sf);
  return { file, seed: formatSeed(r.seed), points: sf.recordedFrom.points, chaosFailed: !r.ok, replayFailed: !rep.ok, replayFindings: rep.findings.map((x) => `${x.kind}: ${x.message}`) };
}

function recordingLine(c: ChaosRecordingSummary): string {
  const verdict = c.replayFailed ? `fails under the controlled scheduler too (${c.replayFindings[0] ?? 'failed'})` : c.chaosFailed ? 'passes under the controlled scheduler: the recorded order did not reproduce the failure' : 'passes under the controlled scheduler';
  return `recorded: ${c.points} schedule points of seed ${c.seed} in ${c.file}; replayed in that order, it ${verdict}`;
}

function parseSeedFlag(s: string): number {
  try {
    return parseSeed(s);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function resolveRef(s: string): string {
  return (BUILTIN_SCENARIOS as readonly string[]).includes(s) ? s : resolve(s);
}

function pathUrl(ref: string): string {
  return (BUILTIN_SCENARIOS as readonly string[]).includes(ref) ? '' : pathToFileURL(ref).href;
}

/** --shard i/n (1-based i): the slice of run indices k with k % n === i - 1. */
function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const i = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || n < 1 || i < 1 || i > n || n > 10_000) throw new UsageError(`--shard must be i/n with 1 <= i <= n, got '${s}'`);
  return { index: i - 1, count: n };
}
