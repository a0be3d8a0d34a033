/**
 * Structural invariants of the vgic (spec §3.6): an IRQ is on at most one ap_list, and
 * irq.vcpu names exactly the list holding it; list links are consistent; no two LRs anywhere hold
 * the same pending SPI. Checked where they must hold (by the owning vCPU under its ap_list_lock,
 * at populate time) in checking mode, and over the whole VM after a run.
 */
import { IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff, type VmGeometry } from '../shm/vm-memory.js';

export class InvariantError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantError';
  }
}

/**
 * Walk vCPU v's ap_list: links consistent, every member's `vcpu` is v, no cycle. Caller holds the
 * list's ap_list_lock (or the VM is stopped). Returns a description of the first problem or null.
 */
export function apListProblem(m: Int32Array, g: VmGeometry, v: number, seen?: Int32Array): string | null {
  const vb = vcpuOff(g, v);
  let prev = -1;
  let r = m[vb + VCPU.off.apHead]!;
  for (let n = 0; r >= 0; n++) {
    if (n > g.nrRecords) return `vcpu${v}'s ap_list has a cycle`;
    if (r >= g.nrRecords) return `vcpu${v}'s ap_list links to record ${r}, out of range`;
    const b = irqOff(g, r);
    if (m[b + IRQ.off.prev] !== prev) return `vcpu${v}'s ap_list: INTID ${m[b + IRQ.off.intid]} has prev ${m[b + IRQ.off.prev]}, expected ${prev}`;
    if (m[b + IRQ.off.vcpu] !== v) return `INTID ${m[b + IRQ.off.intid]} is on vcpu${v}'s ap_list but its vcpu field says ${m[b + IRQ.off.vcpu]}`;
    if (seen) {
      if (seen[r] !== 0) return `INTID ${m[b + IRQ.off.intid]} (record ${r}) is on the ap_lists of vcpu${seen[r]! - 1} and vcpu${v}`;
      seen[r] = v + 1;
    }
    prev = r;
    r = m[b + IRQ.off.next]!;
  }
  if (m[vb + VCPU.off.apTail] !== prev) return `vcpu${v}'s ap_list tail is ${m[vb + VCPU.off.apTail]}, the walk ended at ${prev}`;
  return null;
}

/** Whole-VM check (VM stopped): every list consistent, no record on two lists, vcpu fields agree. */
export function vmStructureProblems(m: Int32Array, g: VmGeometry, online: number): string[] {
  const out: string[] = [];
  const seen = new Int32Array(g.nrRecords);
  for (let v = 0; v < online; v++) {
    const p = apListProblem(m, g, v, seen);
    if (p) out.push(p);
  }
  for (let r = 0; r < g.nrRecords; r++) {
    const hv = m[irqOff(g, r) + IRQ.off.vcpu]!;
    if (hv >= 0 && seen[r] !== hv + 1 && out.length < 20) out.push(`record ${r} (INTID ${m[irqOff(g, r) + IRQ.off.intid]}) says it is on vcpu${hv}'s ap_list but is not`);
  }
  return out;
}
