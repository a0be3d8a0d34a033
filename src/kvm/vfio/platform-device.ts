/**
 * The VMM's handle on a VFIO-like platform device (drivers/vfio/platform): its interrupt lines,
 * VFIO_DEVICE_GET_IRQ_INFO / VFIO_DEVICE_SET_IRQS with the uapi's flags, and the device worker
 * (workers/device.ts) that raises the interrupts. Counts are read from shared memory, live.
 */
import { accessRecycled } from '../../check/lockset/index.js';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { EventFd } from '../../eventfd/eventfd.js';
import { DEV_EXITED, DEV_RUNNING, NR_PHYS_IRQS, PHYS_INTID_BASE, PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, PIRQ_MASKED, PIRQ_USER_MASKED } from '../../shm/layouts.js';
import { deviceSlot, physOff } from '../../shm/vm-memory.js';
import type { Host } from '../../vgic/host.js';
import { bellOf, ringDevice } from '../../vgic/phys-irq.js';
import { D } from '../../vgic/host.js';
import { popcount } from '../../vgic/irq.js';
import { KvmError, kvmErr } from '../../uapi/errno.js';
import { checkVmUsable } from '../vm-closed.js';
import { nameIoctls } from '../ioctl-names.js';
import { describe } from '../vm-options.js';
import { irqBypass, type IrqBypassProducer } from '../irq-bypass.js';
import type { Vm } from '../vm.js';
import { GEN_MASK, makeCookie, WAKE_VIRQFD } from '../wake-cookie.js';
import { distPath } from '../worker-path.js';
import type { DeviceControl, DeviceWorkerData } from '../../../workers/device.js';
import { maskLine, unmaskLine } from './device-line.js';
import { isForwarded, unforwardIrq } from './forward.js';
import { scheduleEvents, type IrqSchedule } from './schedule.js';
import {
  VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_IRQ_INFO_NORESIZE,
} from '../../uapi/vfio.js';

export type VfioIrqType = 'edge' | 'level';

export interface VfioPlatformDeviceOptions {
  /** Trigger type of each interrupt (VFIO IRQ index = array index). */
  irqs: VfioIrqType[];
  name?: string;
  /**
   * Map the VM in the device thread, so that a trigger bound to an irqfd is injected by KVM's
   * fast path right in the device thread (default). false: the irqfd injector does it.
   */
  fastPath?: boolean;
}

export interface VfioIrqInfo {
  index: number;
  flags: number;
  count: number;
}

export interface VfioIrqCounts {
  /** Device events generated. */
  raised: number;
  /** Host interrupts delivered: trigger eventfd signals. */
  signalled: number;
  /** Events completed (unmask after resample, host completion, or the guest's HW deactivation). */
  serviced: number;
  /** Completed by the guest through a HW-mapped LR while forwarded. */
  hwDeactivations: number;
  unmasks: number;
  masked: boolean;
  active: boolean;
  forwarded: boolean;
  /** Events raised but not yet completed. */
  outstanding: number;
}

/** The bypass producer of a trigger eventfd: what the KVM side needs to forward its line. */
export interface VfioBypassProducer extends IrqBypassProducer {
  readonly vfio: { host: Host; line: number };
}

/** How long a running device thread may take to apply a control message. */
const CONTROL_TIMEOUT_MS = 5000;
/**
 * How long a device thread may take to start (load its modules, map the VM) before its first
 * control message counts as lost. Far longer: on a loaded 2-core machine (load average 20) a
 * worker's start took more than 5 s, and the first VFIO_DEVICE_SET_IRQS failed with ETIMEDOUT.
 */
const START_TIMEOUT_MS = 60_000;
let nextGen = 0;

/** Per VM: which device thread slots are taken. */
const slotsInUse = new WeakMap<Host, Set<number>>();

