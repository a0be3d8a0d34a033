/**
 * Level SPIs driven the way VFIO drives them: an irqfd with a resamplefd per SPI. The driver (the
 * "device") signals the irqfd, whose fast path raises the line in the driver's thread; the guest
 * acknowledges and EOIs; the vCPU folding that EOI lowers the line and signals the resamplefd
 * (spec §8.5), and only then may the device assert again. Several SPIs are in flight at once, so
 * resamples on different vCPUs race with new assertions. The checker requires exactly one
 * RESAMPLE per deactivation; the accounting requires one acknowledgement per assertion. In chaos
 * mode the driver sleeps on a resamplefd when it has nothing to do, so a resample that wakes
 * nobody shows as a lost wake-up.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { guestPrologue, idleForever, resampleIrqfds, waitReady, wireResampleIrqfds } from './common.js';

export const info: ScenarioInfo = {
  name: 'irqfd-resample',
  description: 'level SPIs through irqfd + resamplefd: resample on EOI races with re-assertion',
  vcpus: 2,
  iterations: 150,
  spis: 4,
  resample: true,
};

const CONFIGURED = SRAM.SCRATCH;
/** How long the chaos-mode driver sleeps on one resamplefd before it looks at the others. */
const RESAMPLE_POLL_MS = 5;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  if (cpu.id === 0) {
    for (const s of a.spis) cpu.driver.setEdge(s, false);
    cpu.store(CONFIGURED, 1);
  }
  guestPrologue(cpu, a);
  idleForever(cpu);
}

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase === 'after-init') wireResampleIrqfds(vm, a, a.spis.map((s) => s - 32));
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  const { fds, rfds } = resampleIrqfds(a, 'irqfd-resample');
  if (!waitReady(d) || !d.waitFor(() => Atomics.load(d.ram, CONFIGURED) === 1, 'level configuration')) return d.stopVm();
  const busy = a.spis.map(() => false);
  let raised = 0;
  const done = (): boolean => busy.every((b) => !b);
  while (raised < a.iterations || !done()) {
    let progress = false;
    for (let i = 0; i < a.spis.length; i++) {
      // The resample is the device's "serviced" signal: only then may it assert again.
      if (busy[i] && rfds[i]!.tryRead() !== 0n) {
        busy[i] = false;
        progress = true;
      }
      if (!busy[i] && raised < a.iterations && d.prng.chance(0.5)) {
        busy[i] = true;
        raised++;
        progress = true;
        Atomics.add(d.ram, SRAM.ACCEPTED + a.spis[i]!, 1);
        fds[i]!.write(1n);
      }
    }
    if (progress) continue;
    // Chaos mode: sleep on a resamplefd, as a device thread polls it, so that a resample whose
    // signal wakes nobody is caught (eventfd/layout.ts park(): the lost-wake detector, reported
    // by the quiescence audit). Controlled mode must not block outside the scheduler.
    const first = busy.indexOf(true);
    if (first >= 0 && !d.sleepOn(rfds[first]!, `resamplefd of SPI ${a.spis[first]}`, RESAMPLE_POLL_MS)) return d.stopVm();
    if (!d.waitFor(() => rfds.some((r, i) => busy[i] && r.value !== 0n) || (raised < a.iterations && busy.some((b) => !b)), 'a resample')) return d.stopVm();
  }
  d.waitFor(() => d.spisQuiet(a.spis), 'every level SPI to settle');
  d.stopVm();
}

/** One acknowledgement per assertion: the line is lowered at each EOI, never presented twice. */
export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  for (const s of a.spis) {
    const raised = Atomics.load(ram, SRAM.ACCEPTED + s);
    const acks = Atomics.load(ram, SRAM.ACKS + s);
    if (acks !== raised) out.push(`irqfd SPI ${s}: asserted ${raised} times, acknowledged ${acks} times`);
  }
  return out;
}
