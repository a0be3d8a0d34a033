/**
 * The mutation report: kill rate (killed, timeout and crash over every valid, non-flaky mutant), kills per
 * detector (the first finding kind of the failing run), and each survivor with its .ts line, the
 * operator and the source line mutated.
 */
import type { MutantResult, Status } from './runner.js';

export interface Summary {
  total: number;
  valid: number;
  byStatus: Record<Status, number>;
  /** (killed + timeout + crash) / valid, 0..1 (NaN with no valid mutant). */
  killRate: number;
  /** Kills per detector: finding kind, or `timeout` / `crash`. */
  byDetector: Record<string, number>;
  /** Per operator: valid mutants and how many were killed. */
  byOperator: Record<string, { valid: number; killed: number }>;
  survivors: MutantResult[];
  all: readonly MutantResult[];
}

const KILLED: ReadonlySet<Status> = new Set(['killed', 'timeout', 'crash']);

export function summarise(results: readonly MutantResult[]): Summary {
  const byStatus: Record<Status, number> = { killed: 0, timeout: 0, crash: 0, survived: 0, invalid: 0, flaky: 0 };
  const byDetector: Record<string, number> = {};
  const byOperator: Record<string, { valid: number; killed: number }> = {};
  for (const r of results) {
    byStatus[r.status]++;
    if (r.status === 'invalid' || r.status === 'flaky') continue;
    const op = (byOperator[r.operator] ??= { valid: 0, killed: 0 });
    op.valid++;
    if (KILLED.has(r.status)) {
      op.killed++;
      const d = r.detector ?? r.status;
      byDetector[d] = (byDetector[d] ?? 0) + 1;
    }
  }
  const valid = results.length - byStatus.invalid - byStatus.flaky;
  const killed = byStatus.killed + byStatus.timeout + byStatus.crash;
  const survivors = results.filter((r) => r.status === 'survived').sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return { total: results.length, valid, byStatus, killRate: valid ? killed / valid : NaN, byDetector, byOperator, survivors, all: results };
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');

/** The printed report. */
export function formatReport(s: Summary, opts: { interrupted?: boolean; planned?: number } = {}): string {
  const lines: string[] = [];
  const b = s.byStatus;
  const killed = b.killed + b.timeout + b.crash;
  if (opts.interrupted) lines.push(`interrupted: ${s.total} of ${opts.planned ?? '?'} mutants measured`);
  lines.push(`mutants: ${s.total} (${s.valid} valid, ${b.invalid} invalid, ${b.flaky} flaky: the unmutated model fails the same way)`);
  lines.push(`kill rate: ${pct(s.killRate)} (${killed}/${s.valid}: ${b.killed} by a finding, ${b.timeout} timeout, ${b.crash} crash; ${b.survived} survived)`);
  lines.push('', 'kills per detector:');
  for (const [d, n] of Object.entries(s.byDetector).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))) {
    lines.push(`  ${d.padEnd(24)} ${String(n).padStart(4)}`);
  }
  lines.push('', 'per operator (killed/valid):');
  for (const [op, v] of Object.entries(s.byOperator).sort((x, y) => x[0].localeCompare(y[0]))) {
    lines.push(`  ${op.padEnd(24)} ${String(v.killed).padStart(4)}/${v.valid}`);
  }
  const flaky = s.all.filter((r) => r.status === 'flaky');
  if (flaky.length) {
    lines.push('', 'flaky (excluded: the unmutated model fails the same way):');
    for (const r of flaky) lines.push(`  ${r.id.padEnd(5)} ${`${r.file}:${r.line}`.padEnd(36)} ${r.scenario ? `${r.scenario} ${r.mode}` : 'campaign'}: ${r.message}`);
  }
  lines.push('', `survivors (${s.survivors.length}):`);
  for (const r of s.survivors) {
    lines.push(`  ${r.id.padEnd(5)} ${`${r.file}:${r.line}`.padEnd(36)} ${r.operator.padEnd(14)} ${r.description}`);
    lines.push(`        | ${r.source}`);
  }
  return `${lines.join('\n')}\n`;
}
