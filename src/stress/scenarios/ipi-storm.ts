/**
 * IPI storm: every vCPU sends SGIs to the others and spins (in guest mode, never exiting on its
 * own) until each is acknowledged, to one target or, one time in four, to all the others at once
 * (the broadcast form). Each sender uses its own SGI number, so the credit per (sender, target)
 * pair is exact. Many injectors, no voluntary exits: a lost kick hangs a sender.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { deriveSeed, Prng } from '../../sched/prng.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { guestPrologue, spinForever, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'ipi-storm',
  description: 'every vCPU sends SGIs to the others and spins until they are taken (lost-kick races)',
  vcpus: 3,
  iterations: 60,
  spis: 0,
};

const DONE = SRAM.SCRATCH;

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  guestPrologue(cpu, a);
  const n = cpu.nrVcpus;
  const prng = new Prng(deriveSeed(a.seed, 100 + cpu.id));
  while (cpu.load(SRAM.READY) < n) cpu.relax();
  const sent = new Array<number>(n).fill(0);
  const others = Array.from({ length: n }, (_, t) => t).filter((t) => t !== cpu.id);
  for (let i = 0; i < a.iterations && n > 1; i++) {
    // One in four is a broadcast to every other vCPU (ICC_SGI1R_EL1.IRM, GICD_SGIR's
    // TargetListFilter "all but self"), the rest go to one target.
    const broadcast = prng.chance(0.25);
    const targets = broadcast ? others : [others[prng.int(others.length)]!];
    const sgi = cpu.id & 15;
    for (const t of targets) {
      sent[t]!++;
      cpu.add(SRAM.SGI_SENT + 16 * t + sgi, 1);
    }
    cpu.sendSgi(sgi, broadcast ? 'others' : targets);
    for (const t of targets) while (cpu.load(SRAM.SGI_ACKS + 16 * t + sgi) < sent[t]!) cpu.relax();
  }
  cpu.add(DONE, 1);
  spinForever(cpu);
}

export function driver(d: DriverCtx): void {
  if (!waitReady(d)) return d.stopVm();
  d.waitFor(() => Atomics.load(d.ram, DONE) >= d.nrVcpus, 'every vCPU to finish its IPIs');
  d.stopVm();
}

export function check(ram: Int32Array): string[] {
  const out: string[] = [];
  for (let t = 0; t < 16; t++)
    for (let s = 0; s < 16; s++) {
      const sent = Atomics.load(ram, SRAM.SGI_SENT + 16 * t + s);
      const acks = Atomics.load(ram, SRAM.SGI_ACKS + 16 * t + s);
      if (acks !== sent) out.push(`SGI ${s} to vcpu${t}: ${sent} sent, ${acks} taken`);
    }
  return out;
}
