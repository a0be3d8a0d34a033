/**
 * A small SVG plotting module for the lockstat report: line plots with spread bars, grouped bar
 * charts and swimlanes, as strings of inline SVG (no scripts, no fonts beyond the generic family).
 * Every plot is `<svg id=… class="plot">` with `<g class="axis x-axis">`, `<g class="axis
 * y-axis">`, one `<g class="series" data-series=…>` per series and a `<g class="legend">`, so
 * that a test can find them.
 */

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const W = 640;
const H = 320;
const M = { l: 70, r: 150, t: 30, b: 50 };
const PW = W - M.l - M.r;
const PH = H - M.t - M.b;
const n2 = (x: number): string => (Math.round(x * 100) / 100).toString();

/** Round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  // The last tick is at or above hi, so that the plot's top covers every value.
  for (let v = Math.floor(lo / step) * step; out.length === 0 || out[out.length - 1]! < hi - step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

export function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${n2(v / 1e6)}M`;
  if (a >= 1e3) return `${n2(v / 1e3)}k`;
  return n2(v);
}

function frame(id: string, title: string, body: string, h = H): string {
  return `<svg id="${esc(id)}" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" font-family="sans-serif" font-size="11">` +
    `<text class="title" x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>${body}</svg>`;
}

function legend(names: readonly string[], colors: readonly string[]): string {
  return `<g class="legend">${names.map((n, i) => `<g class="legend-item" transform="translate(${M.l + PW + 15},${M.t + 8 + i * 18})"><rect width="12" height="12" fill="${colors[i % colors.length]}"/><text x="18" y="10">${esc(n)}</text></g>`).join('')}</g>`;
}

function yAxis(ticks: number[], y: (v: number) => number, label: string, fmt = fmtTick): string {
  return `<g class="axis y-axis"><line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${M.t + PH}" stroke="#000"/>` +
    ticks.map((t) => `<g class="tick"><line x1="${M.l - 4}" x2="${M.l + PW}" y1="${n2(y(t))}" y2="${n2(y(t))}" stroke="#ddd"/><text x="${M.l - 6}" y="${n2(y(t) + 4)}" text-anchor="end">${esc(fmt(t))}</text></g>`).join('') +
    `<text class="axis-label" transform="translate(16,${M.t + PH / 2}) rotate(-90)" text-anchor="middle">${esc(label)}</text></g>`;
}

function xAxisCategories(cats: readonly string[], x: (i: number) => number, label: string): string {
  // Label at most ~12 categories (every k-th), so that labels never overlap.
  const every = Math.max(1, Math.ceil(cats.length / 12));
  return `<g class="axis x-axis"><line x1="${M.l}" y1="${M.t + PH}" x2="${M.l + PW}" y2="${M.t + PH}" stroke="#000"/>` +
    cats.map((c, i) => (i % every !== 0 ? '' : `<g class="tick"><line x1="${n2(x(i))}" x2="${n2(x(i))}" y1="${M.t + PH}" y2="${M.t + PH + 4}" stroke="#000"/><text x="${n2(x(i))}" y="${M.t + PH + 16}" text-anchor="middle">${esc(c)}</text></g>`)).join('') +
    `<text class="axis-label" x="${M.l + PW / 2}" y="${H - 10}" text-anchor="middle">${esc(label)}</text></g>`;
}

export interface LinePoint {
  x: number;
  y: number;
  lo: number;
  hi: number;
  /** Drawn hollow and named in the tooltip (e.g. oversubscribed). */
  mark?: string;
}
export interface LineSeries {
  name: string;
  points: LinePoint[];
}

/** y against categorical x values (e.g. vCPU counts), one line per series, with spread bars. */
export function linePlot(o: { id: string; title: string; xLabel: string; yLabel: string; xs: readonly number[]; series: readonly LineSeries[] }): string {
  const ymax = Math.max(1, ...o.series.flatMap((s) => s.points.map((p) => p.hi)));
  const ticks = niceTicks(0, ymax);
  const top = ticks[ticks.length - 1]!;
  const y = (v: number): number => M.t + PH - (v / top) * PH;
  const x = (i: number): number => M.l + (o.xs.length === 1 ? PW / 2 : (i / (o.xs.length - 1)) * PW * 0.9 + PW * 0.05);
  const xi = (v: number): number => x(o.xs.indexOf(v));
  const body = o.series.map((s, k) => {
    const c = PALETTE[k % PALETTE.length]!;
    const pts = s.points.filter((p) => o.xs.includes(p.x));
    const path = pts.map((p, i) => `${i ? 'L' : 'M'}${n2(xi(p.x))},${n2(y(p.y))}`).join(' ');
    const bars = pts.map((p) => `<g class="spread"><line x1="${n2(xi(p.x))}" x2="${n2(xi(p.x))}" y1="${n2(y(p.lo))}" y2="${n2(y(p.hi))}" stroke="${c}" stroke-width="1.5"/><line x1="${n2(xi(p.x) - 5)}" x2="${n2(xi(p.x) + 5)}" y1="${n2(y(p.lo))}" y2="${n2(y(p.lo))}" stroke="${c}"/><line x1="${n2(xi(p.x) - 5)}" x2="${n2(xi(p.x) + 5)}" y1="${n2(y(p.hi))}" y2="${n2(y(p.hi))}" stroke="${c}"/></g>`).join('');
    const dots = pts.map((p) => `<circle class="point${p.mark ? ' marked' : ''}" cx="${n2(xi(p.x))}" cy="${n2(y(p.y))}" r="4" fill="${p.mark ? '#fff' : c}" stroke="${c}" stroke-width="2"><title>${esc(`${s.name} x=${p.x}: ${fmtTick(p.y)} [${fmtTick(p.lo)}-${fmtTick(p.hi)}]${p.mark ? ` (${p.mark})` : ''}`)}</title></circle>`).join('');
    return `<g class="series" data-series="${esc(s.name)}"><path d="${path}" fill="none" stroke="${c}" stroke-width="2"/>${bars}${dots}</g>`;
  }).join('');
  return frame(o.id, o.title, yAxis(ticks, y, o.yLabel) + xAxisCategories(o.xs.map(String), (i) => x(i), o.xLabel) + body + legend(o.series.map((s) => s.name), PALETTE));
}

