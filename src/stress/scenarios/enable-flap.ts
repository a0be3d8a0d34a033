/**
 * Enable/disable flapping: vCPU 0 keeps disabling and re-enabling the SPIs (ICENABLER/ISENABLER)
 * while the driver injects them. A disabled pending interrupt must stay pending (not queued, or
 * pruned off the list) and be delivered once re-enabled (spec §3.8: ICENABLER neither dequeues
 * nor kicks; ISENABLER queues).
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'enable-flap',
  description: 'SPIs disabled and re-enabled while being injected and delivered',
  vcpus: 2,
  iterations: 150,
  spis: 4,
};

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  if (cpu.id !== 0) for (;;) cpu.wfi();
  const prng = new Prng(deriveSeed(a.seed, 300));
  while (cpu.load(SRAM.SCRATCH) === 0) {
    const s = a.spis[prng.int(a.spis.length)]!;
    cpu.driver.disable(s);
    cpu.relax();
    cpu.driver.enable(s);
    cpu.relax();
  }
  // The storm is over: leave everything enabled so every pending SPI is delivered.
  for (const s of a.spis) cpu.driver.enable(s);
  cpu.store(SRAM.SCRATCH + 1, 1);
  for (;;) cpu.wfi();
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormDriver(d, a, () => {
    Atomics.store(d.ram, SRAM.SCRATCH, 1);
    d.waitFor(() => Atomics.load(d.ram, SRAM.SCRATCH + 1) === 1, 'vCPU 0 to re-enable the SPIs');
  });
}

export const check = checkSpiAccounting;
