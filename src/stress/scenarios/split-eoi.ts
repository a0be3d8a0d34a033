/**
 * Split EOI across vCPUs (EOImode=1): the vCPU that takes an SPI only drops its priority, and the
 * next vCPU deactivates it (DIR), told through guest RAM and a doorbell SGI. Until then the SPI
 * stays active and further edges pend behind it. The DIR finds it in no LR of its own vCPU
 * (mainline traps it: dir-trap.ts), and then either in the holder's running LR (the ICACTIVER
 * path, which halts every vCPU) or on the holder's ap_list (deactivated in place, the holder
 * prunes at its next entry): the races of the onLr handshake, under the storm of spi-storm.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'split-eoi',
  description: 'EOImode=1: each SPI acknowledged on one vCPU and deactivated (DIR) on another',
  vcpus: 2,
  iterations: 150,
  spis: 4,
};

/** Per SPI: 1 + the vCPU that must deactivate it, 0 when nobody must. */
const DIR_BY = SRAM.SCRATCH;
/** Hand-overs being posted (DIR_BY written, doorbell not yet rung). */
const POSTING = SRAM.SCRATCH + 1024;
const DOORBELL_SGI = 2;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  const next = (cpu.id + 1) % cpu.nrVcpus;
  cpu.setEoiMode(true);
  guestPrologue(cpu, a, undefined, (c, iar, id) => {
    if (id < 16) c.dir(iar); // the doorbell (or any SGI) is deactivated where it was taken
    else if (id >= 32) {
      c.add(POSTING, 1);
      c.store(DIR_BY + id, next + 1);
      c.sendSgi(DOORBELL_SGI, [next]);
      c.add(POSTING, -1);
    }
  });
  for (;;) {
    // Masked while looking, and WFI masked: a doorbell rung meanwhile stays pending, so WFI
    // returns and the unmask takes it (no lost wake-up between the look and the sleep).
    cpu.disableIrqs();
    for (const s of a.spis) {
      if (cpu.load(DIR_BY + s) !== cpu.id + 1) continue;
      cpu.store(DIR_BY + s, 0);
      cpu.dir(s);
    }
    cpu.wfi();
    cpu.enableIrqs();
  }
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  // Stop only once every hand-over is done, in this order: no SPI active (so no hand-over can
  // start), none being posted (a posted one is deactivated before its doorbell may ring), no
  // doorbell left pending (the checker wants every pend acknowledged).
  const settled = (): boolean => {
    if (!d.spisInactive(a.spis) || Atomics.load(d.ram, POSTING) !== 0) return false;
    for (let v = 0; v < d.nrVcpus; v++) if (!d.privateQuiet(v, DOORBELL_SGI)) return false;
    return true;
  };
  spiStormDriver(d, a, undefined, settled);
}

export const check = checkSpiAccounting;
