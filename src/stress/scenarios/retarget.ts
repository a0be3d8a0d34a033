/**
 * Retarget while pending: vCPU 0 keeps moving the SPIs between vCPUs (GICD_IROUTER/ITARGETSR)
 * while the driver injects them, so queued interrupts migrate at prune time (two ap_list locks
 * in vCPU id order, re-check after re-locking: spec §4.7, §12.2) while other threads append to
 * the same lists.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'retarget',
  description: 'SPIs retargeted between vCPUs while pending (prune migration races)',
  vcpus: 3,
  iterations: 150,
  spis: 4,
  // One list register: lists overflow, so flush sorts them (and the sort rebuilds the links).
  nrLr: 1,
};

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  if (cpu.id !== 0) for (;;) cpu.wfi();
  const prng = new Prng(deriveSeed(a.seed, 200));
  // Retarget until the driver's storm is over, then leave the routing alone.
  while (cpu.load(SRAM.SCRATCH) === 0) {
    const s = a.spis[prng.int(a.spis.length)]!;
    cpu.driver.route(s, prng.int(cpu.nrVcpus));
    if (prng.chance(0.3)) {
      // A second injector on the same SPIs (GICD_ISPENDR), racing the driver's KVM_IRQ_LINE.
      cpu.add(SRAM.GEN + s, 1);
      cpu.add(SRAM.ACCEPTED + s, 1);
      cpu.driver.setPending(s);
    }
    cpu.relax();
  }
  for (;;) cpu.wfi();
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormDriver(d, { ...a, iterations: a.iterations }, () => Atomics.store(d.ram, SRAM.SCRATCH, 1));
}

export const check = checkSpiAccounting;
