/**
 * LPI reference counting under fire (spec §1.7, §9.5, races §12.8-12.10): the driver thread is a
 * device firing MSIs at one (DeviceID, EventID) as fast as it can, which after the first
 * translation go through the translation cache without any lock; vCPU 0 meanwhile DISCARDs that
 * event and re-maps it, alternating between two LPI INTIDs, so records are freed and re-allocated
 * under the cache's feet; vCPU 1 takes the LPIs. A lookup that does not hold its own reference
 * (bug seed cacheNoRef, CVE-2024-26598) or that revives a freed record (lpiGetOnZero) ends up
 * making a freed LPI pending, or drives a refcount below zero: both are invariant failures.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { DOORBELL, ITS_BASE, ITT, itsGuestBringUp } from './its-layout.js';
import { KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_VGIC_ITS_ADDR_TYPE } from '../../uapi/kvm.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { idleForever, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'lpi-refcount',
  description: 'MSIs through the ITS translation cache while the guest DISCARDs and re-maps the event',
  gic: 'v3',
  vcpus: 2,
  iterations: 60,
  spis: 1,
  discardsLpis: true,
};

const DEV = 1;
const EV = 0;
const LPIS = [8192, 8193] as const;
/** Guest words: LPI acks (by vCPU 1), the remap loop's progress, and "done". */
const ACKS = SRAM.SCRATCH;
const REMAPS = SRAM.SCRATCH + 1;
const DONE = SRAM.SCRATCH + 2;

export function setup(vm: Vm, _a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase !== 'before-init') return;
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    if (iar >= LPIS[0]) c.add(ACKS, 1);
    c.eoi(iar);
  });
  const its = itsGuestBringUp(cpu, LPIS);
  its.mapc(0, 1);
  its.mapd(DEV, ITT, 1);
  its.mapti(DEV, EV, LPIS[0], 0);
  its.waitSync();
  cpu.add(SRAM.READY, 1);
  for (let i = 0; i < a.iterations; i++) {
    its.discard(DEV, EV);
    its.mapti(DEV, EV, LPIS[(i + 1) & 1], 0);
    cpu.store(REMAPS, i + 1);
  }
  cpu.store(DONE, 1);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  if (!waitReady(d)) return d.stopVm();
  // Keep firing until the guest's remap loop is over; every MSI that finds the event mapped is
  // delivered (a cache hit, or a translation that refills the cache).
  for (let i = 0; Atomics.load(d.ram, DONE) === 0; i++) {
    d.msi(DOORBELL, DEV, EV);
    d.relax(i);
    // Bounded, but the final phase still waits for the guest (see its-cmds: a starved guest).
    if (i > 200 * (a.iterations + 10)) break;
  }
  if (!d.waitFor(() => Atomics.load(d.ram, DONE) !== 0, 'the guest to finish its remap loop')) return d.stopVm();
  // One more, now that the mapping is stable, must be acknowledged.
  const before = Atomics.load(d.ram, ACKS);
  if (d.msi(DOORBELL, DEV, EV) === 1) d.waitFor(() => Atomics.load(d.ram, ACKS) > before, 'the last MSI to be acknowledged');
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  if (Atomics.load(ram, REMAPS) !== a.iterations) out.push(`the guest re-mapped the event ${Atomics.load(ram, REMAPS)} of ${a.iterations} times`);
  if (Atomics.load(ram, ACKS) < 1) out.push('no LPI was ever acknowledged');
  return out;
}
