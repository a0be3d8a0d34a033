/**
 * IRQ-echo: a handler loop. Every vCPU brings up its CPU interface, vCPU 0 enables the distributor
 * and the listed SPIs (routed round-robin), then each vCPU sleeps in WFI and handles interrupts:
 * it counts every acknowledgement in guest RAM, and for an SPI forwards an SGI to the next vCPU
 * (so SPIs and IPIs flow at once). It returns when the stop word is set; the VMM then rings the
 * doorbell PPI on each vCPU to wake it from WFI.
 *
 * RAM (32-bit words): [READY] vCPUs ready; [STOP] stop flag; SPI acks at SPI_ACKS + intid;
 * SGI acks at SGI_ACKS + 16 * vcpu + sgi.
 */
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../../uapi/kvm.js';
import type { GuestCpu } from '../guest-cpu.js';

export const ECHO = {
  READY: 0,
  STOP: 1,
  SPI_ACKS: 64,
  SGI_ACKS: 64 + 1024,
  DOORBELL_PPI: 23,
} as const;

export interface IrqEchoArgs {
  /** SPIs (INTIDs >= 32) for vCPU 0 to enable and route round-robin. */
  spis?: number[];
  /** SGI to forward to the next vCPU on each SPI acknowledgement; -1 for none. Default 1. */
  forwardSgi?: number;
  /** Of `spis`, those to configure level-triggered (GICD_ICFGR); the others stay edge. */
  level?: number[];
}

export default function irqEcho(cpu: GuestCpu, args: IrqEchoArgs = {}): { acks: number } {
  const fwd = args.forwardSgi ?? 1;
  const n = cpu.nrVcpus;
  let acks = 0;
  cpu.initCpuInterface();
  cpu.driver.enable(ECHO.DOORBELL_PPI);
  if (cpu.id === 0) {
    for (const [i, spi] of (args.spis ?? []).entries()) {
      cpu.driver.route(spi, i % n);
      if (args.level?.includes(spi)) cpu.driver.setEdge(spi, false);
      cpu.driver.enable(spi);
    }
    cpu.driver.enableDistributor();
  }
  cpu.onIrq((c) => {
    const iar = c.iar();
    if (iar === 1023) return;
    const id = iar & 0x3ff;
    acks++;
    if (id >= VGIC_NR_PRIVATE_IRQS) {
      c.add(ECHO.SPI_ACKS + id, 1);
      if (fwd >= 0 && n > 1) c.sendSgi(fwd, [(c.id + 1) % n]);
    } else if (id < VGIC_NR_SGIS) c.add(ECHO.SGI_ACKS + 16 * c.id + id, 1);
    c.eoi(iar);
  });
  cpu.add(ECHO.READY, 1);
  cpu.enableIrqs();
  while (cpu.load(ECHO.STOP) === 0) cpu.wfi();
  return { acks };
}
