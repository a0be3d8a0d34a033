/**
 * The irqfd injector worker: the kernel's irqfd inject work item, for one VM. It waits on every
 * irqfd's eventfd work word (Atomics.waitAsync: its event loop is free, unlike a vCPU's) and
 * injects what the eventfd handed to it: writes from threads that do not map this VM, signals
 * the fast path declined (-EWOULDBLOCK: an MSI translation-cache miss), and a count found at
 * assign. It never looks at a count that nobody handed over, so it cannot take one that a
 * writer's fast path is about to consume ("work item steals the fast path's count").
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { EventFd } from '../src/eventfd/eventfd.js';
import type { FdMessage } from '../src/kvm/fd-channel.js';
import { irqfdInjectWork } from '../src/kvm/irqfd-path.js';
import { GEN_MASK } from '../src/kvm/wake-cookie.js';
import { IRQFD, IRQFD_ACTIVE, IRQFD_HUP } from '../src/shm/layouts.js';
import { computeGeometry, injectorSlot, irqfdOff, type VmBuffers } from '../src/shm/vm-memory.js';
import { makeHost, type SharedVmConfig } from '../src/vgic/host.js';
import type { HistoryBuffers } from '../src/check/history.js';

interface InjectorData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  history: HistoryBuffers | null;
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

wd.port.on('message', (msg: FdMessage) => {
  void poll(msg);
});
