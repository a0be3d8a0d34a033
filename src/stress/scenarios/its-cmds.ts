/**
 * The ITS command set under fire (GICv3): the driver is a device firing MSIs at four events of
 * one device, each mapped to its own LPI; vCPU 0 meanwhile runs every ITS command on them: MOVI
 * between two collections, MAPC re-targeting a collection (its LPIs follow), MOVALL between the
 * redistributors, INV and INVALL after rewriting the LPIs' priorities in the property table,
 * GICR_INVLPIR / INVALLR, INT (an LPI made pending by command), CLEAR, DISCARD and MAPTI again,
 * MAPD unmapping and re-mapping the whole device, SYNC, and its own LPIs disabled and enabled
 * again (GICR_CTLR.EnableLPIs); and reads the ITS registers. Every vCPU
 * takes LPIs. Races: translations (cached or not) against retargeting and unmapping, LPIs queued
 * on one vCPU while a command moves them to the other.
 *
 * CLEAR, DISCARD and disabling LPIs drop pending LPIs, so LPIs are never reported lost (info.discardsLpis);
 * accounting: never more LPI acknowledgements than MSIs and INTs made, every command round done,
 * and after the last round one MSI per event, each acknowledged.
 */
import type { GuestCpu } from '../../guest/guest-cpu.js';
import { enableLpis, GuestIts, GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_BASER0, GITS_BASER1, invLpi, setLpiConfig } from '../../guest/its-driver.js';
import { DOORBELL, ITS_BASE, ITS_LAYOUT, ITT, LPI_LAYOUT, itsGuestBringUp } from './its-layout.js';
import { GITS_IIDR, GITS_TYPER } from '../../vgic/its/mmio-its.js';
import { GICR_CTLR, GICR_INVALLR } from '../../vgic/mmio/gicr.js';
import { KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_VGIC_ITS_ADDR_TYPE } from '../../uapi/kvm.js';
import type { Vm } from '../../kvm/vm.js';
import type { DriverCtx } from '../driver-ctx.js';
import { SRAM } from '../ram.js';
import type { ScenarioArgs, ScenarioInfo } from '../scenario.js';
import { idleForever, waitReady } from './common.js';

export const info: ScenarioInfo = {
  name: 'its-cmds',
  description: 'MSIs at four events while vCPU 0 runs every ITS command on them (MOVI, MAPC, MOVALL, INV(ALL), INT, CLEAR, DISCARD, MAPD)',
  gic: 'v3',
  vcpus: 2,
  iterations: 30,
  spis: 0,
  discardsLpis: true,
};

const DEV = 3;
const EVENTS = 4;
const LPI = (ev: number): number => 8192 + 16 + ev;

const W = SRAM.SCRATCH;
const LPI_ACKS = W;
/** MSIs the driver made that the ITS delivered, and INTs vCPU 0 issued. */
const MADE = W + 1;
const ROUNDS = W + 2;
const DONE = W + 3;
/** Per event: acknowledgements after the last round (the final MSI of each must arrive). */
const FINAL_ACKS = W + 8;

export function setup(vm: Vm, _a: ScenarioArgs, phase: 'before-init' | 'after-init'): void {
  if (phase !== 'before-init') return;
  const its = vm.createDevice(KVM_DEV_TYPE_ARM_VGIC_ITS)!;
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, BigInt(ITS_BASE));
  its.setAttr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT);
}

function mapAll(its: GuestIts, nrVcpus: number): void {
  its.mapd(DEV, ITT, 2);
  for (let ev = 0; ev < EVENTS; ev++) its.mapti(DEV, ev, LPI(ev), ev % Math.min(2, nrVcpus));
}

