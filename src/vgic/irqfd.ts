/**
 * The vgic side of irqfd (kernel vgic-irqfd.c, spec §8.2): setting a GSI's level through the
 * routing table (by default GSI n -> SPI INTID n + 32; MSI routes go to the ITS). Any thread.
 */
import type { Host } from './host.js';
import { setGsi } from './irq-routing.js';

/**
 * vgic_irqfd_set_irq / kvm_set_msi through the routing table. Returns false when the vgic refused
 * the injection (no such SPI: -EINVAL; an uninitialised GICv3: -EBUSY; an ITS that dropped the
 * MSI): the kernel's irqfd paths drop the event then, and our callers count it as dropped so that
 * it is never silent.
 */
export function vgicIrqfdSetIrq(h: Host, gsi: number, level: boolean): boolean {
  return setGsi(h, gsi, level);
}
