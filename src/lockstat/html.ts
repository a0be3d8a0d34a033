/**
 * The lockstat report as one self-contained HTML file: inline SVG plots (lockstat/svg.ts), the
 * tables behind them, no scripts, no external resources.
 */
import type { ConfigReport, LockstatReport } from './campaign.js';
import { barPlot, esc, linePlot, swimlane } from './svg.js';
import { fmtNs } from './text.js';

const label = (c: ConfigReport): string => `${c.locking} ${c.vcpus}v${c.oversubscribed ? '*' : ''}`;

function throughputPlot(r: LockstatReport): string {
  const series = r.locking.map((l) => ({
    name: l,
    points: r.configs.filter((c) => c.locking === l).map((c) => ({ x: c.vcpus, y: c.throughput.median, lo: c.throughput.min, hi: c.throughput.max, ...(c.oversubscribed ? { mark: 'oversubscribed' } : {}) })),
  }));
  return linePlot({ id: 'plot-throughput', title: `Throughput vs vCPUs (${r.workload.name}; median, bars = min-max of ${r.repeat})`, xLabel: 'vCPUs (hollow = oversubscribed)', yLabel: 'interrupts acknowledged / s', xs: r.vcpus, series });
}

function classes(r: LockstatReport): string[] {
  const names: string[] = [];
  for (const c of r.configs) for (const s of c.lockStats) if (!names.includes(s.name)) names.push(s.name);
  return names;
}

function contendedPlot(r: LockstatReport): string {
  const cats = classes(r);
  const series = r.configs.map((c) => ({
    name: label(c),
    values: cats.map((n) => {
      const s = c.lockStats.find((x) => x.name === n);
      return s && s.acquisitions > 0 ? (100 * s.contentions) / s.acquisitions : 0;
    }),
  }));
  return barPlot({ id: 'plot-contended', title: 'Contended acquisitions per lock class', xLabel: 'lock class', yLabel: 'contended %', categories: cats, series, yFmt: (v) => `${Math.round(v * 100) / 100}%` });
}

function waitPlot(r: LockstatReport): string {
  const cats = classes(r);
  const series = r.configs.map((c) => {
    const secs = c.repeats.find((x) => x.lockStats === c.lockStats)?.seconds ?? r.seconds;
    return { name: label(c), values: cats.map((n) => (c.lockStats.find((x) => x.name === n)?.waitNs ?? 0) / 1e6 / Math.max(secs, 1e-9)) };
  });
  return barPlot({ id: 'plot-waittime', title: 'Time spent waiting per lock class (all threads)', xLabel: 'lock class', yLabel: 'wait ms per s of run', categories: cats, series });
}

function histogramPlot(r: LockstatReport): string {
  let last = 0;
  const per = r.configs.map((c) => {
    const h = new Array<number>(32).fill(0);
    for (const v of Object.values(c.waitHistogram)) v.forEach((n, i) => (h[i]! += n));
    h.forEach((n, i) => n > 0 && (last = Math.max(last, i)));
    return { name: label(c), h };
  });
  const first = Math.max(0, Math.min(...per.map((p) => p.h.findIndex((n) => n > 0)).filter((i) => i >= 0), last));
  const cats = Array.from({ length: last - first + 1 }, (_, i) => fmtNs(2 ** (first + i)));
  return barPlot({ id: 'plot-wait-histogram', title: 'Contended waits by duration (log2 buckets, all classes)', xLabel: 'wait at least', yLabel: 'contended acquisitions', categories: cats, series: per.map((p) => ({ name: p.name, values: p.h.slice(first, last + 1) })) });
}

function swimlanes(r: LockstatReport): string {
  return r.configs.filter((c) => c.trace).map((c) => {
    const t = c.trace!;
    const locks = [...new Set(t.lanes.flatMap((l) => l.spans.map((s) => s.lock)))];
    return swimlane({ id: `plot-swimlane-${c.locking}`, title: `Lock holds and waits per thread: ${c.locking}, ${c.vcpus} vCPUs, ${t.ms.toFixed(1)} ms window`, ms: t.ms, lanes: t.lanes.map((l) => ({ name: l.thread, spans: l.spans })), locks });
  }).join('\n');
}

