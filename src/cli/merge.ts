/**
 * `vgic-emu merge`: combine the --json summaries (and so the JUnit) of the shards of one stress
 * campaign (`vgic-emu stress --shard i/n --json`) into one report, equal to the report the whole
 * campaign run on one machine would give: every run once, in campaign order, and as the reported
 * failure the one with the lowest run index. Shards of different campaigns are refused (exit 2).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { flagHelp, HELP_FLAG, parseCommandLine, UsageError, type FlagSpec } from './args.js';
import { toJUnitXml, type JUnitCase } from '../check/report-junit.js';

export const MERGE_FLAGS: FlagSpec[] = [
  { name: 'json', kind: 'string', help: 'write the merged summary (the schema of stress --json) to this file' },
  { name: 'junit', kind: 'string', help: 'write a JUnit XML report of the merged campaign (one testcase per seed)' },
  HELP_FLAG,
];

export const MERGE_USAGE = `usage: vgic-emu merge SHARD.json... [options]

SHARD.json: the --json output of \`vgic-emu stress --shard i/n\` for each shard of one campaign.
Exit codes: 0 no violation in any shard, 1 a violation, 2 usage error (shards of different
campaigns, a run in two shards, a file that is no stress summary).

${flagHelp(MERGE_FLAGS)}
`;

interface RunResult { index: number; seed: string; ok: boolean; durationMs: number }
interface FailureEntry { index: number; seed: string; repro: string; findings: { kind: string; message: string }[]; files: string[] }
interface Summary {
  scenario: string; mode: string; campaignSeed: string; config: unknown; shard: string | null;
  runs: number; results: RunResult[]; failureList: FailureEntry[]; interrupted?: boolean;
}

function readSummary(path: string): Summary {
  let s: Summary;
  try {
    // `vgic-emu stress --json > file` may leave progress on stderr only: stdout is the JSON.
    s = JSON.parse(readFileSync(path, 'utf8')) as Summary;
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (!s || typeof s !== 'object' || !Array.isArray(s.results) || !Array.isArray(s.failureList) || typeof s.campaignSeed !== 'string') {
    throw new UsageError(`${path} is not the --json summary of a vgic-emu stress campaign`);
  }
  return s;
}

export interface MergedCampaign {
  scenario: string; mode: string; campaignSeed: string; config: unknown;
  shards: string[]; missingShards: string[]; interrupted: boolean; runs: number; failures: number;
  results: RunResult[]; failureList: FailureEntry[];
  failure: FailureEntry | null; repro: string | null;
}

export function mergeSummaries(paths: readonly string[]): MergedCampaign {
  if (paths.length === 0) throw new UsageError('give the --json summaries of the shards to merge');
  const all = paths.map((p) => ({ p, s: readSummary(p) }));
  const first = all[0]!.s;
  const key = (s: Summary): string => JSON.stringify([s.scenario, s.mode, s.campaignSeed, s.config]);
  for (const { p, s } of all) {
    if (key(s) !== key(first)) throw new UsageError(`${p} is a shard of another campaign (scenario, mode, seed or configuration differ from ${all[0]!.p})`);
  }
  const byIndex = new Map<number, RunResult>();
  for (const { p, s } of all) {
    for (const r of s.results) {
      if (byIndex.has(r.index)) throw new UsageError(`run ${r.index} (seed ${r.seed}) is in two shards (${p})`);
      byIndex.set(r.index, r);
    }
  }
  const results = [...byIndex.values()].sort((a, b) => a.index - b.index);
  const failureList = all.flatMap(({ s }) => s.failureList).sort((a, b) => a.index - b.index);
  const shards = all.map(({ s }) => s.shard ?? '1/1');
  const n = Number(shards[0]!.split('/')[1]);
  const missingShards = Array.from({ length: n }, (_, i) => `${i + 1}/${n}`).filter((x) => !shards.includes(x));
  const failure = failureList[0] ?? null;
  return {
    scenario: first.scenario, mode: first.mode, campaignSeed: first.campaignSeed, config: first.config,
    shards, missingShards, interrupted: all.some(({ s }) => s.interrupted === true),
    runs: results.length, failures: failureList.length, results, failureList, failure, repro: failure?.repro ?? null,
  };
}

export function mergeCommand(argv: string[]): number {
  const { flags: f, positionals: paths } = parseCommandLine(argv, MERGE_FLAGS);
  if (f.help) {
    process.stdout.write(MERGE_USAGE);
    return 0;
  }
  const m = mergeSummaries(paths);
  if (f.json) writeFileSync(f.json as string, `${JSON.stringify(m, null, 2)}\n`);
  if (f.junit) {
    const cases: JUnitCase[] = m.results.map((r) => {
      const bad = m.failureList.find((x) => x.index === r.index);
      return {
        name: `${m.scenario} seed ${r.seed}`, timeSec: r.durationMs / 1000,
        failure: bad ? { message: bad.findings[0]?.message ?? 'failed', details: [`repro: ${bad.repro}`, ...(bad.files.length ? [`artefacts: ${bad.files.join(', ')}`] : []), '', ...bad.findings.map((x) => `${x.kind}: ${x.message}`)].join('\n') } : undefined,
      };
    });
    writeFileSync(f.junit as string, toJUnitXml('vgic-emu stress', cases));
  }
  const head = `merged ${m.shards.length} shard(s) of ${m.scenario} (${m.mode}), campaign seed ${m.campaignSeed}: ${m.runs} runs`;
  const gaps = m.missingShards.length ? ` (missing shards: ${m.missingShards.join(', ')})` : '';
  process.stdout.write(m.failure ? `${head}${gaps}, ${m.failures} failing; first: run ${m.failure.index} seed ${m.failure.seed}: ${m.failure.findings[0]?.kind}: ${m.failure.findings[0]?.message}\nrepro: ${m.failure.repro}\n` : `${head}${gaps}, no violation\n`);
  return m.failure ? 1 : 0;
}
