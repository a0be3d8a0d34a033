/**
 * Where lockset violations go: a per-thread-slot text area in the VM's access buffer, so a
 * violation found on any worker surfaces on the main thread (stress findings, Vm.destroy) without
 * throwing inside the critical section that made it (the model keeps running unchanged).
 *
 * access buffer: [ Eraser state x stateWords | per slot: count, bytes used | per slot: REPORT_BYTES text ]
 */
import type { VmGeometry } from '../../shm/vm-memory.js';

export const REPORT_BYTES = 16384;
const SEP = 0x1e;

export interface AccessViolation {
  /** `vgic_irq[INTID 40].pendingLatch` */
  readonly field: string;
  readonly layout: string;
  readonly access: 'read' | 'write' | 'atomic-read' | 'atomic-write';
  readonly thread: string;
  /** The locks the thread held, innermost last (`irq_lock#72`, `ap_list_lock#1`). */
  readonly held: readonly string[];
  /** The declared protection and what was missing. */
  readonly rule: string;
  readonly stack: string;
}

export function accessBufferBytes(g: VmGeometry): number {
  return (g.stateWords + 2 * g.threadSlots) * 4 + g.threadSlots * REPORT_BYTES;
}

export interface ReportSink {
  readonly hdr: Int32Array;
  readonly text: Uint8Array;
  readonly slot: number;
}

export function reportSink(sab: SharedArrayBuffer, g: VmGeometry, slot: number): ReportSink {
  return {
    hdr: new Int32Array(sab, g.stateWords * 4, 2 * g.threadSlots),
    text: new Uint8Array(sab, (g.stateWords + 2 * g.threadSlots) * 4 + slot * REPORT_BYTES, REPORT_BYTES),
    slot,
  };
}

/** Append one report (only this thread writes its area); counts it even when the area is full. */
export function writeReport(s: ReportSink, v: AccessViolation | null): void {
  Atomics.add(s.hdr, 2 * s.slot, 1);
  if (!v) return;
  const bytes = new TextEncoder().encode(JSON.stringify(v));
  const used = Atomics.load(s.hdr, 2 * s.slot + 1);
  if (used + bytes.length + 1 > s.text.length) return;
  s.text.set(bytes, used);
  s.text[used + bytes.length] = SEP;
  Atomics.store(s.hdr, 2 * s.slot + 1, used + bytes.length + 1);
}

export interface AccessViolations {
  /** Violations counted (repeats of one site included). */
  readonly count: number;
  /** The distinct ones (per thread: field, access, call site), as far as each area held. */
  readonly reports: readonly AccessViolation[];
}

export function readReports(sab: SharedArrayBuffer, g: VmGeometry): AccessViolations {
  const hdr = new Int32Array(sab, g.stateWords * 4, 2 * g.threadSlots);
  const dec = new TextDecoder();
  let count = 0;
  const reports: AccessViolation[] = [];
  for (let slot = 0; slot < g.threadSlots; slot++) {
    count += Atomics.load(hdr, 2 * slot);
    const used = Atomics.load(hdr, 2 * slot + 1);
    if (used === 0) continue;
    // TextDecoder refuses views of shared memory: copy out first.
    const text = dec.decode(new Uint8Array(sab, (g.stateWords + 2 * g.threadSlots) * 4 + slot * REPORT_BYTES, used).slice());
    for (const part of text.split('\x1e')) if (part) reports.push(JSON.parse(part) as AccessViolation);
  }
  return { count, reports };
}

/** Forget every report and every word's Eraser state (all other threads are stopped). */
export function resetAccessState(sab: SharedArrayBuffer): void {
  new Int32Array(sab).fill(0);
}

export function formatViolation(v: AccessViolation): string {
  return `${v.access} of ${v.field} by ${v.thread} holding [${v.held.join(', ')}]: ${v.rule}`;
}
