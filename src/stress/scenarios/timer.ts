/**
 * Timer: every vCPU re-arms its virtual timer (TVAL from a seeded PRNG) and sleeps in WFI (or,
 * every other round on average, spins with interrupts unmasked) until PPI 27 arrives, then watches its own counter for a while. Exercises the WFI wake-up at expiry
 * (a lost one hangs the vCPU), the HW-mapped deactivation and the level re-sampling. In
 * controlled mode the counter is a function of the schedule, so how long a vCPU watches its
 * counter (its number of schedule points) replays exactly.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { spinForever, spinUntil, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'timer',
  description: 'each vCPU sleeps in WFI on its virtual timer (seeded TVAL) and is woken by PPI 27 at expiry',
  vcpus: 2,
  iterations: 20,
  spis: 0,
};

const VTIMER_PPI = 27;
/** A device register outside the GIC frames (a KVM_EXIT_MMIO). */
const USER_MMIO = 0x4000_0000;
/** Per vCPU: timer interrupts taken. */
const FIRED = SRAM.SCRATCH;
/** Per vCPU: interrupts taken before the counter reached CVAL (must stay 0). */
const EARLY = SRAM.SCRATCH + 64;
const DONE = SRAM.SCRATCH + 128;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  const prng = new Prng(deriveSeed(a.seed, 300 + cpu.id));
  cpu.initCpuInterface();
  let cval = 0n;
  cpu.onIrq((c) => {
    const id = c.iar();
    if (id === 1023) return;
    if (id === VTIMER_PPI) {
      if (c.sysregRead('CNTVCT_EL0') < cval) c.add(EARLY + c.id, 1);
      c.sysregWrite('CNTV_CTL_EL0', 0);
      c.add(FIRED + c.id, 1);
    }
    c.eoi(id);
  });
  if (cpu.id === 0) cpu.driver.enableDistributor();
  cpu.add(SRAM.READY, 1);
  while (cpu.load(SRAM.READY) < cpu.nrVcpus) cpu.relax();
  cpu.driver.enable(VTIMER_PPI);
  for (let i = 0; i < a.iterations; i++) {
    cpu.sysregWrite('CNTV_TVAL_EL0', 1_000 + prng.int(100_000));
    cval = cpu.sysregRead('CNTV_CVAL_EL0');
    cpu.sysregWrite('CNTV_CTL_EL0', 1);
    // Asleep in WFI, or running: then the timer's PPI is raised on this very thread, in guest
    // mode, and only the kick it gives itself (mode := EXITING) makes the vCPU exit to take it.
    const fired = (): boolean => cpu.load(FIRED + cpu.id) > i;
    if (prng.chance(0.5)) cpu.wfiUntil(fired);
    else {
      cpu.enableIrqs();
      spinUntil(cpu, fired, `timer round ${i} while running`);
    }
    // Now and then an MMIO exit to the VMM: KVM_RUN returns and is entered again, which loads
    // the timer state afresh (kvm_timer_vcpu_load): the disabled timer must stay quiet.
    if (prng.chance(0.5)) cpu.mmioRead(USER_MMIO);
    const until = cpu.sysregRead('CNTVCT_EL0') + BigInt(prng.int(20_000));
    while (cpu.sysregRead('CNTVCT_EL0') < until) cpu.relax();
  }
  cpu.add(DONE, 1);
  spinForever(cpu);
}

export function driver(d: DriverCtx): void {
  if (!waitReady(d)) return d.stopVm();
  d.waitFor(() => Atomics.load(d.ram, DONE) >= d.nrVcpus, 'every vCPU to finish its timer rounds');
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  for (let v = 0; v < 64; v++) {
    const fired = Atomics.load(ram, FIRED + v);
    if (fired !== 0 && fired !== a.iterations) out.push(`vcpu${v}: ${fired} timer interrupts for ${a.iterations} rounds`);
    const early = Atomics.load(ram, EARLY + v);
    if (early) out.push(`vcpu${v}: ${early} timer interrupts before CVAL`);
  }
  return out;
}
