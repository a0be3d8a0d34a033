/**
 * Where the ITS scenarios put the ITS and their tables: the ITS frame above the distributor,
 * below the redistributors, and the command queue, device, collection and ITT tables and the
 * LPI property and pending tables inside the default 1 MiB of guest RAM, above the scenario
 * words (SRAM).
 */
import type { ItsLayout, LpiLayout } from '../../guest/its-driver.js';

export const ITS_BASE = 0x08080000;
/** GITS_TRANSLATER of the ITS at `base`: a device's MSI doorbell. */
export const doorbellOf = (base: number): number => base + 0x10040;
export const DOORBELL = doorbellOf(ITS_BASE);
export const ITS_LAYOUT: ItsLayout = { base: ITS_BASE, cmdq: 0x80000, cmdPages: 1, deviceTable: 0x90000, collectionTable: 0xa0000 };
export const LPI_LAYOUT: LpiLayout = { propTable: 0xc0000, idBits: 13, pendTables: 0xd0000 };
/** The interrupt translation table of the scenarios' one device. */
export const ITT = 0xb0000;
