/** SPI storm: random edge SPIs (often twice in a row) into vCPUs that sleep in WFI. */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { DriverCtx } from '../driver-ctx.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, idleForever, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'spi-storm',
  description: 'edge SPIs from the driver thread into WFI-sleeping vCPUs (wake-up and coalescing races)',
  vcpus: 2,
  iterations: 200,
  spis: 4,
};

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormDriver(d, a);
}

export const check = checkSpiAccounting;
