/**
 * A VFIO platform device wired the way QEMU wires it, under an event storm. Set-up (main thread,
 * QEMU's order): the device's three lines (two level, one edge); KVM_DEV_TYPE_VFIO with the
 * device added; VFIO_DEVICE_GET_IRQ_INFO; trigger eventfds and, for the level lines, the
 * resamplefd as VFIO's unmask eventfd; KVM_IRQFD (with KVM_IRQFD_FLAG_RESAMPLE for the level
 * lines); a user mask and unmask through VFIO_DEVICE_SET_IRQS; and level line 1 forwarded
 * (KVM_DEV_VFIO_DEVICE_FORWARD_IRQ: its LR is HW-mapped, the guest's deactivation completes the
 * physical interrupt). During the run the driver is the hardware: it raises events on the lines
 * (delivered through the trigger eventfds with KVM's irqfd fast path, by the device thread in
 * chaos mode, by the driver itself in controlled mode) while SPIs from KVM_IRQ_LINE storm the
 * same vCPUs.
 *
 * Accounting: every event on a level line is taken exactly once and completed once (by a
 * resample for line 0, by the guest's deactivation of the HW-mapped LR for line 1); the edge
 * line's events are delivered (coalescing allowed); the storm's SPIs as spi-storm.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { Vm } from '../../kvm/vm.js';
import { EventFd, type EventFdHandle } from '../../eventfd/eventfd.js';
import { deliver } from '../../kvm/vfio/device-line.js';
import { VfioPlatformDevice } from '../../kvm/vfio/platform-device.js';
import { physOff } from '../../shm/vm-memory.js';
import { PHYS_IRQ } from '../../shm/layouts.js';
import { bellOf, ringDevice } from '../../vgic/phys-irq.js';
import {
  KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD,
  KVM_IRQFD_FLAG_RESAMPLE,
} from '../../uapi/kvm.js';
import { VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_NONE } from '../../uapi/vfio.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, idleForever, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'vfio-fwd',
  description: 'a VFIO platform device (resampled level line, forwarded level line, edge line) under an SPI storm',
  vcpus: 2,
  iterations: 60,
  spis: 2,
};

const TYPES = ['level', 'level', 'edge'] as const;
/** The device's lines drive GSIs FIRST_GSI.. (SPIs 32 + FIRST_GSI..), above the storm's SPIs. */
const FIRST_GSI = 8;
const FORWARDED = 1;
const spiOf = (i: number): number => 32 + FIRST_GSI + i;

