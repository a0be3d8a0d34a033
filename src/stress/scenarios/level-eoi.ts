/**
 * Level lines with EOI races: the driver raises a level SPI, the guest's handler tells the
 * "device" it was serviced and EOIs; the driver lowers the line once it sees that. Whether the
 * EOI lands before or after the lowering is the race: a line still high at EOI must be presented
 * again (spec §3.4, §4.6), a lowered one must not fire again.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { guestPrologue, idleForever, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'level-eoi',
  description: 'level-triggered SPIs raised and lowered around the guest EOI',
  vcpus: 2,
  iterations: 120,
  spis: 4,
};

/** Per SPI: times the guest's handler serviced the device. */
const SERVICED = SRAM.SCRATCH;
const CONFIGURED = SRAM.SCRATCH + 1023;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  if (cpu.id === 0) for (const s of a.spis) cpu.driver.setEdge(s, false);
  if (cpu.id === 0) cpu.store(CONFIGURED, 1);
  guestPrologue(cpu, a, (c, id) => c.add(SERVICED + id, 1));
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  if (!waitReady(d) || !d.waitFor(() => Atomics.load(d.ram, CONFIGURED) === 1, 'level configuration')) return d.stopVm();
  for (let i = 0; i < a.iterations; i++) {
    const s = a.spis[d.prng.int(a.spis.length)]!;
    const before = Atomics.load(d.ram, SERVICED + s);
    Atomics.add(d.ram, SRAM.ACCEPTED + s, 1);
    d.line(s, 1);
    if (!d.waitFor(() => Atomics.load(d.ram, SERVICED + s) > before, `level SPI ${s} (raise ${i}) to be serviced`)) return d.stopVm();
    // Lower it at a random moment relative to the guest's EOI.
    for (let k = d.prng.int(3); k > 0; k--) d.relax();
    d.line(s, 0);
  }
  d.waitFor(() => d.spisQuiet(a.spis), 'every level SPI to settle');
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  for (const s of a.spis) {
    const raised = Atomics.load(ram, SRAM.ACCEPTED + s);
    const acks = Atomics.load(ram, SRAM.ACKS + s);
    if (acks < raised) out.push(`level SPI ${s}: raised ${raised} times, serviced only ${acks} times`);
  }
  return out;
}