/** Grouped bars: one group per category, one bar per series. */
export function barPlot(o: { id: string; title: string; xLabel: string; yLabel: string; categories: readonly string[]; series: readonly { name: string; values: readonly number[] }[]; yFmt?: (v: number) => string }): string {
  const ymax = Math.max(1e-9, ...o.series.flatMap((s) => s.values));
  const ticks = niceTicks(0, ymax);
  const top = ticks[ticks.length - 1]!;
  const y = (v: number): number => M.t + PH - (v / top) * PH;
  const n = Math.max(1, o.categories.length);
  const gw = PW / n;
  const bw = (gw * 0.8) / Math.max(1, o.series.length);
  const cx = (i: number): number => M.l + gw * (i + 0.5);
  const body = o.series.map((s, k) => {
    const c = PALETTE[k % PALETTE.length]!;
    return `<g class="series" data-series="${esc(s.name)}">${s.values.map((v, i) => `<rect class="bar" x="${n2(M.l + gw * i + gw * 0.1 + k * bw)}" y="${n2(y(v))}" width="${n2(Math.max(1, bw - 1))}" height="${n2(Math.max(0, M.t + PH - y(v)))}" fill="${c}"><title>${esc(`${s.name}, ${o.categories[i]}: ${(o.yFmt ?? fmtTick)(v)}`)}</title></rect>`).join('')}</g>`;
  }).join('');
  return frame(o.id, o.title, yAxis(ticks, y, o.yLabel, o.yFmt) + xAxisCategories(o.categories, cx, o.xLabel) + body + legend(o.series.map((s) => s.name), PALETTE));
}

export interface Lane {
  name: string;
  spans: { kind: 'wait' | 'hold'; lock: string; start: number; end: number }[];
}

/** Per-thread lanes over a time window: holds as solid bars per lock class, waits hatched red. */
export function swimlane(o: { id: string; title: string; ms: number; lanes: readonly Lane[]; locks: readonly string[] }): string {
  const laneH = 18;
  const h = M.t + Math.max(1, o.lanes.length) * laneH + M.b;
  const ph = Math.max(1, o.lanes.length) * laneH;
  const span = o.ms > 0 ? o.ms : 1;
  const x = (t: number): number => M.l + (Math.min(Math.max(t, 0), span) / span) * PW;
  const ticks = niceTicks(0, span);
  const axis = `<g class="axis x-axis"><line x1="${M.l}" y1="${M.t + ph}" x2="${M.l + PW}" y2="${M.t + ph}" stroke="#000"/>` +
    ticks.filter((t) => t <= span).map((t) => `<g class="tick"><line x1="${n2(x(t))}" x2="${n2(x(t))}" y1="${M.t}" y2="${M.t + ph + 4}" stroke="#eee"/><text x="${n2(x(t))}" y="${M.t + ph + 16}" text-anchor="middle">${esc(fmtTick(t))}</text></g>`).join('') +
    `<text class="axis-label" x="${M.l + PW / 2}" y="${h - 10}" text-anchor="middle">ms since the window opened</text></g>`;
  const yaxis = `<g class="axis y-axis">${o.lanes.map((l, i) => `<text x="${M.l - 6}" y="${M.t + i * laneH + 13}" text-anchor="end">${esc(l.name)}</text>`).join('')}</g>`;
  const color = (lock: string): string => PALETTE[Math.max(0, o.locks.indexOf(lock)) % PALETTE.length]!;
  const body = o.lanes.map((l, i) => {
    const y0 = M.t + i * laneH + 2;
    const rects = l.spans.map((s) => {
      const w = Math.max(0.5, x(s.end) - x(s.start));
      const title = `<title>${esc(`${l.name}: ${s.kind} ${s.lock} ${s.start.toFixed(4)}-${s.end.toFixed(4)} ms`)}</title>`;
      return s.kind === 'hold'
        ? `<rect class="hold" x="${n2(x(s.start))}" y="${y0 + 3}" width="${n2(w)}" height="${laneH - 8}" fill="${color(s.lock)}">${title}</rect>`
        : `<rect class="wait" x="${n2(x(s.start))}" y="${y0}" width="${n2(w)}" height="${laneH - 3}" fill="none" stroke="#d00" stroke-width="1">${title}</rect>`;
    }).join('');
    return `<g class="series lane" data-series="${esc(l.name)}">${rects}</g>`;
  }).join('');
  const names = [...o.locks.map((k) => `hold ${k}`), 'wait (red outline)'];
  const colors = [...o.locks.map(color), '#d00'];
  return frame(o.id, o.title, axis + yaxis + body + legend(names, colors), h);
}
