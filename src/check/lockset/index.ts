/**
 * Lockset checking (KCSAN / Eraser for the model): every access a thread makes to the shared VM
 * state through `h.m` / `h.f` is held against the protection its field declares in the layout
 * tables (shm/layouts.ts, shm/protection.ts). On with VmOptions.checkAccess; a violation is a
 * report (field, record, access, thread, held locks, rule, stack) that surfaces as a stress
 * finding of kind `lockset`, and makes Vm.destroy() throw in API use.
 */
import type { Finding } from '../../stress/findings.js';
import type { VmGeometry } from '../../shm/vm-memory.js';
import type { SyncThread } from '../../sync/thread.js';
import type { Host, SharedVmConfig } from '../../vgic/host.js';
import { freshState, type AccessCtx } from './check.js';
import { regionTable } from './regions.js';
import { formatViolation, readReports, reportSink, resetAccessState, type AccessViolations } from './reports.js';
import { checkedView } from './view.js';

export type { AccessViolation, AccessViolations } from './reports.js';
export { formatViolation } from './reports.js';
export { unchecked, isChecked } from './view.js';

/** The checked h.m / h.f of one thread. */
export function checkedViews(g: VmGeometry, cfg: SharedVmConfig, access: SharedArrayBuffer, t: SyncThread, selfVcpu: number, m: Int32Array, f: Float64Array): { m: Int32Array; f: Float64Array } {
  const ctx: AccessCtx = {
    table: regionTable(g),
    t,
    selfVcpu,
    global: cfg.locking === 'global',
    eraser: new Int32Array(access, 0, g.stateWords),
    sink: reportSink(access, g, t.slot),
    seen: new Set(),
  };
  return { m: checkedView(m, ctx), f: checkedView(f, ctx) };
}

/**
 * A record is (re)allocated: the kernel would kzalloc a fresh one (an SPI table at vgic_init, an
 * LPI, an ITE, a device's line, a vCPU); nobody else can reach it until it is published, so its
 * words become FRESH for this thread: its initialisation is not checked at all (not even the
 * writes check.ts checks while a vCPU is online), until another thread touches a word, which
 * makes it shared and checked again. Init paths only; free when off.
 */
export function accessRecycled(h: Host, first: number, words: number): void {
  if (!h.buf.access) return;
  new Int32Array(h.buf.access, 0, h.g.stateWords).fill(freshState(h.t.slot), first, first + words);
}

/** Every violation recorded so far on any thread of the VM (null: checking is off). */
export function accessViolations(h: Host): AccessViolations | null {
  return h.buf.access ? readReports(h.buf.access, h.g) : null;
}

/**
 * The recorded violations as stress findings, then a fresh start for the Eraser state: call it
 * once every other thread has stopped, so the main thread's post-mortem reads (history end
 * state, audits) are its own exclusive accesses, not races.
 */
export function takeAccessFindings(h: Host): Finding[] {
  const v = accessViolations(h);
  if (!v) return [];
  resetAccessState(h.buf.access!);
  const out: Finding[] = v.reports.map((r) => ({ kind: 'lockset', message: formatViolation(r), details: `${r.field} (${r.layout})\n${r.stack}` }));
  if (v.count > v.reports.length) out.push({ kind: 'lockset', message: `${v.count} lockset violations in all (${v.reports.length} distinct sites reported)` });
  return out;
}

/** Thrown by Vm.destroy() when the VM recorded lockset violations (checking mode, API use). */
export class AccessViolationError extends Error {
  constructor(readonly violations: AccessViolations) {
    super(`lockset: ${violations.count} access violation(s):\n${violations.reports.map((r) => `  ${formatViolation(r)}\n    at ${r.stack.split('\n', 1)[0]}`).join('\n')}`);
    this.name = 'AccessViolationError';
  }
}

export function throwOnAccessViolations(h: Host): void {
  const v = accessViolations(h);
  if (v && v.count > 0) throw new AccessViolationError(v);
}
