/**
 * What the offline checkers report (check/checker.ts's symptom rules and the reference-model
 * oracle in check/oracle/): one shape, each violation with the slice of history that shows it.
 */
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../uapi/kvm.js';
import type { HistoryEvent } from '../record/events.js';

export type ViolationKind =
  | 'lost'
  | 'duplicate'
  | 'spurious'
  | 'priority'
  | 'level-not-represented'
  | 'resample-missing'
  | 'resample-doubled'
  // The oracle's (check/oracle/rules.ts): an acknowledgement the architecture does not allow...
  | 'ack-disabled'
  | 'ack-not-target'
  | 'ack-active'
  | 'ack-masked'
  | 'ack-running-priority'
  | 'ack-group-disabled'
  // ...an EOI or deactivation of nothing, and an active state changed under a running LR.
  | 'eoi-not-active'
  | 'deactivate-inactive'
  | 'active-changed-in-lr';

export interface Violation {
  kind: ViolationKind;
  /** Plain INTID (a GICv2 SGI source is decoded out of it). */
  intid: number;
  /** The vCPU concerned (acker, or owner of a private INTID), -1 if none. */
  vcpu: number;
  /** The event at which the violation shows (for end-of-run rules: the offending earlier event). */
  seq: number;
  message: string;
  /** The relevant slice of the history, in seq order. */
  events: HistoryEvent[];
}

export function describeIntid(intid: number, vcpu: number): string {
  if (intid < VGIC_NR_SGIS) return `SGI ${intid} of vCPU ${vcpu}`;
  if (intid < VGIC_NR_PRIVATE_IRQS) return `PPI ${intid} of vCPU ${vcpu}`;
  if (intid < 1020) return `SPI ${intid}`;
  return intid >= 8192 ? `LPI ${intid}` : `INTID ${intid}`;
}