const W = SRAM.SCRATCH;
/** Per line: events the driver raised; the guest's acknowledgements of the line's SPI. */
const RAISED = W;
const TAKEN = W + 8;
const CONFIGURED = W + 16;

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase !== 'after-init') return;
  const dev = new VfioPlatformDevice(vm, { irqs: [...TYPES], name: 'vfio-fwd' });
  const vfio = vm.createDevice(KVM_DEV_TYPE_VFIO)!;
  vfio.setAttr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, dev);
  const lines: number[] = [];
  const triggers: EventFdHandle[] = [];
  TYPES.forEach((t, i) => {
    if (dev.getIrqInfo(i).count !== 1) throw new Error('vfio-fwd: a platform IRQ index has one interrupt');
    const trigger = new EventFd();
    dev.setTrigger(i, trigger);
    if (t === 'level') {
      const resample = new EventFd();
      dev.setUnmaskEventFd(i, resample); // QEMU passes the resamplefd as VFIO's unmask eventfd
      vm.irqfd({ fd: trigger, gsi: FIRST_GSI + i, flags: KVM_IRQFD_FLAG_RESAMPLE, resamplefd: resample });
    } else vm.irqfd({ fd: trigger, gsi: FIRST_GSI + i });
    // A user mask and unmask (DATA_NONE and DATA_BOOL forms), as a VMM quiescing the device.
    dev.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, i, 0, 1);
    dev.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK, i, 0, 1, [true]);
    // Each schedule form, empty (the device raises nothing by itself: the driver is the hardware).
    dev.start(i, i === 0 ? { kind: 'rate', count: 0, periodMs: 1 } : i === 1 ? { kind: 'burst', bursts: 0, size: 1, gapMs: 1 } : { kind: 'random', count: 0, meanGapMs: 1, seed: a.seed });
    lines.push(dev.line(i));
    triggers.push(trigger.share());
  });
  vfio.setAttr(KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, { fd: dev, index: FORWARDED, start: 0, count: 1, gsi: FIRST_GSI + FORWARDED });
  if (!dev.counts(FORWARDED).forwarded) throw new Error('vfio-fwd: the line was not forwarded');
  a.extra = { ...a.extra, vfio: { lines, triggers } };
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  if (cpu.id === 0) {
    TYPES.forEach((t, i) => {
      cpu.driver.setEdge(spiOf(i), t === 'edge');
      cpu.driver.route(spiOf(i), i % cpu.nrVcpus);
      cpu.driver.enable(spiOf(i));
    });
    cpu.store(CONFIGURED, 1);
  }
  guestPrologue(cpu, a, (c, id) => {
    const i = id - spiOf(0);
    if (i >= 0 && i < TYPES.length) c.add(TAKEN + i, 1);
  });
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  const w = a.extra?.vfio as { lines: number[]; triggers: EventFdHandle[] } | undefined;
  if (!w) throw new Error('vfio-fwd: setup() did not open the device');
  const h = d.host;
  const m = h.m;
  const p = w.lines.map((l) => physOff(h.g, l));
  const triggers = w.triggers.map((t) => EventFd.from(t));
  const counter = (i: number, f: 'raised' | 'serviced' | 'signalled'): number => Atomics.load(m, p[i]! + PHYS_IRQ.off[f]);
  // Raised events are all completed (level: serviced; edge: signalled, i.e. delivered).
  const lineDone = (i: number): boolean => counter(i, TYPES[i] === 'level' ? 'serviced' : 'signalled') === counter(i, 'raised');
  let k = 0;
  const raise = (): void => {
    const i = k++ % TYPES.length;
    Atomics.add(d.ram, RAISED + i, 1);
    // The hardware event. In chaos mode the device thread delivers it (VFIO's interrupt
    // handler, in a thread of its own); in controlled mode this thread does, because the device
    // thread is not a scheduled thread: its timing would make the run unreplayable, and a driver
    // waiting for it would hold the baton the vCPUs need. deliver() is the same CAS-decided
    // transition either way, so the device thread, woken by an unmask, finds nothing left to do.
    Atomics.add(m, p[i]! + PHYS_IRQ.off.raised, 1);
    if (d.controlled) while (deliver(m, p[i]!, triggers[i]!));
    else ringDevice(m, bellOf(h, p[i]!));
  };
  const settled = (): boolean => TYPES.every((_, i) => lineDone(i)) && d.spisQuiet(TYPES.map((_, i) => spiOf(i)));
  if (!d.waitFor(() => Atomics.load(d.ram, CONFIGURED) === 1, 'the lines to be configured')) return d.stopVm();
  // An event every other storm injection; the level lines' events wait for their completion.
  spiStormDriver(d, a, () => {
    for (let j = 0; j < a.iterations; j++) {
      raise();
      if (!d.waitFor(() => TYPES.every((_, i) => TYPES[i] === 'edge' || lineDone(i)), 'the level lines to be completed')) return;
      d.relax(j);
    }
  }, settled);
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out = checkSpiAccounting(ram, a);
  TYPES.forEach((t, i) => {
    const raised = Atomics.load(ram, RAISED + i);
    const taken = Atomics.load(ram, TAKEN + i);
    if (t === 'level' && taken !== raised) out.push(`VFIO line ${i} (level${i === FORWARDED ? ', forwarded' : ''}): ${raised} events raised, ${taken} taken`);
    if (t === 'edge' && (taken > raised || (raised > 0 && taken === 0))) out.push(`VFIO line ${i} (edge): ${raised} events raised, ${taken} taken`);
  });
  return out;
}
