/**
 * A VFIO-like platform device: one worker thread that owns physical interrupt lines and raises
 * them on its own schedule (kvm/vfio/schedule.ts). It is the "hardware plus VFIO's interrupt
 * handler": it delivers each line through its trigger eventfd (with KVM's irqfd fast path, the
 * injection runs here), is automasked for level lines, and learns that an event was serviced from
 * the line's shared record (an unmask, or the guest's deactivation of a forwarded interrupt).
 *
 * It never blocks on a MessagePort: control messages are drained with receiveMessageOnPort and it
 * sleeps with Atomics.wait on its doorbell, which every party that changes its lines rings.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { EventFd, type EventFdHandle } from '../src/eventfd/eventfd.js';
import { installVmWakeups } from '../src/kvm/irqfd-path.js';
import { deliver, unmaskLine } from '../src/kvm/vfio/device-line.js';
import { scheduleTimes, type IrqSchedule } from '../src/kvm/vfio/schedule.js';
import { DEV_EXITED, DEV_RUNNING, PHYS_IRQ } from '../src/shm/layouts.js';
import { computeGeometry, physOff, type VmBuffers } from '../src/shm/vm-memory.js';
import { makeHost, type SharedVmConfig } from '../src/vgic/host.js';
import type { HistoryBuffers } from '../src/record/history.js';

export type DeviceControl =
  | { op: 'trigger'; index: number; fd: EventFdHandle | null }
  | { op: 'unmaskfd'; index: number; fd: EventFdHandle | null }
  | { op: 'schedule'; index: number; schedule: IrqSchedule }
  | { op: 'raise'; index: number; n: number }
  | { op: 'close' };

export interface DeviceWorkerData {
  buffers: VmBuffers;
  cfg: SharedVmConfig;
  history: HistoryBuffers | null;
  slot: number;
  name: string;
  /** Physical line index of each VFIO IRQ index. */
  lines: number[];
  port: MessagePort;
  /** Map the VM in this thread so that trigger signals take KVM's irqfd fast path. */
  fastPath: boolean;
}

interface Line {
  p: number;
  trigger: EventFd | null;
  unmaskFd: EventFd | null;
  times: Generator<number, void, void> | null;
  t0: number;
  next: number;
}

const IDLE_SLICE_MS = 50;

const wd = workerData as DeviceWorkerData;
const g = computeGeometry(wd.cfg);
const h = makeHost(g, wd.cfg, wd.buffers, wd.slot, wd.name, -1, wd.history);
const m = h.m;
if (wd.fastPath) installVmWakeups(h, null);
const lines: Line[] = wd.lines.map((l) => ({ p: physOff(g, l), trigger: null, unmaskFd: null, times: null, t0: 0, next: Infinity }));
const bell = physOff(g, wd.lines[0]!) + PHYS_IRQ.off.doorbell;
// Liveness, for a VMM blocked in a control call: a thread that dies (an exception escapes this
// loop, or process.exit) says so on its way out and wakes the waiter on ctlAck, so the call fails
// at once instead of at its timeout. (The main thread's event loop may be blocked right then, so
// the Worker's 'exit' event alone could not tell it.)
const stateIdx = physOff(g, wd.lines[0]!) + PHYS_IRQ.off.devState;
process.on('exit', () => {
  Atomics.store(m, stateIdx, DEV_EXITED);
  Atomics.notify(m, physOff(g, wd.lines[0]!) + PHYS_IRQ.off.ctlAck);
});
Atomics.store(m, stateIdx, DEV_RUNNING);
const ack = physOff(g, wd.lines[0]!) + PHYS_IRQ.off.ctlAck;

function advance(l: Line): void {
  const r = l.times?.next();
  if (!r || r.done) {
    l.times = null;
    l.next = Infinity;
  } else l.next = l.t0 + r.value;
}

/** Apply every queued control message; false once told to close. */
function control(): boolean {
  let applied = 0;
  let open = true;
  for (let r = receiveMessageOnPort(wd.port); r; r = receiveMessageOnPort(wd.port)) {
    const c = r.message as DeviceControl;
    applied++;
    if (c.op === 'close') open = false;
    else if (c.op === 'trigger') lines[c.index]!.trigger = c.fd ? EventFd.from(c.fd) : null;
    else if (c.op === 'unmaskfd') lines[c.index]!.unmaskFd = c.fd ? EventFd.from(c.fd) : null;
    else if (c.op === 'raise') Atomics.add(m, lines[c.index]!.p + PHYS_IRQ.off.raised, c.n);
    else {
      const l = lines[c.index]!;
      l.times = scheduleTimes(c.schedule);
      l.t0 = performance.now();
      advance(l);
    }
  }
  // The VMM waits for this before it returns from a control call (VFIO_DEVICE_SET_IRQS is
  // synchronous: once it returns, a removed trigger is never signalled again).
  if (applied) {
    Atomics.add(m, ack, applied);
    Atomics.notify(m, ack);
  }
  return open;
}

for (;;) {
  // Read the doorbell before looking at anything: a ring after this read makes the wait below
  // return at once (the lost-wake-up race of a check-then-sleep loop).
  const b = Atomics.load(m, bell);
  if (!control()) break;
  const now = performance.now();
  let wake = Infinity;
  for (const l of lines) {
    while (l.next <= now) {
      Atomics.add(m, l.p + PHYS_IRQ.off.raised, 1);
      advance(l);
    }
    wake = Math.min(wake, l.next);
    if (l.unmaskFd) {
      // Slow path of the unmask eventfd: a signal from a thread that does not map this VM.
      let n = 0n;
      try {
        n = l.unmaskFd.tryRead();
      } catch {
        l.unmaskFd = null;
      }
      if (n !== 0n) unmaskLine(h, l.p, false);
    }
    while (deliver(m, l.p, l.trigger));
  }
  Atomics.wait(m, bell, b, Math.max(0, Math.min(IDLE_SLICE_MS, wake - performance.now())));
}
wd.port.close();
