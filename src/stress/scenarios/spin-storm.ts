/**
 * Spin storm: edge SPIs into vCPUs that spin in the guest and never exit on their own, so every
 * delivery depends on a kick reaching a vCPU in guest mode (the mode/requests handshake, and the
 * kick for an already-queued edge).
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { DriverCtx } from '../driver-ctx.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, spinForever, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'spin-storm',
  description: 'edge SPIs into vCPUs spinning in guest mode (lost-kick races)',
  vcpus: 2,
  iterations: 200,
  spis: 4,
};

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  spinForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormDriver(d, a);
}

export const check = checkSpiAccounting;
