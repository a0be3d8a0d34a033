/**
 * The host side of a forwarded interrupt: the physical distributor's view of a device's line
 * (shm PHYS_IRQ). A HW-mapped list register links the guest's interrupt to one of these: when the
 * guest deactivates the virtual interrupt, the hardware deactivates the physical one, on the vCPU
 * itself and without an exit (spec §10.2). Here the vCPU thread is that hardware.
 *
 * Accounting per line: `raised` events made by the device, `signalled` host interrupts delivered
 * to VFIO, `serviced` events completed. A level line is asserted while raised > serviced.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import { PHYS_INTID_BASE, PHYS_IRQ, PIRQ_ACTIVE, NR_PHYS_IRQS } from '../shm/layouts.js';
import { physOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';

/**
 * The host's per-CPU interrupts (PPIs) the vgic maps are owned by another subsystem, the arch
 * timer, which registers how to read their line and complete their active state: the kernel's
 * kvm_vgic_map_phys_irq with irq_ops (get_input_level) and the irqchip's active-state hook. The
 * vgic does not import the timer; until it registers (a thread that never runs a vCPU), a host PPI
 * reads low and needs no completion.
 */
export interface HostPpiOps {
  /** The PPI's line as vCPU v's CPU sees it (get_input_level). */
  inputLevel(h: Host, v: number, pintid: number): boolean;
  /** The guest (or the host, for a trapped DIR) deactivated it: clear its physical active state. */
  inactive(h: Host, v: number, pintid: number): void;
}
let ppiOps: HostPpiOps | null = null;

/** Register (per thread, at module load of the owner) the host PPI ops. */
export function setHostPpiOps(ops: HostPpiOps): void {
  ppiOps = ops;
}

/** Physical line index of a pINTID, or -1 if it names no device line. */
export function physLineOf(pintid: number): number {
  const i = pintid - PHYS_INTID_BASE;
  return i >= 0 && i < NR_PHYS_IRQS ? i : -1;
}

/** Wake the device thread that owns line p (its doorbell word is its first line's). */
export function ringDevice(m: Int32Array, bellIdx: number): void {
  Atomics.add(m, bellIdx, 1);
  Atomics.notify(m, bellIdx);
}

/** Index of the doorbell word the device owning the line at `p` sleeps on. */
export function bellOf(h: Host, p: number): number {
  return physOff(h.g, h.m[p + PHYS_IRQ.off.bell]!) + PHYS_IRQ.off.doorbell;
}

/**
 * The guest deactivated a HW-mapped interrupt: complete the physical one. Only an active line
 * counts, once (CAS): an LR made HW while its instance was delivered in software has nothing to
 * complete physically.
 */
export function physDeactivate(h: Host, pintid: number): void {
  // A host PPI (the arch timer's) is per CPU: the deactivating vCPU's thread is that CPU.
  if (pintid < VGIC_NR_PRIVATE_IRQS) return ppiOps?.inactive(h, h.selfVcpu, pintid);
  const line = physLineOf(pintid);
  if (line < 0) return;
  const m = h.m;
  const p = physOff(h.g, line);
  for (let s = Atomics.load(m, p + PHYS_IRQ.off.state); s & PIRQ_ACTIVE; ) {
    const was = Atomics.compareExchange(m, p + PHYS_IRQ.off.state, s, s & ~PIRQ_ACTIVE);
    if (was === s) {
      Atomics.add(m, p + PHYS_IRQ.off.serviced, 1);
      Atomics.add(m, p + PHYS_IRQ.off.hwDeactivations, 1);
      ringDevice(m, bellOf(h, p));
      return;
    }
    s = was;
  }
}

/** The physical line level (vgic_get_phys_line_level): asserted while events are outstanding. */
export function physLineLevel(h: Host, pintid: number): boolean {
  // A timer PPI's line is its output (the get_input_level op), sampled on the vCPU's own CPU.
  if (pintid < VGIC_NR_PRIVATE_IRQS) return ppiOps?.inputLevel(h, h.selfVcpu, pintid) ?? false;
  const line = physLineOf(pintid);
  if (line < 0) return false;
  const p = physOff(h.g, line);
  return Atomics.load(h.m, p + PHYS_IRQ.off.raised) > Atomics.load(h.m, p + PHYS_IRQ.off.serviced);
}

/**
 * A mapped level interrupt re-sampled low at fold (vgic_irq_handle_resampling): clear the
 * physical active state, so the next assertion raises a new host interrupt. Only the timer's
 * host PPIs carry one here: a device line's active instance is completed by its deactivation.
 */
export function physResampledLow(h: Host, pintid: number): void {
  if (pintid < VGIC_NR_PRIVATE_IRQS) ppiOps?.inactive(h, h.selfVcpu, pintid);
}
