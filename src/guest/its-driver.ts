/**
 * A small guest ITS driver, the steps kvm-unit-tests' ITS helpers take (written fresh): allocate the
 * command queue, device and collection tables in guest RAM, point the ITS and the redistributors at
 * them, enable, then send commands (each one a 32-byte record in the queue and an MMIO write of
 * GITS_CWRITER, which the ITS processes synchronously), and wait for completion (CREADR reaches
 * CWRITER). Addresses are guest physical; guest RAM starts at 0.
 *
 * Register offsets and command encodings are the architecture's (GICv3 spec, ITS chapter).
 */
import type { GuestCpu } from './guest-cpu.js';

export const GITS_CTLR = 0x0000;
export const GITS_CBASER = 0x0080;
export const GITS_CWRITER = 0x0088;
export const GITS_CREADR = 0x0090;
export const GITS_BASER0 = 0x0100;
export const GITS_BASER1 = 0x0108;
export const GITS_TRANSLATER = 0x10040;
/** vgic-emu's DeviceID sideband for guest-originated MSIs (see vgic/its/mmio-its.ts). */
export const GITS_DEVID_SIDEBAND = 0x10048;
export const GICR_CTLR = 0x0000;
export const GICR_PROPBASER = 0x0070;
export const GICR_PENDBASER = 0x0078;
export const GICR_INVLPIR = 0x00a0;

/** ITS command opcodes. */
export const ITS_CMD = {
  MOVI: 0x01, INT: 0x03, CLEAR: 0x04, SYNC: 0x05, MAPD: 0x08, MAPC: 0x09, MAPTI: 0x0a, MAPI: 0x0b,
  INV: 0x0c, INVALL: 0x0d, MOVALL: 0x0e, DISCARD: 0x0f,
} as const;

export const LPI_BASE = 8192;
const VALID_HI = 0x8000_0000;

/** Where the driver's tables live (guest physical addresses; 64 KiB aligned). */
export interface ItsLayout {
  /** GITS_TRANSLATER frame base of the ITS (its 128 KiB frame). */
  base: number;
  /** Command queue (CBASER), `cmdPages` 4 KiB pages. */
  cmdq: number;
  cmdPages?: number;
  /** Device table (BASER0) and collection table (BASER1), one 64 KiB page each. */
  deviceTable: number;
  collectionTable: number;
}

/** Property table and the per-vCPU pending tables, for the redistributors. */
export interface LpiLayout {
  /** LPI property table: one byte per LPI from INTID 8192. */
  propTable: number;
  /** PROPBASER.IDbits: LPIs up to 2^(idBits + 1) - 1. */
  idBits: number;
  /** Pending tables: vCPU v's at pendTables + v * 64 KiB. */
  pendTables: number;
}

export class GuestIts {
  private readonly dv: DataView;
  private cwriter = 0;
  private readonly qbytes: number;

  constructor(private readonly cpu: GuestCpu, readonly layout: ItsLayout) {
    this.dv = new DataView(cpu.ram.buffer);
    this.qbytes = (layout.cmdPages ?? 1) * 4096;
  }

  private w64(off: number, lo: number, hi: number): void {
    this.cpu.mmioWrite(this.layout.base + off, lo >>> 0, 4);
    this.cpu.mmioWrite(this.layout.base + off + 4, hi >>> 0, 4);
  }

  /** Point the ITS at its queue and tables (the ITS must be disabled). */
  setupTables(): void {
    const l = this.layout;
    // CBASER: Valid | Physical_Address | Size = pages - 1.
    this.w64(GITS_CBASER, (l.cmdq & 0xfffff000) | ((l.cmdPages ?? 1) - 1), VALID_HI | Math.floor(l.cmdq / 0x1_0000_0000));
    // BASER0/1: Valid | Physical_Address | Size = 1 page (0).
    this.w64(GITS_BASER0, l.deviceTable & 0xffff0000, VALID_HI | Math.floor(l.deviceTable / 0x1_0000_0000));
    this.w64(GITS_BASER1, l.collectionTable & 0xffff0000, VALID_HI | Math.floor(l.collectionTable / 0x1_0000_0000));
    this.cwriter = this.cpu.mmioRead(l.base + GITS_CWRITER, 4);
  }

  enable(on = true): void {
    this.cpu.mmioWrite(this.layout.base + GITS_CTLR, on ? 1 : 0, 4);
  }

  /** Append one command (four u64 words as [lo, hi] pairs) and kick the ITS. */
  private send(dw: readonly [number, number][]): void {
    const at = this.layout.cmdq + this.cwriter;
    dw.forEach(([lo, hi], i) => {
      this.dv.setUint32(at + 8 * i, lo >>> 0, true);
      this.dv.setUint32(at + 8 * i + 4, hi >>> 0, true);
    });
    this.cwriter = (this.cwriter + 32) % this.qbytes;
    this.cpu.mmioWrite(this.layout.base + GITS_CWRITER, this.cwriter, 4);
  }

