/**
 * Text output of the bench: aligned tables, the kvm-unit-tests reference table and verdicts, the
 * lock_stat table. Pure formatting, no measuring.
 */
import type { LockClassStats } from '../src/index.js';
import type { LockRow } from './lock-fastpath.js';
import type { MicroName, MicroResult } from './micro.js';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

export function table(header: readonly string[], rows: readonly (readonly string[])[], rightFrom = 1): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    '| ' + r.map((c, i) => (i >= rightFrom ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join(' | ') + ' |';
  return [line(header), '|' + w.map((n, i) => (i >= rightFrom ? '-'.repeat(n + 1) + ':' : ':' + '-'.repeat(n + 1))).join('|') + '|', ...rows.map(line)].join('\n');
}

export const ns = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(1)} µs` : x >= 100 ? `${x.toFixed(0)} ns` : `${x.toFixed(1)} ns`);
export const ratio = (x: number): string => (x >= 10 ? `${x.toFixed(0)}x` : `${x.toFixed(2)}x`);

/** kvm-unit-tests arm/micro-bench figures we compare against (issue text), in ns. */
export const REFERENCE: Record<MicroName, { qemuTcg: number; qemuLabel: string; altra: number; target: number }> = {
  mmio_read_user: { qemuTcg: 166, qemuLabel: '166 ns', altra: 1683, target: 100 },
  mmio_read_vgic: { qemuTcg: 130, qemuLabel: '~130 ns', altra: 451, target: 50 },
  eoi: { qemuTcg: 200, qemuLabel: '~200 ns', altra: 14, target: 25 },
  ipi: { qemuTcg: 3700, qemuLabel: '~3700 ns', altra: 1926, target: 1000 },
  // No published figure to compare with: the table shows '-' and the run compares lpi with ipi.
  lpi: { qemuTcg: NaN, qemuLabel: '-', altra: NaN, target: NaN },
};

export function lockTable(rows: readonly LockRow[]): string {
  return table(['operation (uncontended acquire+release)', 'ns/op', 'vs raw CAS+store'], rows.map((r) => [r.name, ns(r.nsPerOp), ratio(r.ratio)]));
}

/**
 * `atomicsNs`: the same-thread Atomics store+load pair of this run, the baseline of the
 * single-vCPU micros (mmio_read_*, eoi); busy-poll is the baseline of the cross-vCPU ones.
 */
export function microTable(results: readonly MicroResult[], busyPollNs: number, atomicsNs: number): string {
  const rows = results.map((r) => {
    const ref = REFERENCE[r.name];
    const known = (x: number, f: (x: number) => string): string => (Number.isNaN(x) ? '-' : f(x));
    const base = [r.name, `${ref.qemuLabel}`, known(ref.altra, (x) => `${x} ns`), known(ref.target, (x) => `<= ${x} ns`)];
    if (r.ns === null) return [...base, 'FAILED', '-', '-', '-', '-', '-'];
    return [
      ...base,
      ns(r.ns),
      r.samples.map((x) => x.toFixed(0)).join('/'),
      ratio(r.ns / busyPollNs),
      ratio(r.ns / atomicsNs),
      Number.isNaN(ref.qemuTcg) ? '-' : r.ns < ref.qemuTcg ? 'yes' : 'no',
      Number.isNaN(ref.target) ? '-' : r.ns <= ref.target ? 'yes' : 'no',
    ];
  });
  return table(['benchmark', 'QEMU TCG (this machine kind)', 'KVM on Ampere Altra', 'target', 'vgic-emu (median)', 'runs ns', 'vs busy-poll RT', 'vs Atomics pair', 'beats QEMU', 'meets target'], rows);
}

export function failures(results: readonly MicroResult[]): string[] {
  return results.filter((r) => r.error).map((r) => `FAILED ${r.name} (${r.locking}): ${r.error}`);
}

/** lock_stat-style table; `per` normalises acquisitions (e.g. per IPI round trip). */
export function lockStatTable(stats: readonly LockClassStats[], per: number, perLabel: string): string {
  const rows = stats
    .filter((s) => s.acquisitions > 0)
    .map((s) => [
      s.name,
      String(s.acquisitions),
      String(s.contentions),
      s.acquisitions ? `${((100 * s.contentions) / s.acquisitions).toFixed(2)}%` : '-',
      (s.acquisitions / per).toFixed(2),
    ]);
  return table(['class', 'acquisitions', 'contentions', 'contended', `acq/${perLabel}`], rows);
}
