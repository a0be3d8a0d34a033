/**
 * The irqfd injector worker: the kernel's irqfd inject work item, for one VM. It polls every
 * irqfd's eventfd (Atomics.waitAsync: its event loop is free, unlike a vCPU's) and injects what the
 * writer's fast path could not take: writes from threads that do not map this VM, and counts
 * signalled before the vgic was initialised or before the irqfd existed.
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
/** How often a poller re-checks its irqfd while its eventfd stays quiet. */
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
    let ready: boolean;
    try {
      ready = await fd.waitReadableAsync(POLL_SLICE_MS);
    } catch {
      // Closed (POLLHUP), possibly by a thread that does not map this VM and so could not run
      // the callback: mark the irqfd so that the VMM thread reaps it (irqfd.ts reapHangups).
      if ((Atomics.load(m, e + IRQFD.off.gen) & GEN_MASK) === msg.gen) Atomics.compareExchange(m, e + IRQFD.off.state, IRQFD_ACTIVE, IRQFD_HUP);
      return;
    }
    if (ready && seenActive) {
      // A count seen at a slice timeout may be one a writer added a microsecond ago and is about
      // to take on its fast path: look again after a turn of the event loop, and leave counts
      // that are consumed by then to their writer (kept rare, not impossible: a writer
      // preempted between its add and its callback still loses the count to us, harmlessly).
      await new Promise((r) => setImmediate(r));
      if (fd.value !== 0n) irqfdInjectWork(h, msg.slot, msg.gen, fd);
    }
    else if (ready) await new Promise((r) => setImmediate(r)); // the VMM is between publish and ACTIVE
  }
}

wd.port.on('message', (msg: FdMessage) => {
  void poll(msg);
});
