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
  /** The translation cache hands out its LPI without taking a reference (CVE-2024-26598, §12.8). */
  cacheNoRef: 1 << 8,
  /** An LPI lookup takes a reference even when the count is already zero (kref_get, not get-unless-zero; §1.7). */
  lpiGetOnZero: 1 << 9,
  /** The resampler lowers the line once per resamplefd instead of once per EOI (§8.5, §12.21). */
  resampleLowerPerIrqfd: 1 << 10,
  /** A vCPU blocked in WFI is not woken at its timer's expiry (no bg_timer, arch_timer.c). */
  timerWfiUnbounded: 1 << 11,
  /** kvm_arm_halt_guest treats a vCPU populating LRs before IN_GUEST_MODE as halted (spec §2.4's window). */
  haltIgnoresEntry: 1 << 12,
  /** vgic_queue_irq_unlock links the IRQ but neither makes KVM_REQ_IRQ_PENDING nor kicks the target. */
  queueNoKick: 1 << 13,
  /** Edge injection stores the pending latch with irq_lock dropped around the store (lockset must report it). */
  unlockedPendingWrite: 1 << 14,
  /** kvm_vcpu_kick rings a blocked vCPU's doorbell but never notifies it, even when it is parked. */
  kickNoNotify: 1 << 15,
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

export interface BugInfo {
  readonly name: BugName;
  /** What the seed reintroduces. */
  readonly what: string;
  /** Where it comes from in the kernel's history (spec §12 and the kernel sources). */
  readonly history: string;
  /** The built-in scenario that exposes it. */
  readonly scenario: string;
}

