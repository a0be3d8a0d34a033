/**
 * ITS mapping churn with exact accounting (spec §9.4, §9.5, races §12.8-12.10). vCPU 0 runs command
 * cycles on one device's two events while MSIs for them are in flight: MOVI between the two
 * collections (one per vCPU), DISCARD + MAPTI onto the next LPI of the event's pool, and every
 * fourth cycle MAPD V=0 then V=1 (every ITE of the device goes) followed by MAPTI of both events.
 * The driver keeps exactly one MSI outstanding per event, through two paths:
 *  - event 0: KVM_SIGNAL_MSI (vgic_its_inject_msi) from the driver thread;
 *  - event 1: an irqfd with an MSI route, written by the driver (the fast path through the
 *    translation cache in the writer's thread, or the injector's work item on a miss).
 * A delivered MSI stays owed until acknowledged: DISCARD and MAPD V=0 drop the mapping, never the
 * pending state of an LPI already queued (the ap_list keeps its reference), so every delivered
 * MSI is acknowledged exactly once, and every other one is dropped (counted). A lost or doubled
 * LPI under MOVI/DISCARD/MAPD, in either injection path, breaks that equality.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_ITS,
  KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID, KVM_VGIC_ITS_ADDR_TYPE,
} from '../../uapi/kvm.js';
import { EventFd, type EventFdHandle } from '../../eventfd/eventfd.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { idleForever, waitReady } from './common.js';
import { DOORBELL, ITS_BASE, ITT, itsGuestBringUp } from './its-layout.js';

export const info: ScenarioInfo = {
  name: 'its-churn',
  description: 'MSIs (KVM_SIGNAL_MSI and irqfd) while the guest MOVIs, DISCARDs, re-maps and MAPDs their events: every delivered MSI acked once',
  gic: 'v3',
  vcpus: 2,
  iterations: 24,
  spis: 1,
};

const DEV = 1;
const EVENTS = 2;
const POOL = 4;
/** Event e maps, in turn, to LPIs pool(e) .. pool(e) + POOL - 1. */
const pool = (e: number): number => 8192 + 16 * e;
const GSI = 1;

/** Guest words, per event e: acknowledgements; the driver's delivered/dropped counts. */
const ACKS = SRAM.SCRATCH;
const DELIVERED = SRAM.SCRATCH + 4;
const DROPPED = SRAM.SCRATCH + 8;
const CYCLES = SRAM.SCRATCH + 12;
const DONE = SRAM.SCRATCH + 13;
/** Acks of an INTID outside every pool (a mapping went wrong). */
const STRAY = SRAM.SCRATCH + 14;
/** Per event: the MSI sent once the guest's cycles are over (both events mapped): delivered = 1. */
const FINAL = SRAM.SCRATCH + 16;

interface ChurnWiring {
  fd: EventFdHandle;
  slot: number;
}

export function setup(vm: Vm, a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase === 'before-init') {
    const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS);
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
    its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
    return;
  }
  // Event 1's MSIs come through an irqfd on an MSI route (QEMU's vhost/VFIO MSI wiring).
  vm.setGsiRouting([{ gsi: GSI, type: KVM_IRQ_ROUTING_MSI, flags: KVM_MSI_VALID_DEVID, addressLo: DOORBELL, data: 1, devid: DEV }]);
  const fd = new EventFd();
  vm.irqfd({ fd, gsi: GSI });
  const slot = vm.irqfds().find((i) => i.token === fd.token)!.slot;
  a.extra = { ...a.extra, churn: { fd: fd.share(), slot } satisfies ChurnWiring };
}

