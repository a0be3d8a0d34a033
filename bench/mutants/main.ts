/**
 * `npm run mutants [-- options]`: how much of what can go wrong in src/vgic, src/kvm and
 * src/eventfd the stress tester notices. Samples mutants of the compiled modules (operators.ts),
 * runs a short stress campaign against each in a private copy of the package (probe.ts), and
 * prints the kill rate, the kills per detector and every survivor. A tool, not a CI step.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec, type Flags } from '../../src/cli/args.js';
import { PACKAGE_ROOT } from '../../src/kvm/worker-path.js';
import { formatSeed, parseSeed } from '../../src/sched/prng.js';
import { BUILTIN_SCENARIOS } from '../../src/stress/scenarios/index.js';
import { OPERATORS, type OperatorName } from './operators.js';
import type { ProbeConfig } from './probe.js';
import { formatReport, summarise } from './report.js';
import { baseline, runMutants, type MutantResult } from './runner.js';
import { resumable } from './resume.js';
import { enumerateMutants, sample, type Sampling } from './sampler.js';

const FLAGS: FlagSpec[] = [
  { name: 'count', kind: 'number', integer: true, min: 1, default: 100, help: 'mutants to sample' },
  { name: 'seed', kind: 'string', default: '1', help: 'sampling seed (decimal or 0x hex)' },
  { name: 'files', kind: 'string', default: '**', help: 'glob on the .ts path (e.g. src/vgic/**,src/eventfd/*.ts)' },
  { name: 'sampling', kind: 'string', choices: ['stratified', 'uniform'], default: 'stratified', help: 'stratified: operators take turns; uniform: every site alike' },
  { name: 'operators', kind: 'string', default: OPERATORS.join(','), help: 'operators to use, comma-separated' },
  { name: 'jobs', kind: 'number', integer: true, min: 1, max: 16, default: 1, help: 'mutants run in parallel' },
  { name: 'scenarios', kind: 'string', default: BUILTIN_SCENARIOS.join(','), help: 'scenarios of the probe campaign' },
  { name: 'controlled-runs', kind: 'number', integer: true, min: 0, default: 2, help: 'controlled-mode runs per scenario' },
  { name: 'chaos-runs', kind: 'number', integer: true, min: 0, default: 1, help: 'chaos-mode runs per scenario' },
  { name: 'campaign-seed', kind: 'string', default: '1', help: 'the probe campaign seed (the same for every mutant)' },
  { name: 'timeout', kind: 'number', min: 1, help: 'seconds per mutant before it counts as killed (timeout); default 4x the unmutated campaign, at least 60' },
  { name: 'json', kind: 'string', help: 'also write the full report (every mutant) as JSON to this file' },
  { name: 'resume', kind: 'string', help: 'a --json report of the same sample: keep its results, run the rest (and its timeouts again)' },
  { name: 'only', kind: 'string', help: 'run only these mutants of the sample, by id (m3,m17)' },
  { name: 'list', kind: 'boolean', help: 'print the sampled mutants and exit' },
  HELP_FLAG,
];
const USAGE = `usage: npm run mutants -- [options]\n\n${flagHelp(FLAGS)}\n`;

let f: Flags;
let seed: number;
let campaignSeed: number;
let operators: OperatorName[];
try {
  f = parseFlags(process.argv.slice(2), FLAGS);
  seed = parseSeed(String(f.seed));
  campaignSeed = parseSeed(String(f['campaign-seed']));
  operators = String(f.operators).split(',').map((s) => s.trim()) as OperatorName[];
  const bad = operators.filter((o) => !OPERATORS.includes(o));
  if (bad.length) throw new UsageError(`unknown operator(s) ${bad.join(', ')}; known: ${OPERATORS.join(', ')}`);
  const badScen = String(f.scenarios).split(',').filter((s) => !(BUILTIN_SCENARIOS as readonly string[]).includes(s));
  if (badScen.length) throw new UsageError(`unknown scenario(s) ${badScen.join(', ')}`);
} catch (e) {
  process.stderr.write(`mutants: ${(e as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (f.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const all = enumerateMutants(PACKAGE_ROOT, join(PACKAGE_ROOT, 'dist'), String(f.files), operators);
const sampled = sample(all, f.count as number, seed, f.sampling as Sampling);
const only = f.only === undefined ? null : new Set(String(f.only).split(',').map((x) => x.trim()));
const unknown = only ? [...only].filter((id) => !sampled.some((m) => m.id === id)) : [];
if (unknown.length) {
  process.stderr.write(`mutants: --only names ${unknown.join(', ')}, not in the sample (m0..m${sampled.length - 1})\n`);
  process.exit(2);
}
const chosen = only ? sampled.filter((m) => only.has(m.id)) : sampled;
let kept: MutantResult[] = [];
if (f.resume !== undefined) {
  try {
    kept = resumable(JSON.parse(readFileSync(String(f.resume), 'utf8')) as { mutants?: MutantResult[] }, chosen);
  } catch (e) {
    process.stderr.write(`mutants: cannot read --resume ${String(f.resume)}: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
const mutants = chosen.filter((m) => !kept.some((k) => k.id === m.id));
const say = (s: string): void => void process.stdout.write(s);
const progress = (s: string): void => void process.stderr.write(`${s}\n`);
progress(`mutants: ${all.length} sites in ${String(f.files)}, sampled ${sampled.length} with seed ${formatSeed(seed)}${only ? `, ${chosen.length} of them chosen` : ''}${f.resume !== undefined ? `, ${kept.length} results kept from ${String(f.resume)}` : ''}`);
if (f.list) {
  for (const m of mutants) say(`${m.id.padEnd(5)} ${`${m.file}:${m.line}`.padEnd(36)} ${m.operator.padEnd(14)} ${m.description}\n`);
  process.exit(0);
}

const probe: ProbeConfig = {
  scenarios: String(f.scenarios).split(','),
  modes: ['controlled', 'chaos'],
  runs: { controlled: f['controlled-runs'] as number, chaos: f['chaos-runs'] as number },
  seed: campaignSeed,
  runTimeoutMs: 10_000,
};
const workDir = mkdtempSync(join(tmpdir(), 'vgic-emu-mutants-'));
const ac = new AbortController();
let results: MutantResult[] = [];
process.on('SIGINT', () => {
  if (ac.signal.aborted) process.exit(130);
  progress('\ninterrupted: stopping the mutants under way (Ctrl-C again to quit at once)');
  ac.abort();
});

try {
  const base = await baseline({ root: PACKAGE_ROOT, workDir, probe, timeoutMs: 600_000, signal: ac.signal });
  if (!base.ok) {
    progress(`mutants: the unmutated model fails the probe campaign (${base.why}); fix that first`);
    process.exitCode = 2;
  } else {
    const timeoutMs = f.timeout !== undefined ? (f.timeout as number) * 1000 : Math.max(60_000, 4 * base.ms);
    progress(`mutants: unmutated probe campaign passes in ${(base.ms / 1000).toFixed(1)} s; timeout per mutant ${(timeoutMs / 1000).toFixed(0)} s, jobs ${String(f.jobs)}`);
    results = [...kept, ...await runMutants(
      {
        root: PACKAGE_ROOT, workDir, jobs: f.jobs as number, probe, timeoutMs, signal: ac.signal,
        onResult: (r, n) => {
          const where = r.scenario ? ` (${r.scenario} ${r.mode})` : '';
          progress(`[${n}/${mutants.length}] ${r.id} ${r.file}:${r.line} ${r.operator} ${r.description}: ${r.status}${r.detector && r.status === 'killed' ? ` by ${r.detector}` : ''}${where} ${(r.ms / 1000).toFixed(1)}s`);
        },
      },
      mutants,
    )];
    const order = new Map(chosen.map((m, i) => [m.id, i]));
    results.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    const s = summarise(results);
    say(formatReport(s, { interrupted: ac.signal.aborted, planned: chosen.length }));
    if (f.json) {
      const report = {
        seed: formatSeed(seed), files: f.files, count: chosen.length, resumedFrom: f.resume ?? null, kept: kept.length, sites: all.length, operators, probe, timeoutMs,
        baselineMs: Math.round(base.ms), interrupted: ac.signal.aborted, summary: { ...s, all: undefined, survivors: s.survivors.map((r) => r.id) }, mutants: results,
      };
      writeFileSync(String(f.json), `${JSON.stringify(report, null, 2)}\n`);
      progress(`mutants: wrote ${String(f.json)}`);
    }
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
