/**
 * Injection before the vgic is ready (spec §8.8; the 2014 irqfd review): the VMM injects an SPI
 * before CTRL_INIT. The kernel refuses it (EBUSY on GICv3), so the VMM injects again once the
 * vgic is initialised; GICv2 initialises itself lazily and accepts it. An implementation that accepts the early injection and drops it (the
 * rejected irqfd v4 behaviour) loses an interrupt the VMM believes was delivered.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { KvmError } from '../../uapi/errno.js';
import { KVM_ARM_IRQ_TYPE_SPI, kvmIrqLineField } from '../../uapi/kvm.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { checkSpiAccounting, guestPrologue, idleForever, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'early-inject',
  description: 'an SPI injected before CTRL_INIT must be refused, never accepted and dropped',
  vcpus: 2,
  iterations: 20,
  spis: 2,
};

/** Per SPI: 1 if the early injection was refused and must be repeated after init. */
const REFUSED = SRAM.SCRATCH;

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase !== 'before-init') return;
  const ram = vm.ram;
  for (const s of a.spis) {
    try {
      vm.irqLine(kvmIrqLineField(KVM_ARM_IRQ_TYPE_SPI, 0, s), 1);
      Atomics.add(ram, SRAM.ACCEPTED + s, 1);
    } catch (e) {
      // By name too: `vm` may come from another copy of this package than this module's KvmError
      // (the runner from TypeScript sources in the tests loads built-in scenarios from dist/).
      if (!(e instanceof KvmError) && (e as Error | null)?.name !== 'KvmError') throw e;
      Atomics.store(ram, REFUSED + s, 1);
    }
  }
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  // The distributor first: an SPI that became pending while it was disabled (GICv2's accepted
  // early injection) is queued only by a later queue call, here the enable write; enabling the
  // distributor afterwards only kicks vCPUs and rescans nothing (vgic_mmio_write_v2_misc).
  if (cpu.id === 0) cpu.driver.enableDistributor();
  guestPrologue(cpu, a);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  if (!waitReady(d)) return d.stopVm();
  // Credit: one injection outstanding per SPI, so acknowledgements must equal accepted injections.
  const credit = (s: number): boolean => {
    const before = Atomics.load(d.ram, SRAM.ACKS + s);
    d.injectCounted(s);
    return d.waitFor(() => Atomics.load(d.ram, SRAM.ACKS + s) > before, `SPI ${s} to be delivered`);
  };
  // The VMM's retry, now that the vgic is initialised and the guest has enabled the SPIs.
  for (const s of a.spis) if (Atomics.load(d.ram, REFUSED + s) && !credit(s)) return d.stopVm();
  // GICv2 accepts the early injection instead (kvm_vgic_inject_irq initialises a v2 vgic lazily):
  // it pends until the guest enables the SPI. Wait for it before crediting more, or the next edge
  // may coalesce with it (one acknowledgement for two accepted edges: correct, but not countable).
  // (On GICv3 an accepted early injection is itself the bug this scenario is for: the check
  // reports it, as it would report it dropped.)
  for (const s of a.spis) {
    if (d.gic !== 2 || Atomics.load(d.ram, REFUSED + s)) continue;
    if (!d.waitFor(() => Atomics.load(d.ram, SRAM.ACKS + s) >= Atomics.load(d.ram, SRAM.ACCEPTED + s), `the early SPI ${s} to be delivered`)) return d.stopVm();
  }
  for (let i = 0; i < a.iterations; i++) if (!credit(a.spis[i % a.spis.length]!)) return d.stopVm();
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out = checkSpiAccounting(ram, a);
  for (const s of a.spis) {
    const acc = Atomics.load(ram, SRAM.ACCEPTED + s);
    const ack = Atomics.load(ram, SRAM.ACKS + s);
    if (ack < acc) out.push(`SPI ${s}: ${acc} injections accepted, ${ack} delivered (an accepted injection was dropped)`);
  }
  return out;
}