function lpiEvent(intid: number): number {
  for (let e = 0; e < EVENTS; e++) if (intid >= pool(e) && intid < pool(e) + POOL) return e;
  return -1;
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const e = lpiEvent(iar);
    c.add(e >= 0 ? ACKS + e : STRAY, 1);
    c.eoi(iar);
  });
  const lpis = Array.from({ length: EVENTS * POOL }, (_, k) => pool(Math.floor(k / POOL)) + (k % POOL));
  const its = itsGuestBringUp(cpu, lpis);
  const cols = Math.min(cpu.nrVcpus, 2);
  for (let c = 0; c < cols; c++) its.mapc(c, c);
  its.mapd(DEV, ITT, 2);
  const cur = [0, 0];
  for (let e = 0; e < EVENTS; e++) its.mapti(DEV, e, pool(e), e % cols);
  its.waitSync();
  cpu.enableIrqs();
  cpu.add(SRAM.READY, 1);
  for (let i = 0; i < a.iterations; i++) {
    for (let e = 0; e < EVENTS; e++) its.movi(DEV, e, (i + e) % cols);
    its.waitSync();
    its.discard(DEV, i & 1);
    its.mapti(DEV, i & 1, pool(i & 1) + (++cur[i & 1]! % POOL), i % cols);
    its.waitSync();
    if (i % 4 === 3) {
      its.mapd(DEV, ITT, 2, false);
      its.mapd(DEV, ITT, 2);
      for (let e = 0; e < EVENTS; e++) its.mapti(DEV, e, pool(e) + (++cur[e]! % POOL), (i + e) % cols);
      its.waitSync();
    }
    cpu.store(CYCLES, i + 1);
  }
  cpu.store(DONE, 1);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  const w = a.extra?.churn as ChurnWiring | undefined;
  if (!w) throw new Error('its-churn: setup() did not wire the irqfd');
  const fd = EventFd.from(w.fd);
  if (!waitReady(d)) return d.stopVm();
  const acks = (e: number): number => Atomics.load(d.ram, ACKS + e);
  // One MSI per event outstanding: its outcome (acknowledged, or dropped by the ITS) is awaited
  // before the next, so the totals are exact whatever the commands did to the mapping meanwhile.
  const fire = (e: number): boolean => {
    const before = acks(e);
    if (e === 0) {
      const r = d.msi(DOORBELL, DEV, 0);
      if (r !== 1) {
        Atomics.add(d.ram, DROPPED + e, 1);
        return true;
      }
      Atomics.add(d.ram, DELIVERED + e, 1);
      return d.waitFor(() => acks(e) > before, 'the KVM_SIGNAL_MSI of event 0 to be acknowledged');
    }
    const dropped = d.irqfdDropped(w.slot);
    fd.write(1n);
    if (!d.waitFor(() => acks(e) > before || d.irqfdDropped(w.slot) > dropped, 'the irqfd MSI of event 1 to be acknowledged or dropped')) return false;
    Atomics.add(d.ram, acks(e) > before ? DELIVERED + e : DROPPED + e, 1);
    return true;
  };
  for (let i = 0; Atomics.load(d.ram, DONE) === 0; i++) {
    if (!fire(i & 1)) return d.stopVm();
    d.relax(i);
    // Bounded, but the final phase still waits for the guest (see its-cmds: a starved guest).
    if (i > 400 * (a.iterations + 10)) break;
  }
  if (!d.waitFor(() => Atomics.load(d.ram, DONE) !== 0, 'the guest to finish its command cycles')) return d.stopVm();
  // The guest's cycles are over and every cycle ends with both events mapped: one more MSI per
  // event must now be delivered and acknowledged, whatever the churn dropped before.
  for (let e = 0; e < EVENTS && Atomics.load(d.ram, DONE) !== 0; e++) {
    const delivered = Atomics.load(d.ram, DELIVERED + e);
    if (!fire(e)) break;
    Atomics.store(d.ram, FINAL + e, Atomics.load(d.ram, DELIVERED + e) - delivered);
  }
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  if (Atomics.load(ram, CYCLES) !== a.iterations) out.push(`the guest ran ${Atomics.load(ram, CYCLES)} of ${a.iterations} command cycles`);
  for (let e = 0; e < EVENTS; e++) {
    const acked = Atomics.load(ram, ACKS + e);
    const delivered = Atomics.load(ram, DELIVERED + e);
    if (acked !== delivered) out.push(`event ${e} (${e === 0 ? 'KVM_SIGNAL_MSI' : 'irqfd'}): ${delivered} MSIs delivered but ${acked} acknowledged`);
  }
  for (let e = 0; e < EVENTS; e++) {
    if (Atomics.load(ram, CYCLES) === a.iterations && Atomics.load(ram, FINAL + e) !== 1) out.push(`event ${e}: the MSI sent once its mapping was stable was not delivered`);
  }
  if (Atomics.load(ram, STRAY) !== 0) out.push(`${Atomics.load(ram, STRAY)} acknowledgements of INTIDs no event was mapped to`);
  return out;
}