function table(head: string[], rows: (string | number)[][], cls: string): string {
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((x) => `<td>${esc(String(x))}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function formatHtml(r: LockstatReport): string {
  const timed = r.statsMode === 'timed';
  const t = (ns: number): string => (timed ? fmtNs(ns) : '-');
  const sp = (s: { median: number; min: number; max: number }, f: (x: number) => string = (x) => String(Math.round(x))): string => `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;
  const over = r.configs.filter((c) => c.oversubscribed);
  const parts: string[] = [];
  parts.push(`<h1>vgic-emu lockstat: ${esc(r.workload.name)}</h1>`);
  parts.push(`<p>${esc(r.workload.description)}.</p>`);
  parts.push(`<p class="machine">${r.cores} cores; ${r.seconds} s per run, ${r.repeat} repeat(s); lock statistics <code>${r.statsMode}</code>; vgic-emu ${esc(r.version)}.${r.interrupted ? ' <strong>Interrupted: partial results.</strong>' : ''}</p>`);
  if (over.length) parts.push(`<p class="oversubscribed"><strong>Oversubscribed</strong> (marked *): ${over.map((c) => esc(`${c.locking} ${c.vcpus} vCPUs (${c.threads} threads)`)).join(', ')}. These run more busy threads than the machine has cores: the OS time-slices them, a preempted lock holder stalls every waiter, and the comparison of <code>fine</code> and <code>global</code> measures the scheduler as much as the locks.</p>`);
  if (r.timedOverhead) {
    const o = r.timedOverhead;
    parts.push(`<p class="overhead">Timed statistics cost: uncontended acquire+release ${o.fastPathNs.counts} ns counting vs ${o.fastPathNs.timed} ns timed (×${o.fastPathRatio})${o.endToEnd ? `; end to end (${esc(o.endToEnd.workload)}) ${o.endToEnd.countsThroughput}/s counting vs ${o.endToEnd.timedThroughput}/s timed (×${o.endToEnd.ratio})` : ''}.</p>`);
  }
  parts.push('<h2>Throughput</h2>', throughputPlot(r));
  parts.push(table(['locking', 'vCPUs', 'threads', 'oversubscribed', 'acks/s median [min–max]', 'p50', 'p99', 'max'], r.configs.map((c) => [c.locking, c.vcpus, c.threads, c.oversubscribed ? 'yes' : 'no', sp(c.throughput), sp(c.latencyP50Ns, fmtNs), sp(c.latencyP99Ns, fmtNs), sp(c.latencyMaxNs, fmtNs)]), 'configs'));
  if (r.ratios.length) parts.push('<h3>fine / global</h3>', table(['vCPUs', 'ratio median [min–max]', 'oversubscribed'], r.ratios.map((x) => [x.vcpus, sp(x.fineOverGlobal, (v) => v.toFixed(2)), x.oversubscribed ? 'yes' : 'no']), 'ratios'));
  parts.push('<h2>Lock classes</h2>', contendedPlot(r), waitPlot(r));
  if (timed) parts.push('<h2>Wait-time histogram</h2>', histogramPlot(r));
  const lanes = swimlanes(r);
  if (lanes) parts.push('<h2>Swimlanes</h2><p>Each row is a thread; filled bars are lock holds (colour = lock class), red outlines are waits. Under <code>global</code> every path takes the one distributor lock, so the holds of different threads never overlap.</p>', lanes);
  parts.push('<h2>lock_stat</h2>');
  for (const c of r.configs) {
    parts.push(`<h3>${esc(`${c.locking}, ${c.vcpus} vCPUs${c.oversubscribed ? ' (oversubscribed)' : ''}`)}</h3>`);
    parts.push(table(['class', 'con-bounces', 'contentions', 'waittime-min', 'waittime-max', 'waittime-total', 'waittime-avg', 'acq-bounces', 'acquisitions', 'holdtime-min', 'holdtime-max', 'holdtime-total', 'holdtime-avg'],
      c.lockStats.map((s) => [s.name, s.conBounces, s.contentions, t(s.waitMinNs), t(s.waitMaxNs), t(s.waitNs), t(s.waitAvgNs), timed ? s.acqBounces : '-', s.acquisitions, t(s.holdMinNs), t(s.holdMaxNs), t(s.holdNs), t(s.holdAvgNs)]), 'lockstat'));
    const pts = c.lockStats.flatMap((s) => s.points.map((p) => [s.name, p.waiter, p.holder, p.contentions, t(p.waitNs)]));
    if (pts.length) parts.push(table(['class', 'waiter', 'holder', 'contentions', 'waited'], pts, 'points'));
    const exits = Object.entries(c.exitsPerSec).filter(([, s]) => s.max > 0);
    parts.push(`<p class="exits">exits/s: ${exits.length ? exits.map(([k, s]) => esc(`${k} ${sp(s)}`)).join(', ') : 'none'}</p>`);
  }
  const css = 'body{font-family:sans-serif;max-width:1000px;margin:1em auto;padding:0 1em}table{border-collapse:collapse;margin:.5em 0;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child,th:first-child{text-align:left}svg.plot{display:block;margin:1em 0;border:1px solid #eee}.oversubscribed{background:#fff3cd;padding:.5em}';
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>vgic-emu lockstat: ${esc(r.workload.name)}</title><style>${css}</style></head><body>\n${parts.join('\n')}\n</body></html>\n`;
}