  /** Wait until the ITS consumed the queue (CREADR == CWRITER); bounded. */
  waitSync(maxPolls = 1_000_000): void {
    for (let i = 0; i < maxPolls; i++) if (this.cpu.mmioRead(this.layout.base + GITS_CREADR, 4) === this.cwriter) return;
    throw new Error('ITS: the command queue did not drain');
  }

  mapd(devId: number, itt: number, eventBits: number, valid = true): void {
    // dw1 Size = eventBits - 1; dw2 ITT_addr [51:8], Valid [63].
    this.send([[ITS_CMD.MAPD, devId], [eventBits - 1, 0], [itt & 0xffffff00, (valid ? VALID_HI : 0) | Math.floor(itt / 0x1_0000_0000)], [0, 0]]);
  }
  mapc(icid: number, vcpu: number, valid = true): void {
    // RDbase [47:16] = the target vCPU's id (GITS_TYPER.PTA = 0).
    this.send([[ITS_CMD.MAPC, 0], [0, 0], [(icid & 0xffff) | ((vcpu & 0xffff) << 16), (vcpu >>> 16) | (valid ? VALID_HI : 0)], [0, 0]]);
  }
  mapti(devId: number, eventId: number, intid: number, icid: number): void {
    this.send([[ITS_CMD.MAPTI, devId], [eventId, intid], [icid & 0xffff, 0], [0, 0]]);
  }
  mapi(devId: number, eventId: number, icid: number): void {
    this.send([[ITS_CMD.MAPI, devId], [eventId, 0], [icid & 0xffff, 0], [0, 0]]);
  }
  movi(devId: number, eventId: number, icid: number): void {
    this.send([[ITS_CMD.MOVI, devId], [eventId, 0], [icid & 0xffff, 0], [0, 0]]);
  }
  discard(devId: number, eventId: number): void {
    this.send([[ITS_CMD.DISCARD, devId], [eventId, 0], [0, 0], [0, 0]]);
  }
  clear(devId: number, eventId: number): void {
    this.send([[ITS_CMD.CLEAR, devId], [eventId, 0], [0, 0], [0, 0]]);
  }
  int(devId: number, eventId: number): void {
    this.send([[ITS_CMD.INT, devId], [eventId, 0], [0, 0], [0, 0]]);
  }
  inv(devId: number, eventId: number): void {
    this.send([[ITS_CMD.INV, devId], [eventId, 0], [0, 0], [0, 0]]);
  }
  invall(icid: number): void {
    this.send([[ITS_CMD.INVALL, 0], [0, 0], [icid & 0xffff, 0], [0, 0]]);
  }
  sync(vcpu: number): void {
    this.send([[ITS_CMD.SYNC, 0], [0, 0], [(vcpu & 0xffff) << 16, vcpu >>> 16], [0, 0]]);
  }
  movall(from: number, to: number): void {
    this.send([[ITS_CMD.MOVALL, 0], [0, 0], [(from & 0xffff) << 16, from >>> 16], [(to & 0xffff) << 16, to >>> 16]]);
  }

  /** A device's MSI, as the guest can make one: the DeviceID sideband, then GITS_TRANSLATER. */
  msi(devId: number, eventId: number): void {
    this.cpu.mmioWrite(this.layout.base + GITS_DEVID_SIDEBAND, devId >>> 0, 4);
    this.cpu.mmioWrite(this.layout.base + GITS_TRANSLATER, eventId >>> 0, 4);
  }
}

/**
 * The redistributor side, run by each vCPU for itself: PROPBASER (one VM-wide value: every vCPU
 * writes the same), its own PENDBASER, then GICR_CTLR.EnableLPIs.
 */
export function enableLpis(cpu: GuestCpu, l: LpiLayout): void {
  const rd = cpu.gicrBase;
  cpu.mmioWrite(rd + GICR_PROPBASER, (l.propTable & 0xfffff000) | (l.idBits & 0x1f), 4);
  cpu.mmioWrite(rd + GICR_PROPBASER + 4, Math.floor(l.propTable / 0x1_0000_0000), 4);
  const pend = l.pendTables + cpu.id * 0x10000;
  cpu.mmioWrite(rd + GICR_PENDBASER, pend & 0xffff0000, 4);
  cpu.mmioWrite(rd + GICR_PENDBASER + 4, Math.floor(pend / 0x1_0000_0000), 4);
  cpu.mmioWrite(rd + GICR_CTLR, 1, 4);
}

/** Set an LPI's property byte (priority | enable) in guest RAM; the ITS sees it at INV/INVALL. */
export function setLpiConfig(cpu: GuestCpu, l: LpiLayout, intid: number, priority: number, enabled: boolean): void {
  new Uint8Array(cpu.ram.buffer)[l.propTable + intid - LPI_BASE] = (priority & 0xfc) | (enabled ? 1 : 0);
}

/** GICR_INVLPIR: make this redistributor re-read one LPI's configuration. */
export function invLpi(cpu: GuestCpu, intid: number): void {
  cpu.mmioWrite(cpu.gicrBase + GICR_INVLPIR, intid, 4);
}
