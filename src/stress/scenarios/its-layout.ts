/**
 * Where the ITS scenarios put the ITS and their tables: the ITS frame above the distributor,
 * below the redistributors, and the command queue, device, collection and ITT tables and the
 * LPI property and pending tables inside the default 1 MiB of guest RAM, above the scenario
 * words (SRAM).
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { enableLpis, GuestIts, setLpiConfig, type ItsLayout, type LpiLayout } from '../../guest/its-driver.js';
import { SRAM } from '../ram.js';
import { idleForever } from './common.js';

export const ITS_BASE = 0x08080000;
/** GITS_TRANSLATER of the ITS at `base`: a device's MSI doorbell. */
export const doorbellOf = (base: number): number => base + 0x10040;
export const DOORBELL = doorbellOf(ITS_BASE);
export const ITS_LAYOUT: ItsLayout = { base: ITS_BASE, cmdq: 0x80000, cmdPages: 1, deviceTable: 0x90000, collectionTable: 0xa0000 };
export const LPI_LAYOUT: LpiLayout = { propTable: 0xc0000, idBits: 13, pendTables: 0xd0000 };
/** The interrupt translation table of the scenarios' one device. */
export const ITT = 0xb0000;

/**
 * The guest side of the ITS scenarios' bring-up: vCPU 0 writes the LPIs' properties (priority
 * 0xa0, enabled) and enables the distributor; every vCPU enables its LPIs. Every vCPU but 0 then
 * says READY, unmasks and idles: it never returns. vCPU 0 waits for them (a collection must not
 * be mapped to a redistributor whose LPIs are still off) and returns the ITS, its queue and
 * tables set up and enabled, for its commands.
 */
export function itsGuestBringUp(cpu: GuestCpu, lpis: readonly number[]): GuestIts {
  if (cpu.id === 0) {
    for (const l of lpis) setLpiConfig(cpu, LPI_LAYOUT, l, 0xa0, true);
    cpu.driver.enableDistributor();
  }
  enableLpis(cpu, LPI_LAYOUT);
  if (cpu.id !== 0) {
    cpu.add(SRAM.READY, 1);
    cpu.enableIrqs();
    idleForever(cpu);
  }
  while (cpu.load(SRAM.READY) < cpu.nrVcpus - 1) cpu.relax();
  const its = new GuestIts(cpu, ITS_LAYOUT);
  its.setupTables();
  its.enable();
  return its;
}
