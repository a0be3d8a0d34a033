/**
 * The cookie a VM stores with a wake-up callback on an eventfd (eventfd/wakeup.ts):
 * kind[30:28] | generation[27:8] | slot[7:0]. The generation makes a binding left over from an
 * earlier user of the same slot harmless.
 */
export const WAKE_IRQFD = 1;
export const WAKE_VIRQFD = 2;
export const GEN_MASK = 0xfffff;

export function makeCookie(kind: number, gen: number, slot: number): number {
  return (kind << 28) | ((gen & GEN_MASK) << 8) | (slot & 0xff);
}

