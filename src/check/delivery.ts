/**
 * Bounded delivery (a liveness detector that knows no bug): an interrupt that is deliverable to a
 * vCPU running guest code (queued on its ap_list, enabled, pending, not active, its group enabled,
 * of higher priority than PMR and the running priority) while that vCPU has a free list register
 * must reach an LR at the vCPU's next entry: its injector kicks the vCPU. If it does not for a bound
 * of the vCPU's own guest steps, something left it "until some other event": a queue without a
 * kick, a kick lost, a flush that skipped it. Sampled on the vCPU's own thread in controlled stress
 * runs, where guest steps are the schedule's (chaos mode's real delays can hold a correct kicker
 * back for any number of guest steps, so it is not checked there).
 *
 * The sample reads the ap_list without its lock: another thread may be changing it, so the walk is
 * bounded and a sample only counts when the same record is seen stuck again and again.
 */
import { IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { irqIsPending } from '../vgic/irq.js';
import { runningPriority } from '../vgic/cpu-interface.js';
import { unchecked } from './lockset/view.js';

/** A record deliverable to vCPU v and not in an LR while an LR is free, or -1. */
export function stuckDeliverable(h: Host, v: number): number {
  const m = unchecked(h.m); // a lock-free sample by design (above), not the model's access

  const vb = vcpuOff(h.g, v);
  if (m[vb + VCPU.off.usedLrs]! >= m[vb + VCPU.off.nrLr]!) return -1; // no room: not a flush's fault
  const pmr = m[vb + VCPU.off.pmr]!;
  const rpr = runningPriority(m, vb);
  let best = -1;
  let bestPrio = 0x100;
  let n = 0;
  for (let r = m[vb + VCPU.off.apHead]!; r >= 0 && n++ < h.g.nrRecords; r = m[irqOff(h.g, r) + IRQ.off.next]!) {
    const b = irqOff(h.g, r);
    if (m[b + IRQ.off.onLr] || m[b + IRQ.off.active] || !m[b + IRQ.off.enabled] || !irqIsPending(m, b)) continue;
    if (m[b + IRQ.off.vcpu] !== v) continue;
    const grpOn = m[b + IRQ.off.group] ? m[vb + VCPU.off.eng1] : m[vb + VCPU.off.eng0];
    const prio = m[b + IRQ.off.priority]!;
    if (!grpOn || prio >= pmr || prio >= rpr || prio >= bestPrio) continue;
    best = r;
    bestPrio = prio;
  }
  return best;
}

/** Guest instruction boundaries between samples, and samples of one stuck record that fail the run. */
export const DELIVERY_SAMPLE_EVERY = 16;
export const DELIVERY_BOUND_SAMPLES = 2_000; // 32 000 of the vCPU's own guest steps

/** Per vCPU thread: which record was seen stuck, and for how many samples in a row. */
export class DeliveryWatch {
  private rec = -1;
  private count = 0;

  constructor(private readonly h: Host, private readonly v: number) {}

  /** Take a sample; the message of a violation, or null. */
  sample(): string | null {
    const r = stuckDeliverable(this.h, this.v);
    if (r < 0) {
      this.count = 0;
      this.rec = -1;
      return null;
    }
    if (r !== this.rec) {
      this.rec = r;
      this.count = 0;
    }
    if (++this.count < DELIVERY_BOUND_SAMPLES) return null;
    const b = irqOff(this.h.g, r);
    return `bounded delivery: INTID ${this.h.m[b + IRQ.off.intid]} (priority 0x${this.h.m[b + IRQ.off.priority]!.toString(16)}) has been deliverable to vcpu${this.v} (queued, enabled, pending, above PMR and the running priority, an LR free) for ${DELIVERY_SAMPLE_EVERY * DELIVERY_BOUND_SAMPLES} of its guest steps without reaching an LR: a queue without a kick, a lost kick, or a flush that skips it`;
  }
}