export class VfioPlatformDevice {
  readonly name: string;
  private readonly h: Host;
  private readonly lines: number[];
  private readonly types: VfioIrqType[];
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly slotK: number;
  private readonly gen: number;
  private readonly triggers: (EventFd | null)[];
  private readonly unmaskFds: (EventFd | null)[];
  private readonly producers: (VfioBypassProducer | null)[];
  private closed = false;
  private finalCounts: VfioIrqCounts[] | null = null;
  private readonly offTeardown: () => void;
  private ctlSent = 0;
  private workerError: Error | null = null;

  /** Open a device with `opts.irqs` lines on this VM's physical interrupt controller. */
  constructor(vm: Vm, opts: VfioPlatformDeviceOptions) {
    const h = vm.host;
    checkVmUsable(h, 'VFIO device');
    if (!Array.isArray(opts?.irqs) || opts.irqs.length === 0 || opts.irqs.some((t) => t !== 'edge' && t !== 'level')) {
      kvmErr('EINVAL', "VFIO device: irqs must be a non-empty array of 'edge' | 'level'");
    }
    const used = slotsInUse.get(h) ?? new Set<number>();
    slotsInUse.set(h, used);
    let k = 0;
    while (used.has(k)) k++;
    const slot = deviceSlot(h.g, k);
    if (slot < 0) kvmErr('ENOSPC', 'VFIO device: no thread slot left in this VM for another device');
    const m = h.m;
    const free: number[] = [];
    for (let i = 0; i < NR_PHYS_IRQS && free.length < opts.irqs.length; i++) if (Atomics.load(m, physOff(h.g, i) + PHYS_IRQ.off.used) === 0) free.push(i);
    if (free.length < opts.irqs.length) kvmErr('ENOSPC', `VFIO device: only ${free.length} of ${NR_PHYS_IRQS} physical lines are free`);
    nextGen = (nextGen % GEN_MASK) + 1; // > 0: `used` doubles as "owned"
    this.gen = nextGen;
    free.forEach((line, i) => {
      const p = physOff(h.g, line);
      accessRecycled(h, p, PHYS_IRQ.size); // a fresh line: its former owner's thread is gone
      for (let w = 0; w < PHYS_IRQ.size; w++) Atomics.store(m, p + w, 0);
      m[p + PHYS_IRQ.off.level] = opts.irqs[i] === 'level' ? 1 : 0;
      m[p + PHYS_IRQ.off.bell] = free[0]!;
      Atomics.store(m, p + PHYS_IRQ.off.used, this.gen);
    });
    used.add(k);
    this.slotK = k;
    this.h = h;
    this.lines = free;
    this.types = [...opts.irqs];
    this.name = opts.name ?? `vfio-platform${k}`;
    this.triggers = this.types.map(() => null);
    this.unmaskFds = this.types.map(() => null);
    this.producers = this.types.map(() => null);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const init = vm.threadInit();
    const wd: DeviceWorkerData = {
      buffers: init.buffers, cfg: init.cfg, history: init.stress?.history ?? null, slot, name: this.name,
      lines: free, port: port2, fastPath: opts.fastPath ?? true,
    };
    this.worker = new Worker(distPath('workers/device.js'), { workerData: wd, transferList: [port2] });
    // The device thread never keeps the process alive by itself (an idle VM must let node exit).
    this.worker.unref();
    this.worker.on('error', (e) => {
      this.workerError = deviceDied(this.name, e.message);
    });
    this.worker.on('exit', (code) => {
      if (!this.closed) this.workerError ??= deviceDied(this.name, `its thread exited (code ${code})`);
    });
    this.offTeardown = vm.onTeardown(this.name, () => this.close());
  }

  get numIrqs(): number {
    return this.types.length;
  }

  /** Physical INTID of interrupt `index` (what a HW-mapped LR carries as pINTID). */
  pintid(index: number): number {
    return PHYS_INTID_BASE + this.lines[this.checkIndex(index)]!;
  }

  /** @internal physical line of interrupt `index`. */
  line(index: number): number {
    this.checkOpen();
    return this.lines[this.checkIndex(index)]!;
  }

