/**
 * ITS-LPI: every vCPU enables its redistributor's LPIs and counts the LPIs it takes; vCPU 0 also
 * owns the ITS: it sets up the tables, maps the devices and collections it is given, enables the
 * ITS, and then serves a mailbox through which the VMM (a test, the lpi benchmark) asks it to run
 * ITS commands while everything else keeps running. The VMM rings the doorbell PPI on vCPU 0
 * after posting a request (vCPU 0 sleeps in WFI between requests).
 *
 * RAM (32-bit words): [READY] vCPUs ready; [STOP]; mailbox [REQ] request seq, [DONE] completed
 * seq, [OP] opcode (ITS_CMD or an MBOX_* code), [A0..A3] arguments; LPI acks at LPI_ACKS + (intid -
 * 8192); per-vCPU LPI acks at VCPU_ACKS + vcpu.
 */
import type { GuestCpu } from '../guest-cpu.js';
import { enableLpis, GuestIts, ITS_CMD, LPI_BASE, setLpiConfig, type ItsLayout, type LpiLayout } from '../its-driver.js';

export const ITSG = {
  READY: 0,
  STOP: 1,
  REQ: 2,
  DONE: 3,
  OP: 4,
  A0: 5,
  A1: 6,
  A2: 7,
  A3: 8,
  LPI_ACKS: 1024,
  VCPU_ACKS: 2048 + 64,
  DOORBELL_PPI: 23,
} as const;

/** Mailbox operations beyond the ITS commands. */
export const MBOX = {
  /** A0 = intid, A1 = priority, A2 = enabled: write the property byte (no INV). */
  SET_CONFIG: 0x100,
  /** A0 = DeviceID, A1 = EventID: an MSI through GITS_TRANSLATER. */
  MSI: 0x101,
  /** A0 = count, A1 = DeviceID, A2 = EventID, A3 = target vCPU: INT, wait for that vCPU's ack, repeat. */
  INT_PINGPONG: 0x102,
} as const;

export interface ItsLpiArgs {
  its: ItsLayout;
  lpi: LpiLayout;
  /** Collections to map: ICID -> vCPU. */
  collections: { icid: number; vcpu: number }[];
  /** Devices to map, with their events. */
  devices: { devId: number; itt: number; eventBits: number; events: { eventId: number; intid: number; icid: number }[] }[];
  /** Priority written for every mapped LPI (enabled). Default 0xa0. */
  priority?: number;
}

/** A layout for a VM with at least 4 MiB of RAM and up to 16 vCPUs. */
export function defaultItsLayout(itsBase: number): { its: ItsLayout; lpi: LpiLayout } {
  return {
    its: { base: itsBase, cmdq: 0x100000, cmdPages: 4, deviceTable: 0x110000, collectionTable: 0x120000 },
    lpi: { propTable: 0x180000, idBits: 13, pendTables: 0x200000 },
  };
}

/** ITT address for device slot k of the default layout. */
export function defaultItt(k: number): number {
  return 0x130000 + k * 0x1000;
}

function serve(cpu: GuestCpu, its: GuestIts, a: ItsLpiArgs): void {
  const op = cpu.load(ITSG.OP);
  const x = [cpu.load(ITSG.A0), cpu.load(ITSG.A1), cpu.load(ITSG.A2), cpu.load(ITSG.A3)] as const;
  switch (op) {
    case ITS_CMD.MAPD: return its.mapd(x[0], x[1], x[2], x[3] !== 0);
    case ITS_CMD.MAPC: return its.mapc(x[0], x[1], x[2] !== 0);
    case ITS_CMD.MAPTI: return its.mapti(x[0], x[1], x[2], x[3]);
    case ITS_CMD.MAPI: return its.mapi(x[0], x[1], x[2]);
    case ITS_CMD.MOVI: return its.movi(x[0], x[1], x[2]);
    case ITS_CMD.DISCARD: return its.discard(x[0], x[1]);
    case ITS_CMD.CLEAR: return its.clear(x[0], x[1]);
    case ITS_CMD.INT: return its.int(x[0], x[1]);
    case ITS_CMD.INV: return its.inv(x[0], x[1]);
    case ITS_CMD.INVALL: return its.invall(x[0]);
    case ITS_CMD.SYNC: return its.sync(x[0]);
    case ITS_CMD.MOVALL: return its.movall(x[0], x[1]);
    case MBOX.SET_CONFIG: return setLpiConfig(cpu, a.lpi, x[0], x[1], x[2] !== 0);
    case MBOX.MSI: return its.msi(x[0], x[1]);
    case MBOX.INT_PINGPONG: {
      const k = x[2];
      for (let i = 0; i < x[0]; i++) {
        const before = cpu.load(ITSG.VCPU_ACKS + x[3]);
        its.int(x[1], k);
        while (cpu.load(ITSG.VCPU_ACKS + x[3]) === before) cpu.relax();
      }
      return;
    }
    default:
      throw new Error(`its-lpi mailbox: unknown op ${op}`);
  }
}

export default function itsLpi(cpu: GuestCpu, a: ItsLpiArgs): { lpiAcks: number } {
  let acks = 0;
  cpu.initCpuInterface();
  cpu.driver.enable(ITSG.DOORBELL_PPI);
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    if (iar >= LPI_BASE) {
      acks++;
      c.add(ITSG.LPI_ACKS + iar - LPI_BASE, 1);
      c.add(ITSG.VCPU_ACKS + c.id, 1);
    }
    c.eoi(iar);
  });
  if (cpu.id === 0) {
    for (const d of a.devices) for (const e of d.events) setLpiConfig(cpu, a.lpi, e.intid, a.priority ?? 0xa0, true);
    cpu.driver.enableDistributor();
  }
  enableLpis(cpu, a.lpi);
  const its = new GuestIts(cpu, a.its);
  if (cpu.id === 0) {
    // Wait until every redistributor has LPIs on, so that MAPTI's pending-table sync and the
    // collections' targets are all live before the first MSI.
    while (cpu.load(ITSG.READY) < cpu.nrVcpus - 1) cpu.relax();
    its.setupTables();
    its.enable();
    for (const c of a.collections) its.mapc(c.icid, c.vcpu);
    for (const d of a.devices) {
      its.mapd(d.devId, d.itt, d.eventBits);
      for (const e of d.events) its.mapti(d.devId, e.eventId, e.intid, e.icid);
    }
    its.waitSync();
  }
  cpu.add(ITSG.READY, 1);
  cpu.enableIrqs();
  while (cpu.load(ITSG.STOP) === 0) {
    if (cpu.id === 0 && cpu.load(ITSG.REQ) !== cpu.load(ITSG.DONE)) {
      const req = cpu.load(ITSG.REQ);
      serve(cpu, its, a);
      its.waitSync();
      cpu.store(ITSG.DONE, req);
      continue;
    }
    cpu.wfi();
  }
  return { lpiAcks: acks };
}
