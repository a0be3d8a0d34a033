/**
 * `vgic-emu lockstat`: lock-contention benchmarking (lockstat/campaign.ts). Text report on
 * stdout, JSON (--json FILE, `-` for stdout instead of the text) and a self-contained HTML
 * report with plots (--html FILE). Progress with elapsed time and ETA on stderr. Ctrl-C stops
 * the run under way at once, keeps what was measured and reports it (exit 130); a second
 * Ctrl-C kills.
 */
import { writeFileSync } from 'node:fs';
import { flagHelp, HELP_FLAG, parseFlags, UsageError, type FlagSpec } from './args.js';
import { Progress } from './progress.js';
import { runLockstat } from '../lockstat/campaign.js';
import { formatHtml } from '../lockstat/html.js';
import { formatReport } from '../lockstat/text.js';
import { BUILTIN_WORKLOADS, loadWorkload } from '../lockstat/workloads.js';
import type { LockingMode } from '../vgic/host.js';

const MAX_VCPUS = 64;

export const LOCKSTAT_FLAGS: FlagSpec[] = [
  { name: 'workload', kind: 'string', default: 'mixed', help: `built-in (${BUILTIN_WORKLOADS.map((w) => w.name).join(', ')}) or a module path (see README)` },
  { name: 'locking', kind: 'string', default: 'fine,global', help: "lock designs to compare, comma-separated: 'fine' (2016+), 'global' (2014)" },
  { name: 'vcpus', kind: 'string', default: '1,2,4,8', help: `vCPU counts, comma-separated (1..${MAX_VCPUS})` },
  { name: 'seconds', kind: 'number', min: 0.05, max: 3600, default: 2, help: 'measured window of each run' },
  { name: 'repeat', kind: 'number', integer: true, min: 1, max: 100, default: 3, help: 'runs per configuration (reported as median and min-max)' },
  { name: 'stats', kind: 'string', choices: ['timed', 'counts'], default: 'timed', help: "lock statistics: 'timed' (wait/hold times, histogram, swimlane) or 'counts'" },
  { name: 'no-overhead', kind: 'boolean', help: "skip measuring what 'timed' statistics cost" },
  { name: 'json', kind: 'string', help: "write every number as JSON to this file ('-': stdout, instead of the text)" },
  { name: 'html', kind: 'string', help: 'write a self-contained HTML report with plots to this file' },
  { name: 'list', kind: 'boolean', help: 'list the built-in workloads, then exit' },
  HELP_FLAG,
];

export const LOCKSTAT_USAGE = `usage: vgic-emu lockstat [options]

Runs every (locking, vCPUs) configuration --repeat times for --seconds each and reports
throughput, inject->ack latency, the lock_stat table and exits per reason, with 'fine'
against 'global' as a ratio. Configurations with more busy threads than cores are marked
OVERSUBSCRIBED.

Exit codes: 0 done, 1 a run failed, 2 usage error, 130 interrupted (partial report written).

${flagHelp(LOCKSTAT_FLAGS)}
`;

function list<T>(raw: string, flag: string, parse: (s: string) => T): T[] {
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.some((s) => s === '')) throw new UsageError(`--${flag} needs a comma-separated list, got '${raw}'`);
  const out = parts.map(parse);
  if (new Set(out).size !== out.length) throw new UsageError(`--${flag} lists a value twice: '${raw}'`);
  return out;
}

export async function lockstatCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, LOCKSTAT_FLAGS);
  if (f.help) {
    process.stdout.write(LOCKSTAT_USAGE);
    return 0;
  }
  if (f.list) {
    process.stdout.write(BUILTIN_WORKLOADS.map((w) => `  ${w.name.padEnd(8)} ${w.description}\n`).join(''));
    return 0;
  }
  const locking = list(String(f.locking), 'locking', (s) => {
    if (s !== 'fine' && s !== 'global') throw new UsageError(`--locking: each value must be fine or global, got '${s}'`);
    return s as LockingMode;
  });
  const vcpus = list(String(f.vcpus), 'vcpus', (s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > MAX_VCPUS) throw new UsageError(`--vcpus: each value must be a whole number in 1..${MAX_VCPUS}, got '${s}'`);
    return n;
  }).sort((a, b) => a - b);
  let workload;
  try {
    workload = await loadWorkload(String(f.workload));
  } catch (e) {
    throw new UsageError(`--workload: ${(e as Error).message}`);
  }
  for (const v of vcpus) {
    try {
      workload.plan(v);
    } catch (e) {
      throw new UsageError(`--workload: ${(e as Error).message}`);
    }
  }
  const jsonFile = f.json as string | undefined;
  const htmlFile = f.html as string | undefined;
  let interrupted = false;
  const onInt = (): void => {
    interrupted = true;
    process.stderr.write('\ninterrupted: reporting what was measured (Ctrl-C again to kill)\n');
  };
  process.once('SIGINT', onInt);
  process.stderr.write(`vgic-emu lockstat: workload ${workload.name}, locking ${locking.join(',')}, vCPUs ${vcpus.join(',')}, ${f.seconds}s x ${f.repeat}\n`);
  let progress: Progress | null = null;
  let report;
  try {
    report = await runLockstat({
      workload, locking, vcpus, seconds: f.seconds as number, repeat: f.repeat as number,
      statsMode: f.stats as 'timed' | 'counts', overhead: f['no-overhead'] !== true,
      aborted: () => interrupted,
      // Runs done of all runs (the ETA follows from them), and the one under way.
      onProgress: (done, total, detail) => (progress ??= new Progress({ label: 'lockstat runs', total, suffix: workload.name })).update(Math.floor(done), detail),
    });
  } finally {
    process.off('SIGINT', onInt);
    (progress as Progress | null)?.done();
  }
  const json = JSON.stringify(report, null, 2) + '\n';
  if (jsonFile && jsonFile !== '-') writeFileSync(jsonFile, json);
  if (htmlFile) writeFileSync(htmlFile, formatHtml(report));
  process.stdout.write(jsonFile === '-' ? json : formatReport(report));
  return report.interrupted ? 130 : 0;
}