  /** True once close() ran: every VFIO call then fails with EBADF. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  get host(): Host {
    return this.h;
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. Level interrupts are automasked, as vfio-platform reports them. */
  getIrqInfo(index: number): VfioIrqInfo {
    this.checkOpen();
    const i = this.checkIndex(index);
    const level = this.types[i] === 'level';
    return { index: i, count: 1, flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE | (level ? VFIO_IRQ_INFO_AUTOMASKED : 0) };
  }

  /**
   * VFIO_DEVICE_SET_IRQS. `data`: one entry per interrupt of [start, start + count): EventFds (or
   * null for "fd -1", to disable) with DATA_EVENTFD, booleans with DATA_BOOL, nothing with
   * DATA_NONE. A platform interrupt index has one interrupt, so start must be 0 and count 0 or 1.
   */
  setIrqs(flags: number, index: number, start: number, count: number, data?: readonly (EventFd | null)[] | readonly boolean[]): void {
    this.checkOpen();
    for (const [k, v] of [['flags', flags], ['start', start], ['count', count]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) kvmErr('EINVAL', `VFIO_DEVICE_SET_IRQS: ${k} must be a u32, got ${describe(v)}`);
    }
    const dataType = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if (!Number.isInteger(flags) || (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) !== 0
      || popcount(dataType) !== 1 || popcount(action) !== 1) kvmErr('EINVAL', `VFIO_DEVICE_SET_IRQS: flags ${flags} must name exactly one data type and one action`);
    const i = this.checkIndex(index);
    if (start !== 0 || !Number.isInteger(count) || count < 0 || count > 1) kvmErr('EINVAL', 'VFIO_DEVICE_SET_IRQS: a platform interrupt index has exactly one interrupt (start 0, count 0..1)');
    // vfio_set_irqs_validate_and_prepare sizes the payload, then memdup_user copies it: a payload
    // that is not there is EFAULT; one of the wrong size, EINVAL.
    if (dataType !== VFIO_IRQ_SET_DATA_NONE && count > 0 && (data === null || data === undefined)) kvmErr('EFAULT', 'VFIO_DEVICE_SET_IRQS: no data');
    if (dataType !== VFIO_IRQ_SET_DATA_NONE && (!Array.isArray(data) || data.length !== count)) kvmErr('EINVAL', `VFIO_DEVICE_SET_IRQS: data must hold ${count} entries`);
    const bool = dataType === VFIO_IRQ_SET_DATA_BOOL ? (data as boolean[])[0] === true : true;
    const fd = dataType === VFIO_IRQ_SET_DATA_EVENTFD ? ((data as (EventFd | null)[])[0] ?? null) : undefined;
    if (fd !== undefined && fd !== null && (!EventFd.is(fd) || fd.closed)) kvmErr('EBADF', 'VFIO_DEVICE_SET_IRQS: not an open eventfd');
    if (action === VFIO_IRQ_SET_ACTION_TRIGGER) {
      if (fd !== undefined) return this.setTrigger(i, fd);
      if (count === 0) return this.setTrigger(i, null); // DATA_NONE, count 0: tear the trigger down
      if (bool) this.raise(i, 1); // DATA_NONE/BOOL: fire it (loopback testing)
      return;
    }
    if (action === VFIO_IRQ_SET_ACTION_MASK) {
      if (fd !== undefined) kvmErr('EINVAL', 'VFIO_DEVICE_SET_IRQS: a mask eventfd is not supported by platform devices');
      if (count && bool) maskLine(this.h, physOff(this.h.g, this.lines[i]!));
      return;
    }
    if (fd !== undefined) return this.setUnmaskEventFd(i, fd);
    if (count && bool) unmaskLine(this.h, physOff(this.h.g, this.lines[i]!), true);
  }

