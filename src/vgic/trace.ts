/**
 * History recording hooks (DESIGN §6): each lifecycle event of an interrupt is appended to this
 * thread's ring when the VM records history (`h.hist`); a null check otherwise. Interrupts are
 * named by INTID plus, for private INTIDs, their vCPU (-1 for SPIs).
 */
import { EventKind, LR_CPUID_SHIFT, packVmcr } from '../record/events.js';
import { IRQ, LR, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';

function owner(h: Host, r: number): number {
  return r < h.g.spiRecordBase ? r >> 5 : -1;
}

/** An edge pending latch set by an accepted injection, ISPENDR, SGI or MSI (b: v2 SGI source). */
export function tracePend(h: Host, r: number, source = -1): void {
  const b = irqOff(h.g, r);
  h.hist!.record(EventKind.PEND, h.m[b + IRQ.off.intid]!, owner(h, r), h.m[b + IRQ.off.config]!, source);
}

export function traceLine(h: Host, r: number, level: number): void {
  h.hist!.record(EventKind.LINE, h.m[irqOff(h.g, r) + IRQ.off.intid]!, owner(h, r), level, 0);
}

export function traceQueue(h: Host, r: number, v: number): void {
  h.hist!.record(EventKind.QUEUE, h.m[irqOff(h.g, r) + IRQ.off.intid]!, v, owner(h, r), 0);
}

export function traceMigrate(h: Host, r: number, from: number, to: number): void {
  h.hist!.record(EventKind.MIGRATE, h.m[irqOff(h.g, r) + IRQ.off.intid]!, to, from, 0);
}

/** A configuration or state change of record r (ENABLE, PRIO, CFG, GROUP, TARGET, UNPEND, ACTIVE, MAP, DISCARD). Caller holds r's irq_lock. */
export function traceIrq(h: Host, r: number, kind: EventKind, a: number, b = 0): void {
  h.hist!.record(kind, h.m[irqOff(h.g, r) + IRQ.off.intid]!, owner(h, r), a, b);
}

/** vCPU v's CPU-interface controls after a change (VMCR). On v's own thread, or with v stopped. */
export function traceVmcr(h: Host, v: number): void {
  h.hist!.record(EventKind.VMCR, -1, v, vmcrWord(h.m, vcpuOff(h.g, v)), 0);
}

/** The vCPU record at `vb`'s CPU-interface controls, packed as the VMCR event carries them. */
export function vmcrWord(m: Int32Array, vb: number): number {
  return packVmcr(m[vb + VCPU.off.pmr]!, m[vb + VCPU.off.bpr0]!, m[vb + VCPU.off.bpr1]!, m[vb + VCPU.off.cbpr]!, m[vb + VCPU.off.eoiMode]!, m[vb + VCPU.off.eng0]!, m[vb + VCPU.off.eng1]!);
}

/** LR i of vCPU v (state and, for a v2 SGI, its CPUID), as the LR and FOLD events carry it. */
export function lrTraceState(h: Host, v: number, i: number): number {
  const lb = vcpuOff(h.g, v) + VCPU.off.lr + i * LR.size;
  return h.m[lb + LR.off.state]! | (h.m[lb + LR.off.cpuid]! << LR_CPUID_SHIFT);
}
