/**
 * A minimal guest GIC driver, the register writes a guest kernel's irqchip driver makes: enable the
 * distributor, enable/route/prioritise one interrupt. Every call is a trapped MMIO access (an exit),
 * exactly as in a real guest. Private interrupts go to the GICv3 redistributor's SGI frame or the
 * banked GICv2 distributor registers; SPIs to the distributor.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import type { GuestCpu } from './guest-cpu.js';
import { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_SGIR, GICD_IROUTER, GICR_SGI_OFFSET } from '../vgic/mmio/offsets.js';
export { GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR, GICD_SGIR, GICD_IROUTER, GICR_SGI_OFFSET };


export class GicDriver {
  constructor(private readonly cpu: GuestCpu) {}

  /** Register base for an INTID's per-IRQ registers (redistributor SGI frame for v3 private IRQs). */
  private base(intid: number): number {
    const c = this.cpu;
    return c.gic === 3 && intid < VGIC_NR_PRIVATE_IRQS ? c.gicrBase + GICR_SGI_OFFSET : c.gicdBase;
  }

  /** Enable the distributor: v2 GICD_CTLR.Enable, v3 GICD_CTLR.EnableGrp1NS (ARE is always on). */
  enableDistributor(): void {
    this.cpu.mmioWrite(this.cpu.gicdBase + GICD_CTLR, this.cpu.gic === 3 ? 0x2 : 0x1);
  }
  disableDistributor(): void {
    this.cpu.mmioWrite(this.cpu.gicdBase + GICD_CTLR, 0);
  }
  enable(intid: number): void {
    this.cpu.mmioWrite(this.base(intid) + GICD_ISENABLER + 4 * (intid >> 5), 1 << (intid & 31));
  }
  disable(intid: number): void {
    this.cpu.mmioWrite(this.base(intid) + GICD_ICENABLER + 4 * (intid >> 5), 1 << (intid & 31));
  }
  setPending(intid: number): void {
    this.cpu.mmioWrite(this.base(intid) + GICD_ISPENDR + 4 * (intid >> 5), 1 << (intid & 31));
  }
  clearPending(intid: number): void {
    this.cpu.mmioWrite(this.base(intid) + GICD_ICPENDR + 4 * (intid >> 5), 1 << (intid & 31));
  }
  setPriority(intid: number, prio: number): void {
    this.cpu.mmioWrite(this.base(intid) + GICD_IPRIORITYR + intid, prio & 0xff, 1);
  }
  /** Edge (true) or level (false) trigger, for SPIs. */
  setEdge(intid: number, edge: boolean): void {
    const reg = this.base(intid) + GICD_ICFGR + 4 * (intid >> 4);
    const shift = 2 * (intid & 15) + 1;
    const v = this.cpu.mmioRead(reg);
    this.cpu.mmioWrite(reg, edge ? v | (1 << shift) : v & ~(1 << shift));
  }
  /**
   * Route an SPI to a vCPU: v3 GICD_IROUTER affinity, so `vcpu` is a vcpu_id (its MPIDR); v2
   * ITARGETSR byte, whose bits are CPU interface numbers (vcpu_idx).
   */
  route(intid: number, vcpu: number): void {
    if (this.cpu.gic === 3) {
      const aff = (vcpu & 0xf) | (((vcpu >> 4) & 0xff) << 8);
      this.cpu.mmioWrite(this.cpu.gicdBase + GICD_IROUTER + 8 * intid, aff);
    } else this.cpu.mmioWrite(this.cpu.gicdBase + GICD_ITARGETSR + intid, 1 << vcpu, 1);
  }
  /** Set group (v3 guests use group 1; v2 defaults to group 0). */
  setGroup(intid: number, group: number): void {
    const reg = this.base(intid) + GICD_IGROUPR + 4 * (intid >> 5);
    const v = this.cpu.mmioRead(reg);
    this.cpu.mmioWrite(reg, group ? v | (1 << (intid & 31)) : v & ~(1 << (intid & 31)));
  }
}