  /** DATA_EVENTFD | ACTION_TRIGGER: the eventfd signalled for each host interrupt (null: none). */
  setTrigger(index: number, fd: EventFd | null): void {
    const i = this.checkIndex(index);
    checkEventFdArg(fd, 'VFIO_DEVICE_SET_IRQS: the trigger');
    const old = this.producers[i];
    if (old) {
      irqBypass.unregisterProducer(old);
      this.producers[i] = null;
    }
    this.triggers[i] = fd;
    // Synchronous: once this returns the device signals only the new eventfd.
    this.control({ op: 'trigger', index: i, fd: fd ? fd.share() : null });
    if (fd) {
      // VFIO registers an irq-bypass producer for the eventfd (token = the eventfd).
      const p: VfioBypassProducer = { token: fd.token, vfio: { host: this.h, line: this.lines[i]! } };
      try {
        irqBypass.registerProducer(p);
        this.producers[i] = p;
      } catch {
        // another producer already holds this token: no bypass, the software path still works
      }
    }
  }

  /** DATA_EVENTFD | ACTION_UNMASK: the eventfd whose signals unmask (VFIO's virqfd; null: none). */
  setUnmaskEventFd(index: number, fd: EventFd | null): void {
    this.checkOpen(); // before binding: a closed device must not leave the eventfd bound
    const i = this.checkIndex(index);
    checkEventFdArg(fd, 'VFIO_DEVICE_SET_IRQS: the unmask eventfd');
    const token = this.h.m[this.vmTokenIdx()]!;
    const old = this.unmaskFds[i];
    if (old) old.unbindWakeup(token);
    this.unmaskFds[i] = null;
    if (fd) {
      if (!fd.bindWakeup(token, makeCookie(WAKE_VIRQFD, this.gen, this.lines[i]!))) kvmErr('EBUSY', 'VFIO_DEVICE_SET_IRQS: the unmask eventfd already has a wake-up callback (an irqfd?)');
      this.unmaskFds[i] = fd;
    }
    this.control({ op: 'unmaskfd', index: i, fd: fd ? fd.share() : null });
    // A count already there unmasks now, as virqfd does at registration.
    if (fd && fd.value !== 0n) {
      fd.tryRead();
      unmaskLine(this.h, physOff(this.h.g, this.lines[i]!), false);
    }
  }

  /** Raise interrupt `index` on a schedule (replaces any schedule it had). */
  start(index: number, schedule: IrqSchedule): void {
    const i = this.checkIndex(index);
    scheduleEvents(schedule);
    this.control({ op: 'schedule', index: i, schedule });
  }

  /** Raise `n` events on interrupt `index` now. */
  raise(index: number, n = 1): void {
    const i = this.checkIndex(index);
    if (!Number.isInteger(n) || n < 0) kvmErr('EINVAL', 'raise: n must be an integer >= 0');
    this.control({ op: 'raise', index: i, n });
  }

  /** Live counts of interrupt `index`; after close(), the counts it closed with. */
  counts(index: number): VfioIrqCounts {
    const i = this.checkIndex(index);
    // Once closed, its lines may belong to another device: report what it closed with.
    if (this.finalCounts) return { ...this.finalCounts[i]! };
    const m = this.h.m;
    const p = physOff(this.h.g, this.lines[i]!);
    const c = (f: keyof typeof PHYS_IRQ.off): number => Atomics.load(m, p + PHYS_IRQ.off[f]);
    const s = c('state');
    return {
      raised: c('raised'), signalled: c('signalled'), serviced: c('serviced'), hwDeactivations: c('hwDeactivations'),
      unmasks: c('unmasks'), masked: (s & (PIRQ_MASKED | PIRQ_USER_MASKED)) !== 0, active: (s & PIRQ_ACTIVE) !== 0,
      forwarded: (s & PIRQ_FWD) !== 0, outstanding: c('raised') - c('serviced'),
    };
  }

  /** Set if the device thread failed. */
  get failure(): Error | null {
    return this.workerError;
  }

