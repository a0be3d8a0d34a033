/**
 * Bug seeds: named, switchable reintroductions of real vgic races (spec §12). Each is a bit in the
 * VM's `bugs` mask, checked at exactly one place in the model. Off in a correct model.
 */
export const BUG = {
  /** Lost kick: no request re-check after publishing IN_GUEST_MODE (the Dekker pair of spec §3.7 broken). */
  noRequestRecheck: 1 << 0,
  /** Queue without re-validating the oracle after re-taking the locks (spec §3.6 note b, §12.1). */
  queueNoRevalidate: 1 << 1,
  /** Re-pending an already-queued edge IRQ without a kick (the 2016 skeleton, spec §3.6 note a, §12.3). */
  noKickWhenQueued: 1 << 2,
  /** Prune migrates holding only its own ap_list lock (spec §4.7, §12.2). */
  pruneSingleLock: 1 << 3,
  /** WFI sleeps without re-checking for pending IRQs after publishing "blocked" (lost wake-up, §4.9). */
  wfiNoRecheck: 1 << 4,
  /** Injection takes ap_list_lock inside irq_lock (inverts spec §2.1; lockdep must report it). */
  apListInsideIrqLock: 1 << 5,
  /** Fold drops the edge pending state still in the LR (spec §4.6). */
  foldDropsEdgePending: 1 << 6,
  /** Injection before the vgic is ready is accepted and dropped (irqfd v4, rejected in 2014 review; §8.8). */
  earlyInjectDropped: 1 << 7,
} as const;

export type BugName = keyof typeof BUG;

export function bugMask(names: readonly string[]): number {
  let mask = 0;
  for (const n of names) {
    const bit = (BUG as Record<string, number>)[n];
    if (bit === undefined) throw new Error(`unknown bug seed '${n}' (known: ${Object.keys(BUG).join(', ')})`);
    mask |= bit;
  }
  return mask;
}
