/**
 * What a stress run gives each participating thread: the history rings to record into, the
 * controlled scheduler's buffer (controlled mode) or the chaos parameters (chaos mode).
 */
import type { HistoryBuffers } from '../record/history.js';
import { installChaos, type ChaosConfig } from '../sched/chaos.js';
import { ControlledThread } from '../sched/controlled.js';
import { D, type Host } from '../vgic/host.js';
import { DEV_RUNNING, NR_PHYS_IRQS, PHYS_IRQ } from '../shm/layouts.js';
import { physOff } from '../shm/vm-memory.js';

export interface StressThreadConfig {
  history: HistoryBuffers | null;
  /** Controlled mode: the scheduler's shared buffer. */
  sched: SharedArrayBuffer | null;
  /** Chaos mode: seeded perturbation at schedule points. */
  chaos: ChaosConfig | null;
  /** Controlled mode: the injector's scheduler slot (injectorSchedSlot). */
  injectorSlot?: number;
}

/** Scheduler slot of the stress driver thread; vCPU i is 1 + i. */
export const DRIVER_SCHED_SLOT = 0;

/**
 * Scheduler slot of the irqfd injector worker, after the vCPUs: it makes progress of its own
 * (work handed over by the irqfd fast path), so in controlled mode it is a participant like the
 * others. A run whose VM never started an injector counts the slot as gone (markAbsent).
 */
export function injectorSchedSlot(vcpus: number): number {
  return 1 + vcpus;
}

/** Install this thread's hooks. Returns the controlled-mode handle, to join() and leave(). */
export function installStressHooks(c: StressThreadConfig | null | undefined, h: Host, schedSlot: number): ControlledThread | null {
  if (!c) return null;
  if (c.sched) {
    const ct = new ControlledThread(c.sched, h.m, schedSlot, D.stop, () => deviceThreadRuns(h));
    ct.install();
    return ct;
  }
  if (c.chaos) installChaos(c.chaos, schedSlot, { vm: h.m, stopIdx: D.stop });
  return null;
}

/** Each scheduler slot's thread, by name (failure reports). */
export function schedThreadNames(vcpus: number): string[] {
  return ['driver', ...Array.from({ length: vcpus }, (_, i) => `vcpu${i}`), 'irqfd-injector'];
}

/**
 * A VFIO-like device thread (workers/device.ts) runs: it raises its lines on its own schedule,
 * outside the controlled scheduler (the irqfd injector, by contrast, is a scheduled thread).
 */
export function deviceThreadRuns(h: Host): boolean {
  const m = h.m;
  for (let i = 0; i < NR_PHYS_IRQS; i++) {
    const p = physOff(h.g, i);
    if (Atomics.load(m, p + PHYS_IRQ.off.used) !== 0 && Atomics.load(m, p + PHYS_IRQ.off.devState) === DEV_RUNNING) return true;
  }
  return false;
}
