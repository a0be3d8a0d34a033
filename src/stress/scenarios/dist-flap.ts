/**
 * Distributor flapping: vCPU 0 keeps disabling and re-enabling the whole distributor (GICD_CTLR)
 * while the driver injects SPIs routed to both vCPUs, and vCPU 1 sleeps in WFI between them.
 *
 * Mainline's rules (spec §4.9 and the GICD_CTLR notes): while the distributor is off the target
 * oracle returns no vCPU, so an SPI injected then is not queued, and a listed one is pruned off
 * at its vCPU's next flush; enabling does not rescan them (a later injection queues them).
 * What enabling does is kick every vCPU with a deliverable IRQ already listed (vgic_kick_vcpus):
 * an SPI queued and kicked just before the disable finds vCPU 1 woken with nothing deliverable
 * (kvm_vgic_vcpu_pending_irq is false while disabled), back asleep, still listed; only the
 * enable's kick wakes it, since anything that queues it again would kick it too.
 *
 * So the end makes that case, LAST_FLAPS times: once everything is delivered (the driver
 * re-injects what was left pending on no ap_list, the rescan KVM does not do), vCPU 0 pends one of
 * vCPU 1's SPIs itself (GICD_ISPENDR: queued on vCPU 1's list, kicked) and at once disables the
 * distributor, then re-enables it. Only the rescan touches them after that (an SPI vCPU 1 pruned while the
 * distributor was off is on no list), and the driver waits for them. Accounting:
 * every SPI acknowledged, never more often than injected.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, spiStormDriver } from './common.js';

export const info: ScenarioInfo = {
  name: 'dist-flap',
  description: 'the distributor disabled and re-enabled (GICD_CTLR) while SPIs are injected to a WFI sleeper',
  vcpus: 2,
  iterations: 120,
  spis: 4,
};

const STORM_OVER = SRAM.SCRATCH;
const FLAP_NOW = SRAM.SCRATCH + 1;
const FLAPPED = SRAM.SCRATCH + 2;
/**
 * Rounds of the last flap. Each catches a missing kick only if the disable lands before vCPU 1,
 * kicked by the pend, looks for something deliverable: a race the schedule decides, won in
 * roughly one round of six under a random walk.
 */
const LAST_FLAPS = 8;

/** A few guest-visible steps (each a schedule point), seeded. */
function pause(cpu: GuestCpu, prng: Prng): void {
  for (let i = prng.int(4); i >= 0; i--) cpu.relax();
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  if (cpu.id !== 0) for (;;) cpu.wfi();
  const prng = new Prng(deriveSeed(a.seed, 310));
  while (cpu.load(STORM_OVER) === 0) {
    cpu.driver.disableDistributor();
    pause(cpu, prng); // off for a while: injections meanwhile are neither queued nor delivered
    cpu.driver.enableDistributor();
    pause(cpu, prng);
  }
  // The last flaps (see the header), each once the driver saw everything delivered.
  cpu.driver.enableDistributor();
  const others = othersSpis(cpu, a);
  for (let round = 1; round <= LAST_FLAPS; round++) {
    while (cpu.load(FLAP_NOW) < round) cpu.relax();
    const s = others[round % others.length]!;
    cpu.add(SRAM.GEN + s, 1);
    cpu.add(SRAM.ACCEPTED + s, 1);
    cpu.driver.setPending(s);
    cpu.driver.disableDistributor();
    pause(cpu, prng);
    cpu.driver.enableDistributor();
    cpu.store(FLAPPED, round);
  }
  for (;;) cpu.wfi();
}

/** The SPIs guestPrologue routed to other vCPUs than this one (round robin). */
function othersSpis(cpu: GuestCpu, a: ScenarioArgs): number[] {
  return a.spis.filter((_, i) => i % cpu.nrVcpus !== cpu.id);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  spiStormDriver(d, a, () => {
    Atomics.store(d.ram, STORM_OVER, 1);
    // The VMM's rescan, of exactly what KVM does not rescan (pending on no ap_list); a listed SPI
    // is the enable's to deliver, and re-injecting it would kick its vCPU and hide a missing kick.
    const settled = (): boolean => {
      for (const s of d.pendingUnqueued(a.spis)) d.injectCounted(s);
      return d.spisQuiet(a.spis);
    };
    for (let round = 1; round <= LAST_FLAPS; round++) {
      if (!d.waitFor(settled, round === 1 ? 'the storm to be delivered' : `the SPI of last flap ${round - 1} to be delivered`)) return;
      Atomics.store(d.ram, FLAP_NOW, round);
      if (!d.waitFor(() => Atomics.load(d.ram, FLAPPED) === round, `vCPU 0 to end last flap ${round}`)) return;
    }
    // vCPU 1 may have run between the pend and the disable and pruned what it had not taken.
    d.waitFor(settled, 'the last flap\'s SPI to be delivered');
  });
}

export const check = checkSpiAccounting;