  /** Close the device: stop its thread, drop its eventfds and bypass producers, free its lines. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.offTeardown();
    for (let i = 0; i < this.types.length; i++) {
      // A line still forwarded (KVM VFIO FORWARD_IRQ) is unforwarded first: its SPI must not stay
      // HW-mapped to a line another device will own.
      // (At VM teardown the vgic is already gone: then there is no mapping left to undo.)
      if (isForwarded(this.h, this.lines[i]!) && Atomics.load(this.h.m, D.initialized)) unforwardIrq(this.h, this.lines[i]!);
      if (this.producers[i]) irqBypass.unregisterProducer(this.producers[i]!);
      this.unmaskFds[i]?.unbindWakeup(this.h.m[this.vmTokenIdx()]!);
    }
    try {
      this.control({ op: 'close' });
    } catch {
      // the thread is gone or stuck: terminate below anyway
    }
    this.finalCounts = this.types.map((_, i) => this.counts(i));
    this.closed = true;
    this.port.close();
    await this.worker.terminate();
    for (const line of this.lines) Atomics.store(this.h.m, physOff(this.h.g, line) + PHYS_IRQ.off.used, 0);
    slotsInUse.get(this.h)?.delete(this.slotK);
  }

  private vmTokenIdx(): number {
    return D.vmToken;
  }

  /** Post a control message, ring the device, wait until it applied it (bounded). */
  private control(c: DeviceControl): void {
    this.checkOpen();
    const m = this.h.m;
    const p0 = physOff(this.h.g, this.lines[0]!);
    const ack = p0 + PHYS_IRQ.off.ctlAck;
    this.port.postMessage(c);
    const want = ++this.ctlSent;
    ringDevice(m, bellOf(this.h, p0));
    // The running bound counts from when the thread was seen running, not from the post.
    let since = performance.now();
    let started = Atomics.load(m, p0 + PHYS_IRQ.off.devState) === DEV_RUNNING;
    for (let a = Atomics.load(m, ack); a < want; a = Atomics.load(m, ack)) {
      const state = Atomics.load(m, p0 + PHYS_IRQ.off.devState);
      if (!this.workerError && state === DEV_EXITED) this.workerError = deviceDied(this.name, 'its thread exited');
      if (this.workerError) throw this.workerError;
      if (state === DEV_RUNNING && !started) {
        started = true;
        since = performance.now();
      }
      const bound = started ? CONTROL_TIMEOUT_MS : START_TIMEOUT_MS;
      if (performance.now() - since > bound) kvmErr('ETIMEDOUT', `${this.name}: the device thread did not ${state === DEV_RUNNING ? 'take a control message' : 'start'} within ${bound} ms`);
      Atomics.wait(m, ack, a, 20);
    }
  }

  private checkIndex(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.types.length) kvmErr('EINVAL', `VFIO: no interrupt index ${index} (the device has ${this.types.length})`);
    return index;
  }

  private checkOpen(): void {
    if (this.closed) kvmErr('EBADF', `${this.name} is closed`);
    if (this.workerError) throw this.workerError;
  }
}

/** A device whose thread is gone: every later call fails with this (EIO, as a dead device's fd). */
function deviceDied(name: string, why: string): KvmError {
  return new KvmError('EIO', `${name}: the device thread died: ${why}`);
}

/** An eventfd argument (or null for none): anything else is EBADF, as eventfd_ctx_fdget says. */
function checkEventFdArg(fd: unknown, what: string): void {
  if (fd !== null && (!EventFd.is(fd) || fd.closed)) kvmErr('EBADF', `${what} is not an open eventfd (null for none)`);
}

nameIoctls(VfioPlatformDevice.prototype, { getIrqInfo: 'VFIO_DEVICE_GET_IRQ_INFO', setIrqs: 'VFIO_DEVICE_SET_IRQS', setTrigger: 'VFIO_DEVICE_SET_IRQS', setUnmaskEventFd: 'VFIO_DEVICE_SET_IRQS' });
