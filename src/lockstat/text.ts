/** The lockstat report as text: configurations, fine/global, the lock_stat tables, exits. */
import type { LockClassStats } from '../kvm/vm.js';
import type { ConfigReport, LockstatReport } from './campaign.js';
import type { Spread } from './summary.js';

const fmtN = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : String(Math.round(x)));
/** ns -> a short duration. */
export function fmtNs(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)}us`;
  return `${Math.round(ns)}ns`;
}
const sp = (s: Spread, f: (x: number) => string): string => (s.min === s.max ? f(s.median) : `${f(s.median)} [${f(s.min)}-${f(s.max)}]`);
const OVER = 'OVERSUBSCRIBED';

/** /proc/lock_stat's columns, one row per class, then its contention points. */
export function lockStatTable(rows: readonly LockClassStats[], timed: boolean): string[] {
  const head = ['class', 'con-bounces', 'contentions', 'waittime-min', 'waittime-max', 'waittime-total', 'waittime-avg', 'acq-bounces', 'acquisitions', 'holdtime-min', 'holdtime-max', 'holdtime-total', 'holdtime-avg'];
  const t = (x: number): string => (timed ? fmtNs(x) : '-');
  const body = rows.map((c) => [c.name, String(c.conBounces), String(c.contentions), t(c.waitMinNs), t(c.waitMaxNs), t(c.waitNs), t(c.waitAvgNs), timed ? String(c.acqBounces) : '-', String(c.acquisitions), t(c.holdMinNs), t(c.holdMaxNs), t(c.holdNs), t(c.holdAvgNs)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]): string => '    ' + r.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  const out = [line(head), ...body.map(line)];
  for (const c of rows) {
    for (const p of c.points) out.push(`      ${c.name}: ${p.contentions} x ${p.waiter} waiting on ${p.holder}${timed ? ` (${fmtNs(p.waitNs)} waited)` : ''}`);
    for (const i of (c.instances ?? []).filter((x) => x.instance >= 0)) out.push(`      ${c.name} ${i.label}: ${i.contentions} contentions, ${i.conBounces} bounces${timed ? `, ${fmtNs(i.waitNs)} waited` : ''}`);
  }
  return out;
}

function configLine(c: ConfigReport): string {
  return `  ${c.locking.padEnd(6)} ${String(c.vcpus).padStart(3)} vCPUs  ${String(c.threads).padStart(3)} threads  ${sp(c.throughput, fmtN).padStart(24)}/s  p50 ${sp(c.latencyP50Ns, fmtNs)}  p99 ${sp(c.latencyP99Ns, fmtNs)}  max ${sp(c.latencyMaxNs, fmtNs)}${c.oversubscribed ? `  ${OVER}` : ''}`;
}

export function formatReport(r: LockstatReport): string {
  const timed = r.statsMode === 'timed';
  const out: string[] = [];
  out.push(`vgic-emu lockstat: workload '${r.workload.name}' (${r.workload.description})`);
  out.push(`  ${r.cores} cores; ${r.seconds}s per run, ${r.repeat} repeat(s), lock statistics '${r.statsMode}'${r.interrupted ? '; INTERRUPTED: partial results' : ''}`);
  const over = r.configs.filter((c) => c.oversubscribed).length;
  if (over > 0) out.push(`  ${over} of ${r.configs.length} configurations have more busy threads than cores (${OVER}): threads take turns on the cores, so a preempted lock holder stalls every waiter and 'global' vs 'fine' measures the scheduler as much as the locks.`);
  if (r.timedOverhead) {
    const o = r.timedOverhead;
    out.push(`  timed-mode cost: uncontended acquire+release ${o.fastPathNs.counts}ns counting, ${o.fastPathNs.timed}ns timed (x${o.fastPathRatio}; ${o.fastPathNs.off}ns with statistics off)`);
    if (o.endToEnd) out.push(`  timed-mode cost end to end (${o.endToEnd.workload}, ${o.endToEnd.vcpus} vCPUs, ${o.endToEnd.seconds}s each): ${fmtN(o.endToEnd.countsThroughput)}/s counting, ${fmtN(o.endToEnd.timedThroughput)}/s timed (x${o.endToEnd.ratio})`);
  }
  out.push('', 'throughput (interrupts acknowledged/s) and inject->ack latency: median [min-max] over the repeats');
  for (const c of r.configs) out.push(configLine(c));
  if (r.ratios.length > 0) {
    out.push('', 'fine / global throughput (median [least-most favourable pairing]):');
    for (const x of r.ratios) out.push(`  ${String(x.vcpus).padStart(3)} vCPUs  x${sp(x.fineOverGlobal, (v) => v.toFixed(2))}${x.oversubscribed ? `  ${OVER}` : ''}`);
  }
  for (const c of r.configs) {
    out.push('', `lock_stat: ${c.locking}, ${c.vcpus} vCPUs (the median repeat)${c.oversubscribed ? `  ${OVER}` : ''}`);
    out.push(...lockStatTable(c.lockStats, timed));
    const ex = Object.entries(c.exitsPerSec).filter(([, s]) => s.max > 0).map(([k, s]) => `${k} ${sp(s, fmtN)}`);
    out.push(`    exits/s: ${ex.length ? ex.join(', ') : 'none'}`);
  }
  return out.join('\n') + '\n';
}
