/**
 * History recording hooks (DESIGN §6): each lifecycle event of an interrupt is appended to this
 * thread's ring when the VM records history (`h.hist`); a null check otherwise. Interrupts are
 * named by INTID plus, for private INTIDs, their vCPU (-1 for SPIs).
 */
import { EventKind } from '../check/events.js';
import { IRQ } from '../shm/layouts.js';
import { irqOff } from '../shm/vm-memory.js';
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
