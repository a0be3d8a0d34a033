/**
 * A lockstat device thread: it maps the VM (installVmWakeups), so each eventfd write runs the
 * irqfd fast path here, in this thread, taking the irq and ap_list locks against the vCPUs and
 * the other injectors. Edge lines keep one interrupt in flight each (re-signalled once the guest
 * acknowledged the previous one); level lines are asserted again only after their resamplefd
 * fired (the guest's EOI lowered the line), as a VFIO device behind an automasked line.
 * Timestamps go into guest RAM right before each signal, for the guest's latency histogram.
 *
 * ctl (Int32): [0] start (1) / stop (2); [1] signals sent; [2] set to 1 when the loop has ended.
 */
import { workerData } from 'node:worker_threads';
import { EventFd } from '../eventfd/eventfd.js';
import { installVmWakeups } from '../kvm/irqfd-path.js';
import { computeGeometry } from '../shm/vm-memory.js';
import { makeHost } from '../vgic/host.js';
import { LS, tsSpi } from './ram.js';
import { DEV_CTL, type LockstatDeviceData } from './device-ctl.js';

/** Backoff when every line is in flight: give the core to the vCPUs (2 cores, many threads). */
const IDLE_WAIT_MS = 0.02;

const wd = workerData as LockstatDeviceData;
const h = makeHost(computeGeometry(wd.cfg), wd.cfg, wd.buffers, wd.slot, wd.name, -1, null);
installVmWakeups(h, null);
const ctl = new Int32Array(wd.ctl);
const ram = new Int32Array(wd.buffers.ram);
const ts = new Float64Array(wd.buffers.ram);
const offset = performance.timeOrigin - wd.clockBase;
const edge = wd.edge.map((e) => ({ intid: e.intid, fd: EventFd.from(e.fd), sent: 0 }));
const level = wd.level.map((l) => ({ intid: l.intid, fd: EventFd.from(l.fd), resample: EventFd.from(l.resample), busy: false }));

while (Atomics.load(ctl, DEV_CTL.RUN) === 0) Atomics.wait(ctl, DEV_CTL.RUN, 0, 50);
let sent = 0;
while (Atomics.load(ctl, DEV_CTL.RUN) === 1) {
  let progress = false;
  for (const e of edge) {
    if (Atomics.load(ram, LS.SPI_ACKS + e.intid) !== e.sent) continue;
    ts[tsSpi(e.intid)] = performance.now() + offset;
    e.sent++;
    sent++;
    progress = true;
    e.fd.write(1n);
  }
  for (const l of level) {
    if (l.busy && l.resample.tryRead() !== 0n) l.busy = false;
    if (l.busy) continue;
    ts[tsSpi(l.intid)] = performance.now() + offset;
    l.busy = true;
    sent++;
    progress = true;
    l.fd.write(1n);
  }
  Atomics.store(ctl, DEV_CTL.SENT, sent);
  if (!progress) Atomics.wait(ctl, DEV_CTL.RUN, 1, IDLE_WAIT_MS);
}
// The eventfds stay open: closing one is a hangup that deassigns the irqfd, which is the VM's
// teardown's job (vm.destroy()), not something to race with the last acknowledgements.
Atomics.store(ctl, DEV_CTL.ENDED, 1);
