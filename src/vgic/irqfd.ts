/**
 * The vgic side of irqfd (kernel vgic-irqfd.c, spec §8.2): the default routing GSI n -> SPI
 * INTID n + 32, and setting a GSI's level. Any thread may call it.
 */
import { KvmError } from '../kvm/errno.js';
import type { Host } from './host.js';
import { injectIrq } from './queue.js';

/**
 * vgic_irqfd_set_irq through the default route. Returns false when the vgic refused the
 * injection (no such SPI: -EINVAL; an uninitialised GICv3: -EBUSY): the kernel's irqfd paths drop
 * the event then, and our callers count it as dropped so that it is never silent.
 */
export function vgicIrqfdSetIrq(h: Host, gsi: number, level: boolean): boolean {
  try {
    injectIrq(h, -1, gsi + 32, level);
    return true;
  } catch (e) {
    if (e instanceof KvmError) return false;
    throw e;
  }
}
