/**
 * One interrupt line of a VFIO-like platform device: the state machine that VFIO's platform IRQ
 * handler, its automask and its (virqfd) unmask implement, over the line's shared record (shm
 * PHYS_IRQ). Every transition is one compareExchange on `state`, because three kinds of thread
 * change it: the device thread (delivery), whichever thread signals the unmask eventfd (usually a
 * vCPU, resampling), and the VMM thread (mask actions, forwarding).
 *
 *  not forwarded, level: deliver = set MASKED (automask), signal the trigger eventfd. The host has
 *                        completed the physical interrupt; the guest's EOI resamples, the unmask
 *                        eventfd fires, unmask clears MASKED and counts the event serviced.
 *  not forwarded, edge:  deliver = signal; serviced at once (nothing to mask or complete).
 *  forwarded (HW):       deliver = set ACTIVE, signal. No automask: the guest's deactivation of
 *                        the HW-mapped LR clears ACTIVE and counts it serviced (vgic/phys-irq.ts).
 * A line is delivered while events are outstanding (level: raised > serviced; edge: raised >
 * signalled) and it is neither masked nor active.
 */
import { EventFd } from '../../eventfd/eventfd.js';
import { PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, PIRQ_MASKED, PIRQ_USER_MASKED } from '../../shm/layouts.js';
import { physOff } from '../../shm/vm-memory.js';
import type { Host } from '../../vgic/host.js';
import { bellOf, ringDevice } from '../../vgic/phys-irq.js';

const P = PHYS_IRQ.off;

export function lineCounter(m: Int32Array, p: number, f: 'raised' | 'signalled' | 'serviced'): number {
  return Atomics.load(m, p + P[f]);
}

/**
 * Device thread: deliver the line's next interrupt if it may. Returns true if it signalled.
 * The CAS decides: a forward/unforward, an unmask or another deliverer racing with us either
 * happened before (we see its bits or its count) or fails our CAS, and we look again.
 */
export function deliver(m: Int32Array, p: number, trigger: EventFd | null): boolean {
  if (!trigger || trigger.closed) return false;
  const level = m[p + P.level] === 1;
  for (;;) {
    const s = Atomics.load(m, p + P.state);
    if (s & (PIRQ_MASKED | PIRQ_USER_MASKED | PIRQ_ACTIVE)) return false;
    const raised = Atomics.load(m, p + P.raised);
    const sig = Atomics.load(m, p + P.signalled);
    const outstanding = level ? raised - Atomics.load(m, p + P.serviced) : raised - sig;
    if (outstanding <= 0) return false;
    const fwd = (s & PIRQ_FWD) !== 0;
    const next = fwd ? s | PIRQ_ACTIVE : level ? s | PIRQ_MASKED : s;
    if (next !== s) {
      if (Atomics.compareExchange(m, p + P.state, s, next) !== s) continue;
      Atomics.add(m, p + P.signalled, 1);
    } else if (Atomics.compareExchange(m, p + P.signalled, sig, sig + 1) !== sig) {
      // An edge line has no state bit to claim, so the claim is the signalled count itself: two
      // deliverers (the device thread and one woken by the same raise) that both saw the event
      // outstanding each signalled it, 21 signals for 20 events (found by vfio-fwd under load).
      continue;
    }
    if (!fwd && !level) Atomics.add(m, p + P.serviced, 1);
    // The host interrupt reaches VFIO's handler, which signals the trigger eventfd: with an
    // irqfd bound, KVM's fast path injects right here, in the device thread.
    trigger.signal(1n);
    return true;
  }
}

/**
 * Unmask (VFIO_IRQ_SET_ACTION_UNMASK, or its eventfd). Clearing an automask completes the event
 * the guest just handled; `user` also clears a user mask. Rings the device either way.
 */
export function unmaskLine(h: Host, p: number, user: boolean): void {
  const m = h.m;
  for (;;) {
    const s = Atomics.load(m, p + P.state);
    const next = s & ~(PIRQ_MASKED | (user ? PIRQ_USER_MASKED : 0));
    if (next === s) break;
    if (Atomics.compareExchange(m, p + P.state, s, next) !== s) continue;
    if (s & PIRQ_MASKED) Atomics.add(m, p + P.serviced, 1);
    Atomics.add(m, p + P.unmasks, 1);
    break;
  }
  ringDevice(m, bellOf(h, p));
}

/** VFIO_IRQ_SET_ACTION_MASK: a user mask, independent of the automask. */
export function maskLine(h: Host, p: number): void {
  Atomics.or(h.m, p + P.state, PIRQ_USER_MASKED);
}

/**
 * virqfd_wakeup for the unmask eventfd, in the thread that signalled it (a vCPU resampling, or
 * the VMM): consume the count and unmask. Registered for every thread that maps a VM.
 */
export function virqfdWakeup(h: Host, line: number, gen: number, efd: EventFd, hup: boolean): void {
  if (hup) return; // the device stops polling a closed eventfd by itself
  const p = physOff(h.g, line);
  if (Atomics.load(h.m, p + P.used) !== gen) return; // stale binding: the line was given up
  let n = 0n;
  try {
    n = efd.tryRead();
  } catch {
    return;
  }
  if (n !== 0n) unmaskLine(h, p, false);
}
