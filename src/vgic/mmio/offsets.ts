/**
 * Architectural GIC distributor register offsets (GICv2 and GICv3 share the per-IRQ families),
 * declared once: the register tables and the guest driver both use them.
 */
export const GICD_CTLR = 0x0000;
export const GICD_TYPER = 0x0004;
export const GICD_IIDR = 0x0008;
export const GICD_TYPER2 = 0x000c;
export const GICD_STATUSR = 0x0010;
export const GICD_IGROUPR = 0x0080;
export const GICD_ISENABLER = 0x0100;
export const GICD_ICENABLER = 0x0180;
export const GICD_ISPENDR = 0x0200;
export const GICD_ICPENDR = 0x0280;
export const GICD_ISACTIVER = 0x0300;
export const GICD_ICACTIVER = 0x0380;
export const GICD_IPRIORITYR = 0x0400;
export const GICD_ITARGETSR = 0x0800;
export const GICD_ICFGR = 0x0c00;
export const GICD_IGRPMODR = 0x0d00;
export const GICD_SGIR = 0x0f00;
export const GICD_CPENDSGIR = 0x0f10;
export const GICD_SPENDSGIR = 0x0f20;
export const GICD_IROUTER = 0x6000;
export const GICD_IDREGS = 0xffd0;
export const GICD_PIDR2 = 0xffe8;
/** The redistributor's SGI_base frame follows its RD_base frame. */
export const GICR_SGI_OFFSET = 0x10000;