/** Each seed, documented: what breaks, where it comes from, which scenario finds it. */
export const BUG_INFO: readonly BugInfo[] = [
  {
    name: 'noRequestRecheck',
    what: 'the vCPU publishes IN_GUEST_MODE and enters without re-checking requests: a kick that found it OUTSIDE is lost, and it runs on with a queued interrupt it never sees',
    history: 'the mode/requests Dekker pair of kvm_arch_vcpu_ioctl_run and Documentation/virt/kvm/vcpu-requests.rst (spec §3.7, §4.1 step 6)',
    scenario: 'spin-storm',
  },
  {
    name: 'queueNoRevalidate',
    what: 'vgic_queue_irq_unlock does not re-check irq->vcpu and the oracle after re-taking the locks: two injectors link the same IRQ twice',
    history: 'the retry loop in vgic_queue_irq_unlock since the 2016 rewrite (spec §3.6 note b, §12.1)',
    scenario: 'retarget',
  },
  {
    name: 'noKickWhenQueued',
    what: 'an edge re-asserted while already queued is latched without a request or kick: a vCPU in the guest keeps a stale LR',
    history: 'the 2016 skeleton (virt/kvm/arm/vgic/vgic.c @0919e84c) had no kick on this path; later kernels kick the oracle target (spec §3.6 note a, §12.3)',
    scenario: 'spin-storm',
  },
  {
    name: 'pruneSingleLock',
    what: 'vgic_prune_ap_list migrates holding its own ap_list lock first and the target\'s second, whatever the ids: ABBA deadlock between two migrating vCPUs',
    history: 'the "two ap_list_locks only in vcpu_id order" rule of vgic_prune_ap_list (spec §2.1, §4.7, §12.2)',
    scenario: 'retarget',
  },
  {
    name: 'wfiNoRecheck',
    what: 'WFI checks for pending interrupts before publishing "blocked" and never after: an injection in between wakes nobody',
    history: 'kvm_vcpu_block\'s set-state-then-check order (prepare_to_rcuwait, kvm_vcpu_check_block; spec §4.9)',
    scenario: 'spi-storm',
  },
  {
    name: 'apListInsideIrqLock',
    what: 'injection takes the target\'s ap_list_lock while holding the irq_lock: the inverse of the documented order',
    history: 'the lock order comment at the top of vgic.c; lockdep must report it before any deadlock (spec §2.1)',
    scenario: 'spi-storm',
  },
  {
    name: 'foldDropsEdgePending',
    what: 'fold ignores the pending bit still in an edge LR: an interrupt re-asserted while in an LR is lost at exit',
    history: 'vgic_v2/v3_fold_lr_state re-latch edge pending state (spec §4.6)',
    scenario: 'spi-storm',
  },
  {
    name: 'earlyInjectDropped',
    what: 'injection before the vgic is initialised succeeds and is dropped, instead of failing (EBUSY on GICv3)',
    history: 'irqfd v4 for arm (2014) silently dropped early injections; review required refusing them, which became vgic_lazy_init/-EBUSY (spec §8.8)',
    scenario: 'early-inject',
  },
  {
    name: 'cacheNoRef',
    what: 'a translation-cache hit returns the LPI record without raising its refcount: a DISCARD on another vCPU frees it between the lookup and the injection, which then makes a freed LPI pending',
    history: 'CVE-2024-26598, "KVM: arm64: vgic-its: Avoid potential UAF in LPI translation cache" (2024), and the refcount-underflow follow-up (spec §12.8)',
    scenario: 'lpi-refcount',
  },
  {
    name: 'lpiGetOnZero',
    what: 'an LPI lookup increments the refcount unconditionally: a record that a DISCARD just freed is resurrected and used',
    history: 'vgic_get_irq\'s RCU lookup must be "get unless zero" (kref_get_unless_zero), spec §1.7; the LPI xarray rework of 2024 kept that rule',
    scenario: 'lpi-refcount',
  },
  {
    name: 'resampleLowerPerIrqfd',
    what: 'with several resampling irqfds on one GSI, the ack handler lowers the line before each resamplefd signal: a device that re-asserted after the first signal is lowered again by the second, and its interrupt is lost',
    history: 'irqfd_resampler_ack de-asserts once, then notifies every resamplefd ("multiple de-asserts racing with re-asserts", virt/kvm/eventfd.c comment; spec §8.5, §12.21)',
    scenario: 'irqfd-shared',
  },
  {
    name: 'timerWfiUnbounded',
    what: 'a vCPU blocking in WFI neither bounds its sleep by its timers nor looks at them while blocked: its timer expires and nothing wakes it (only another interrupt would)',
    history: 'kvm_timer_vcpu_put arms the bg_timer (kvm_timer_blocking) with the earliest expiry of the vCPU\'s timers when it blocks, and kvm_bg_timer_expire wakes it; a timer is not loaded on a blocked vCPU, so nothing else would',
    scenario: 'timer',
  },
  {
    name: 'haltIgnoresEntry',
    what: 'halting the guest waits only for vCPUs in guest mode: one that is still OUTSIDE while it populates its LRs is taken as halted, and when it aborts that entry its fold writes the LR snapshot back over the change made meanwhile (an active state cleared by ICACTIVER or a DIR trap comes back)',
    history: 'kvm_arm_halt_guest waits for the IPI acknowledgement of vCPUs not in OUTSIDE_GUEST_MODE only; the window between kvm_vgic_flush_hwstate and publishing IN_GUEST_MODE (spec §2.4, inferred; race §12.5)',
    scenario: 'split-eoi',
  },
  {
    name: 'queueNoKick',
    what: 'a newly queued interrupt is linked onto the target\'s ap_list, but the target is neither sent KVM_REQ_IRQ_PENDING nor kicked: a vCPU running guest code takes it only at its next exit for another reason, however long that is',
    history: 'vgic_queue_irq_unlock ends with kvm_make_request(KVM_REQ_IRQ_PENDING) and kvm_vcpu_kick for the target (spec §3.6, §3.7); without them delivery waits "until some other event"',
    scenario: 'spin-storm',
  },
  {
    name: 'unlockedPendingWrite',
    what: 'kvm_vgic_inject_irq drops irq_lock around its store of the edge pending latch: an acknowledgement on a vCPU can clear the latch between the store and the queueing, and the lockset checker reports the unprotected write',
    history: 'every field of struct vgic_irq is written under irq->irq_lock (the locking comment at the top of arch/arm64/kvm/vgic/vgic.c); the seed is the classic lockset violation KCSAN exists to find',
    scenario: 'spi-storm',
  },
  {
    name: 'kickNoNotify',
    what: 'kvm_vcpu_kick sets the doorbell of a vCPU blocked in WFI but skips the wake-up of a parked one: the vCPU sleeps on until its park slice runs out (a plain run only loses time, nothing reports it)',
    history: 'kvm_vcpu_kick -> kvm_vcpu_wake_up -> rcuwait_wake_up: the set-state/check pair of kvm_vcpu_block only works if the waker wakes the sleeper it finds (spec §3.7, §4.9)',
    scenario: 'spi-storm',
  },
];
