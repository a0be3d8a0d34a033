/**
 * Two devices share one level line, each through its own resampling irqfd on the same GSI, as two
 * VFIO devices behind one interrupt pin would. The guest's handler drains the work of both
 * devices; at the EOI the vCPU lowers the line once and signals both resamplefds, and a device
 * that still has work re-asserts (spec §8.5). The driver works in rounds: it gives one device new
 * work and raises its irqfd, often while the previous interrupt is still between the guest's
 * drain and its EOI, so the re-assertion races with the resampler. Lowering the line again after
 * the first resamplefd (bug seed resampleLowerPerIrqfd, race §12.21) loses that re-assertion and
 * the round never completes.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../../uapi/kvm.js';
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { guestPrologue, idleForever, resampleIrqfds, waitReady, wireResampleIrqfds } from './common.js';

export const info: ScenarioInfo = {
  name: 'irqfd-shared',
  description: 'two devices on one level line through two resampling irqfds: re-assert vs resample',
  vcpus: 2,
  iterations: 120,
  spis: 1,
  resample: true,
};

const DEVICES = 2;
/** Per device: outstanding work (driver adds, guest drains) and work served. */
const WORK = SRAM.SCRATCH;
const SERVED = SRAM.SCRATCH + 8;
const ADDED = SRAM.SCRATCH + 16;
const CONFIGURED = SRAM.SCRATCH + 24;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  const spi = a.spis[0]!;
  if (cpu.id === 0) {
    cpu.driver.setEdge(spi, false);
    cpu.store(CONFIGURED, 1);
  }
  // The handler reads both devices' status and services all their work: a shared-line driver.
  guestPrologue(cpu, a, (c) => {
    for (let d = 0; d < DEVICES; d++) {
      const w = c.load(WORK + d);
      if (w > 0) {
        c.add(WORK + d, -w);
        c.add(SERVED + d, w);
      }
    }
  });
  idleForever(cpu);
}

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase === 'after-init') wireResampleIrqfds(vm, a, Array.from({ length: DEVICES }, () => a.spis[0]! - VGIC_NR_PRIVATE_IRQS));
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  const { fds, rfds } = resampleIrqfds(a, 'irqfd-shared');
  if (!waitReady(d) || !d.waitFor(() => Atomics.load(d.ram, CONFIGURED) === 1, 'level configuration')) return d.stopVm();
  const work = (): number => Atomics.load(d.ram, WORK) + Atomics.load(d.ram, WORK + 1);
  /** VFIO's part: a device whose resamplefd fired re-asserts while it still has work. */
  const resample = (): void => {
    for (let k = 0; k < DEVICES; k++) if (rfds[k]!.tryRead() !== 0n && Atomics.load(d.ram, WORK + k) > 0) fds[k]!.write(1n);
  };
  for (let i = 0; i < a.iterations; i++) {
    const k = d.prng.int(DEVICES);
    Atomics.add(d.ram, WORK + k, 1);
    Atomics.add(d.ram, ADDED + k, 1);
    fds[k]!.write(1n);
    for (;;) {
      resample();
      if (work() === 0) break;
      if (!d.waitFor(() => work() === 0 || rfds.some((r) => r.value !== 0n), `round ${i}: device work to be serviced`)) return d.stopVm();
    }
  }
  d.waitFor(() => d.spisQuiet(a.spis), 'the shared line to settle');
  d.stopVm();
}

/** Every unit of device work was serviced by the guest. */
export function check(ram: Int32Array): string[] {
  const out: string[] = [];
  for (let k = 0; k < DEVICES; k++) {
    const added = Atomics.load(ram, ADDED + k);
    const served = Atomics.load(ram, SERVED + k);
    if (served !== added) out.push(`device ${k} on the shared line: ${added} units of work raised, ${served} serviced`);
  }
  return out;
}
