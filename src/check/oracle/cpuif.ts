/**
 * The CPU-interface arithmetic of the model, written from the architecture (GICv3 §4.8 priority
 * grouping, ICH_VMCR_EL2; spec §5.1) rather than taken from the code under test: 5 implemented
 * priority bits, so the binary points cannot go below BPR0 = 2 and BPR1 = 3; with CBPR set, group
 * 1 uses BPR0 + 1 (saturating at 7); a group-0 interrupt's group priority uses BPR0 + 1 bits of
 * subpriority-free mask, a group-1 interrupt's BPR1.
 */
import { VMCR_BPR0_SHIFT, VMCR_BPR1_SHIFT, VMCR_CBPR, VMCR_ENG0, VMCR_ENG1, VMCR_EOIMODE } from '../../record/events.js';
import { UNKNOWN, type AckEntry } from './state.js';

const MIN_BPR0 = 2;
const MIN_BPR1 = 3;

export function vmcrPmr(vmcr: number): number {
  return vmcr & 0xff;
}

export function vmcrEoiMode(vmcr: number): number {
  return vmcr & VMCR_EOIMODE ? 1 : 0;
}

export function vmcrGroupEnabled(vmcr: number, group: number): boolean {
  return (vmcr & (group ? VMCR_ENG1 : VMCR_ENG0)) !== 0;
}

function bpr0(vmcr: number): number {
  return Math.max((vmcr >> VMCR_BPR0_SHIFT) & 7, MIN_BPR0);
}

function bpr1(vmcr: number): number {
  if (vmcr & VMCR_CBPR) return Math.min(bpr0(vmcr) + 1, 7);
  return Math.max((vmcr >> VMCR_BPR1_SHIFT) & 7, MIN_BPR1);
}

/**
 * Group (preemption) priority of `prio`. With the group or the VMCR unknown, the finest grouping
 * the architecture allows: a necessary condition for any BPR, so a rule using it never rejects an
 * acknowledgement that some legal configuration would allow.
 */
export function groupPriority(prio: number, group: number, vmcr: number): number {
  const bits = vmcr === UNKNOWN || group === UNKNOWN
    ? MIN_BPR1
    : group === 0 ? bpr0(vmcr) + 1 : bpr1(vmcr);
  return prio & ((0xff << bits) & 0xff);
}

/** The running priority: the highest (numerically lowest) group priority awaiting its drop, 0x100 if none. */
export function runningPriority(acks: readonly AckEntry[]): { pre: number; by: AckEntry | null } {
  let by: AckEntry | null = null;
  for (const a of acks) if (by === null || a.pre < by.pre) by = a;
  return { pre: by === null ? 0x100 : by.pre, by };
}
