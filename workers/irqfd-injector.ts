/**
 * The irqfd injector worker: the kernel's irqfd inject work item, for one VM. It waits on every
 * irqfd's eventfd work word (Atomics.waitAsync: its event loop is free, unlike a vCPU's) and
 * injects what the eventfd handed to it: writes from threads that do not map this VM, signals
 * the fast path declined (-EWOULDBLOCK: an MSI translation-cache miss), and a count found at
 * assign. It never looks at a count that nobody handed over, so it cannot take one that a
 * writer's fast path is about to consume ("work item steals the fast path's count").
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { EventFd } from '../src/eventfd/eventfd.js';
import type { FdMessage } from '../src/kvm/fd-channel.js';
import { irqfdInjectWork } from '../src/kvm/irqfd-path.js';
import { GEN_MASK } from '../src/kvm/wake-cookie.js';
import { IRQFD, IRQFD_ACTIVE, IRQFD_HUP } from '../src/shm/layouts.js';
import { computeGeometry, injectorSlot, irqfdOff, type VmBuffers } from '../src/shm/vm-memory.js';
import { makeHost, type SharedVmConfig } from '../src/vgic/host.js';
import type { HistoryBuffers } from '../src/record/history.js';
import { installStressHooks, type StressThreadConfig } from '../src/stress/thread-config.js';
import { D } from '../src/vgic/host.js';
import { wordWaitHook } from '../src/sync/wait-hooks.js';

interface InjectorData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  history: HistoryBuffers | null;
  /** A stress run's thread configuration: in controlled mode the injector is a participant. */
  stress: StressThreadConfig | null;
  port: MessagePort;
}

const wd = workerData as InjectorData;
const g = computeGeometry(wd.cfg);
const h = makeHost(g, wd.cfg, wd.buffers, injectorSlot(g), 'irqfd-injector', -1, wd.history);
const m = h.m;
/** How often a waiter re-checks its irqfd's state while no work comes (reassigned, released). */
const POLL_SLICE_MS = 50;

async function poll(msg: FdMessage): Promise<void> {
  const fd = EventFd.from(msg.fd);
  const e = irqfdOff(g, msg.slot);
  let seenActive = false;
  for (;;) {
    const state = Atomics.load(m, e + IRQFD.off.state);
    const gen = Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK;
    if (gen !== msg.gen) return; // the slot was reassigned
    // The message can arrive before the VMM stores ACTIVE (it publishes the eventfds first), so
    // only a state seen after ACTIVE means the irqfd is gone.
    if (state === IRQFD_ACTIVE) seenActive = true;
    else if (seenActive) return;
    try {
      if (!(await fd.waitWorkAsync(POLL_SLICE_MS))) continue;
    } catch {
      // Closed (POLLHUP), possibly by a thread that does not map this VM and so could not run
      // the callback: mark the irqfd so that the VMM thread reaps it (irqfd.ts reapHangups).
      if ((Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK) === msg.gen) Atomics.compareExchange(m, e + IRQFD.off.state, IRQFD_ACTIVE, IRQFD_HUP);
      return;
    }
    // One injection per unit handed over (a semaphore eventfd gives one count per unit; a normal
    // one gives everything to the first). Work taken before ACTIVE finds the irqfd not active and
    // leaves the count: assign schedules it again once ACTIVE.
    for (let n = fd.takeWork(); n > 0 && irqfdInjectWork(h, msg.slot, msg.gen, fd); n--);
  }
}

interface Known {
  msg: FdMessage;
  fd: EventFd;
}

/** Inject every unit handed over on a live irqfd; false when there was none. */
function serveAll(known: Map<number, Known>): boolean {
  let did = false;
  for (const [slot, k] of known) {
    const e = irqfdOff(g, k.msg.slot);
    if ((Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK) !== k.msg.gen) {
      known.delete(slot); // reassigned: its new generation's message follows
      continue;
    }
    if (k.fd.closed) {
      // POLLHUP, as the free-running poller handles it: mark it for the VMM thread to reap.
      Atomics.compareExchange(m, e + IRQFD.off.state, IRQFD_ACTIVE, IRQFD_HUP);
      known.delete(slot);
      continue;
    }
    const n = k.fd.takeWork();
    if (n > 0) did = true;
    for (let i = n; i > 0 && irqfdInjectWork(h, k.msg.slot, k.msg.gen, k.fd); i--);
  }
  return did;
}

/**
 * Controlled mode: the injector is one of the scheduled threads (slot stress.injectorSlot), so
 * whether its work runs before or after any other thread's step is the schedule's decision,
 * replayable, and "every other thread is blocked" is true only when the injector has nothing
 * handed to it either. It runs synchronously: irqfds arrive on its port (read with
 * receiveMessageOnPort), and it sleeps on the VM's irqfdWork word, which every hand-over bumps
 * after adding its unit (irqfd-path.ts handToInjector). The word is read before the scan, so a
 * hand-over after the scan changes it and the wait ends ("work handed over while the injector
 * goes to sleep").
 */
function controlledLoop(stress: StressThreadConfig): void {
  const ct = installStressHooks(stress, h, stress.injectorSlot!);
  const known = new Map<number, Known>();
  try {
    ct?.join();
    while (!Atomics.load(m, D.stop)) {
      const seen = Atomics.load(m, D.irqfdWork);
      for (let r = receiveMessageOnPort(wd.port); r; r = receiveMessageOnPort(wd.port)) {
        const msg = r.message as FdMessage;
        known.set(msg.slot, { msg, fd: EventFd.from(msg.fd) });
      }
      if (serveAll(known)) continue;
      // Free-running (after a failure, at teardown): a short plain wait, then look again.
      if (!wordWaitHook?.(D.irqfdWork, seen)) Atomics.wait(m, D.irqfdWork, seen, 2);
    }
  } finally {
    ct?.leave();
  }
}

if (wd.stress?.sched && wd.stress.injectorSlot !== undefined) controlledLoop(wd.stress);
else {
  // Chaos mode: perturbed (and, with --record, recorded) at its schedule points like every thread.
  if (wd.stress?.chaos && wd.stress.injectorSlot !== undefined) installStressHooks(wd.stress, h, wd.stress.injectorSlot);
  wd.port.on('message', (msg: FdMessage) => {
    void poll(msg);
  });
}