export function guest(cpu: GuestCpu, a: ScenarioArgs): void {
  cpu.initCpuInterface();
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    if (iar >= 8192) {
      c.add(LPI_ACKS, 1);
      if (c.load(DONE)) c.add(FINAL_ACKS + iar - LPI(0), 1);
    }
    c.eoi(iar);
  });
  const its = itsGuestBringUp(cpu, Array.from({ length: EVENTS }, (_, ev) => LPI(ev)));
  const other = cpu.nrVcpus > 1 ? 1 : 0;
  its.mapc(0, 0);
  its.mapc(1, other);
  mapAll(its, cpu.nrVcpus);
  its.waitSync();
  cpu.add(SRAM.READY, 1);
  cpu.enableIrqs();
  const b = ITS_LAYOUT.base;
  for (let i = 0; i < a.iterations; i++) {
    const ev = i % EVENTS;
    switch (i % 10) {
      case 0: its.movi(DEV, ev, (i >> 1) & 1); break;
      case 1: its.mapc(1, (i >> 1) & 1 ? 0 : other); break; // the collection's LPIs follow it
      case 2: its.movall(0, other); its.movall(other, 0); break;
      case 3:
        setLpiConfig(cpu, LPI_LAYOUT, LPI(ev), i & 1 ? 0x80 : 0xa0, true);
        its.inv(DEV, ev);
        its.invall(0);
        its.invall(1);
        invLpi(cpu, LPI(ev));
        cpu.mmioWrite(cpu.gicrBase + GICR_INVALLR, 0);
        break;
      case 4: cpu.add(MADE, 1); its.int(DEV, ev); break;
      case 5: its.clear(DEV, ev); break;
      case 6: its.discard(DEV, ev); its.mapti(DEV, ev, LPI(ev), ev & 1); break;
      case 7: its.mapd(DEV, ITT, 2, false); mapAll(its, cpu.nrVcpus); break;
      case 8:
        its.sync(0);
        its.sync(other);
        // This vCPU's LPIs off and on again (GICR_CTLR.EnableLPIs, revision 3): the pending LPIs
        // queued here are dropped, MSIs to its collections are refused meanwhile.
        cpu.mmioWrite(cpu.gicrBase + GICR_CTLR, 0);
        enableLpis(cpu, LPI_LAYOUT);
        break;
      default:
        for (const o of [GITS_CTLR, GITS_IIDR, GITS_TYPER, GITS_CREADR, GITS_CWRITER, GITS_BASER0, GITS_BASER1]) cpu.mmioRead(b + o, 4);
    }
    its.waitSync();
    cpu.store(ROUNDS, i + 1);
  }
  // The last round leaves every event mapped (case 7 re-maps all, later rounds keep them).
  mapAll(its, cpu.nrVcpus);
  its.waitSync();
  cpu.store(DONE, 1);
  idleForever(cpu);
}

export function driver(d: DriverCtx, a: ScenarioArgs): void {
  if (!waitReady(d)) return d.stopVm();
  for (let i = 0; Atomics.load(d.ram, DONE) === 0; i++) {
    if (d.msi(DOORBELL, DEV, i % EVENTS) === 1) Atomics.add(d.ram, MADE, 1);
    d.relax(i);
    // Bounded: a schedule that starves vCPU 0 must not make MSIs forever. Leaving the storm early
    // is fine, but the final phase below must wait for DONE: a "final" MSI acknowledged while vCPU 0
    // is still running command rounds is not counted as final and was once reported as lost.
    if (i > 400 * (a.iterations + 10)) break;
  }
  if (!d.waitFor(() => Atomics.load(d.ram, DONE) !== 0, 'vCPU 0 to finish its command rounds')) return d.stopVm();
  // Every event mapped and stable: one MSI each, each acknowledged after DONE.
  for (let ev = 0; ev < EVENTS; ev++) {
    const lpi = LPI(ev);
    if (!d.waitFor(() => d.spisQuiet([lpi]), `LPI ${lpi} to settle`)) return d.stopVm();
    const before = Atomics.load(d.ram, FINAL_ACKS + ev);
    if (d.msi(DOORBELL, DEV, ev) !== 1) continue; // reported by check(): no final acknowledgement
    Atomics.add(d.ram, MADE, 1);
    if (!d.waitFor(() => Atomics.load(d.ram, FINAL_ACKS + ev) > before, `the final MSI of event ${ev} to be acknowledged`)) return d.stopVm();
  }
  d.waitFor(() => Array.from({ length: EVENTS }, (_, ev) => LPI(ev)).every((l) => d.spisQuiet([l])), 'every LPI to settle');
  d.stopVm();
}

export function check(ram: Int32Array, a: ScenarioArgs): string[] {
  const out: string[] = [];
  if (Atomics.load(ram, ROUNDS) !== a.iterations) out.push(`${Atomics.load(ram, ROUNDS)} of ${a.iterations} command rounds done`);
  const acks = Atomics.load(ram, LPI_ACKS);
  const made = Atomics.load(ram, MADE);
  if (acks > made) out.push(`${acks} LPI acknowledgements for ${made} MSIs and INTs (duplicate delivery)`);
  for (let ev = 0; ev < EVENTS; ev++) if (Atomics.load(ram, FINAL_ACKS + ev) < 1) out.push(`event ${ev}: its final MSI was not acknowledged`);
  return out;
}
