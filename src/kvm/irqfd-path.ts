/**
 * The irqfd data paths, in whatever thread they run (kernel virt/kvm/eventfd.c, spec §8.4-8.5):
 *  - the atomic fast path (irqfd_wakeup), run by the eventfd's wake-up callback in the writer's
 *    own thread: consume the count and raise the SPI;
 *  - the work item (irqfd_inject), run by the injector worker for what the fast path left;
 *  - the resampler's ack notifier, run by a vCPU thread when it folds the EOI of a level SPI.
 *
 * Every path enters an irqfd like an SRCU read side (irqfdEnter/irqfdExit, layout in shm IRQFD)
 * and re-checks its state and generation, so that once deassign has waited for `inflight` to
 * drain no injection and no resample can follow ("injection after deassign" race).
 */
import { VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import { EventKind } from '../record/events.js';
import { BUG } from '../vgic/bugs.js';
import { EventFd } from '../eventfd/eventfd.js';
import { setWakeupHandler } from '../eventfd/wakeup.js';
import { IRQFD, IRQFD_ACTIVE, IRQFD_HUP } from '../shm/layouts.js';
import { irqfdOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { atomicRoute, setGsi } from '../vgic/irq-routing.js';
import { cacheLookup, cachePut } from '../vgic/its/cache.js';
import { lpiInject } from '../vgic/lpi.js';
import type { FdCache } from './fd-channel.js';
import { GEN_MASK, WAKE_IRQFD, WAKE_VIRQFD } from './wake-cookie.js';
import { virqfdWakeup } from './vfio/device-line.js';


/**
 * Make this thread act for its VM when it signals a bound eventfd (the fast paths), and, on a
 * vCPU thread, run the resampler's ack notifier. `onHangup` replaces the irqfd POLLHUP handling
 * on the VMM's main thread, which can complete the shutdown at once.
 */
export function installVmWakeups(h: Host, fds: FdCache | null, onIrqfdHangup?: (slot: number, gen: number) => void): void {
  const token = h.m[D.vmToken]!;
  setWakeupHandler(token, (cookie, efd, hup) => {
    // Runs on every signal of a bound eventfd: decode the cookie inline (wake-cookie.ts layout),
    // no object or Map lookup per interrupt.
    const kind = cookie >>> 28;
    const slot = cookie & 0xff;
    const gen = (cookie >>> 8) & GEN_MASK;
    if (kind === WAKE_IRQFD) {
      if (!hup || !onIrqfdHangup) {
        if (irqfdWakeup(h, slot, gen, efd, hup)) return true;
        // -EWOULDBLOCK: irqfd_wakeup schedules the inject work itself, here in the VM's own
        // memory too, so that the injector is a thread the controlled scheduler can see waking.
        handToInjector(h, efd, 1);
        return true;
      }
      efd.unbindWakeup(token);
      onIrqfdHangup(slot, gen);
    } else if (kind === WAKE_VIRQFD) virqfdWakeup(h, slot, gen, efd, hup);
    return true;
  });
  if (h.selfVcpu >= 0) h.onAckedSpi = (pin) => resamplerAck(h, pin, fds);
}

/**
 * schedule_work(&irqfd->inject): `n` units for the injector on `efd`'s work word, then a ring of
 * the VM's irqfdWork word. In that order: the controlled-mode injector reads irqfdWork before it
 * scans the work words and sleeps only while irqfdWork is unchanged, so work added after its scan
 * always changes the word it sleeps on ("work handed over while the injector goes to sleep").
 */
export function handToInjector(h: Host, efd: EventFd, n: number): void {
  efd.scheduleWork(n);
  Atomics.add(h.m, D.irqfdWork, 1);
  Atomics.notify(h.m, D.irqfdWork);
}

/** Enter irqfd `slot` of generation `gen` if it is still active. Pair with irqfdExit. */
export function irqfdEnter(m: Int32Array, e: number, gen: number): boolean {
  Atomics.add(m, e + IRQFD.off.inflight, 1);
  if (Atomics.load(m, e + IRQFD.off.state) === IRQFD_ACTIVE && (Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK) === gen) return true;
  irqfdExit(m, e);
  return false;
}

export function irqfdExit(m: Int32Array, e: number): void {
  // The last one out of an irqfd being shut down wakes the shutdown's wait.
  if (Atomics.sub(m, e + IRQFD.off.inflight, 1) === 1 && Atomics.load(m, e + IRQFD.off.state) !== IRQFD_ACTIVE) {
    Atomics.notify(m, e + IRQFD.off.inflight);
  }
}

/**
 * Injections are counted before they can become visible: the guest may acknowledge the interrupt
 * on another thread before the injection call even returns, and whoever waits for that ack must
 * find it counted ("ack before count" race). `refused` then moves a count the vgic turned down to
 * `dropped`. (Two calls rather than a callback: no closure per interrupt.)
 */
function counted(m: Int32Array, e: number, counter: number): void {
  Atomics.add(m, e + counter, 1);
}
function refused(m: Int32Array, e: number, counter: number): void {
  Atomics.sub(m, e + counter, 1);
  Atomics.add(m, e + IRQFD.off.dropped, 1);
}

/** Consume the eventfd (0n if empty or closed) and account for it. */
function consume(m: Int32Array, e: number, efd: EventFd): bigint {
  let n: bigint;
  try {
    n = efd.tryRead();
  } catch {
    return 0n; // closed under us: the POLLHUP path shuts the irqfd down
  }
  if (n !== 0n) Atomics.add(m, e + IRQFD.off.consumed, n > 0x3fffffffn ? 0x3fffffff : Number(n));
  return n;
}

/**
 * irqfd_wakeup + kvm_arch_set_irq_inatomic: in the writer's thread, raise the GSI (level 1 only)
 * if the vgic is initialised and the route allows it (irqchip; MSI with a cached translation).
 * Otherwise -EWOULDBLOCK: return false and leave the count; the eventfd then schedules the
 * injector's work item (which translates under its_lock). True: done in this thread.
 */
function irqfdWakeup(h: Host, slot: number, gen: number, efd: EventFd, hup: boolean): boolean {
  const m = h.m;
  const e = irqfdOff(h.g, slot);
  if (hup) {
    // POLLHUP in a thread that cannot run the shutdown: mark it; the VMM thread reaps it.
    if (Atomics.compareExchange(m, e + IRQFD.off.state, IRQFD_ACTIVE, IRQFD_HUP) === IRQFD_ACTIVE) {
      efd.unbindWakeup(m[D.vmToken]!);
    }
    return true;
  }
  // Not active (being assigned: assign schedules the work for a count it finds once ACTIVE; or
  // being shut down: dropped) or another generation: nothing to do here.
  if (!irqfdEnter(m, e, gen)) return true;
  try {
    const gsi = m[e + IRQFD.off.gsi]! >>> 0; // a u32 (kvm_irqfd.gsi)
    const route = atomicRoute(h, gsi);
    if (route === null) return false;
    if (route === 'irqchip') {
      if (consume(m, e, efd) === 0n) return true;
      counted(m, e, IRQFD.off.fastInjections);
      if (!setGsi(h, gsi, true)) refused(m, e, IRQFD.off.fastInjections);
      return true;
    }
    // An MSI route: only a translation-cache hit may be used here, and it is looked up before
    // the count is consumed, so that a miss leaves the count to the work item.
    const r = cacheLookup(h, route.its, route.devid, route.data);
    if (r < 0) return false;
    try {
      if (consume(m, e, efd) !== 0n) {
        counted(m, e, IRQFD.off.fastInjections);
        lpiInject(h, r);
      }
      return true;
    } finally {
      cachePut(h, r);
    }
  } finally {
    irqfdExit(m, e);
  }
}

/**
 * irqfd_inject (the work item), on the injector worker: a plain irqfd pulses the GSI (1 then 0);
 * a resampling one only raises it, the resampler lowers it at the guest's EOI. False when there
 * was nothing to consume (or the irqfd is not active).
 */
export function irqfdInjectWork(h: Host, slot: number, gen: number, efd: EventFd): boolean {
  const m = h.m;
  const e = irqfdOff(h.g, slot);
  if (!irqfdEnter(m, e, gen)) return false;
  try {
    if (consume(m, e, efd) === 0n) return false;
    const gsi = m[e + IRQFD.off.gsi]! >>> 0; // a u32 (kvm_irqfd.gsi)
    counted(m, e, IRQFD.off.slowInjections);
    if (!setGsi(h, gsi, true)) refused(m, e, IRQFD.off.slowInjections);
    else if (!m[e + IRQFD.off.resample]) setGsi(h, gsi, false);
    return true;
  } finally {
    irqfdExit(m, e);
  }
}

/**
 * irqfd_resampler_ack, on the vCPU thread that folded a level SPI's EOI (spec §8.5): lower the
 * GSI once, then signal every resamplefd on it. Once, not per irqfd: a second lowering could undo
 * a re-assertion made by a device that reacted to the first signal ("resample vs re-assert" race,
 * the kernel's comment in irqfd_resampler_ack).
 */
export function resamplerAck(h: Host, pin: number, fds: FdCache | null): void {
  const m = h.m;
  if (Atomics.load(m, D.irqfdResamplers) === 0) return;
  const hi = Atomics.load(m, D.irqfdHiwater);
  let lowered = false;
  let signalled = false;
  for (let i = 0; i < hi; i++) {
    const e = irqfdOff(h.g, i);
    if (Atomics.load(m, e + IRQFD.off.state) !== IRQFD_ACTIVE || !m[e + IRQFD.off.resample] || m[e + IRQFD.off.gsi] !== pin) continue;
    const gen = Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK;
    if (!irqfdEnter(m, e, gen)) continue;
    try {
      // Seeded (resampleLowerPerIrqfd): lower before every signal, not once before all of them.
      if (!lowered || h.bugs & BUG.resampleLowerPerIrqfd) {
        lowered = true;
        setGsi(h, pin, false);
      }
      const rfd = fds?.get(i, gen)?.resamplefd;
      if (!rfd) throw new Error(`irqfd ${i}: resamplefd of generation ${gen} was never delivered to this thread`);
      rfd.signal(1n);
      Atomics.add(m, e + IRQFD.off.resamples, 1);
      signalled = true;
    } finally {
      irqfdExit(m, e);
    }
  }
  if (signalled && h.hist) h.hist.record(EventKind.RESAMPLE, pin + VGIC_NR_PRIVATE_IRQS, h.selfVcpu, 0, 0);
}
