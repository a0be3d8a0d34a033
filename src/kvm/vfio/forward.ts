/**
 * Forwarding a device's physical interrupt to a guest SPI (the 2015 KVM-VFIO proposal,
 * spec §10.1-10.2): the SPI becomes HW-mapped (irq.hw, irq.hwintid), so its LRs carry the HW bit
 * and the guest's deactivation completes the physical interrupt directly.
 *
 * Switching while interrupts are in flight must lose none, and the rules of the proposal make it
 * possible:
 *  - the guest is halted (kvm_arm_halt_guest, spec §2.4) so no list register holds the SPI while
 *    its mapping changes; every LR state is folded back into the record first;
 *  - forwarding is refused with EAGAIN while the line is masked (an automasked level interrupt is
 *    waiting for its resample) or active (physically, or the guest's instance). The check and the
 *    switch are one compareExchange on the line's state, so a delivery racing with it either
 *    comes first (and we refuse) or sees the FWD bit (and delivers as forwarded);
 *  - unforwarding is always allowed: an instance still active physically is handed back to the
 *    software path: a level line becomes automasked (the guest's EOI will now resample and
 *    unmask it), an edge one is completed by the host.
 */
import { VGIC_NR_PRIVATE_IRQS } from '../../uapi/kvm.js';
import { IRQ, PHYS_INTID_BASE, PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, PIRQ_MASKED, PIRQ_USER_MASKED } from '../../shm/layouts.js';
import { irqOff, physOff } from '../../shm/vm-memory.js';
import { haltGuest, resumeGuest } from '../../vgic/halt.js';
import type { Host } from '../../vgic/host.js';
import { D } from '../../vgic/host.js';
import { irqRecord } from '../../vgic/irq.js';
import { lockIrq, unlockIrq } from '../../vgic/locks.js';
import { bellOf, ringDevice } from '../../vgic/phys-irq.js';
import { kvmErr } from '../../uapi/errno.js';
import { LockSite } from '../../sync/lock-sites.js';

const P = PHYS_IRQ.off;

function spiRecord(h: Host, gsi: number): number {
  if (!Atomics.load(h.m, D.initialized)) kvmErr('EAGAIN', 'forwarding needs an initialised vgic');
  const r = Number.isInteger(gsi) && gsi >= 0 ? irqRecord(h, -1, gsi + VGIC_NR_PRIVATE_IRQS) : -1;
  if (r < 0) kvmErr('EINVAL', `gsi ${gsi}: no such SPI`);
  return r;
}

/** Run `fn` with the guest halted and the SPI's irq_lock held. */
function halted<T>(h: Host, r: number, fn: () => T): T {
  haltGuest(h);
  try {
    lockIrq(h, r, LockSite.Userspace);
    try {
      return fn();
    } finally {
      unlockIrq(h, r);
    }
  } finally {
    resumeGuest(h);
  }
}

/** Forward physical line `line` to SPI gsi + 32. EAGAIN while masked or active; EBUSY if mapped. */
export function forwardIrq(h: Host, line: number, gsi: number): void {
  const m = h.m;
  const r = spiRecord(h, gsi);
  const p = physOff(h.g, line);
  const b = irqOff(h.g, r);
  const pintid = PHYS_INTID_BASE + line;
  halted(h, r, () => {
    if (m[b + IRQ.off.hw] && m[b + IRQ.off.hwintid] !== pintid) kvmErr('EBUSY', `SPI ${gsi + VGIC_NR_PRIVATE_IRQS} is already mapped to pINTID ${m[b + IRQ.off.hwintid]}`);
    if (Atomics.load(m, p + P.state) & PIRQ_FWD) {
      if (m[p + P.vintid] === gsi + VGIC_NR_PRIVATE_IRQS) return;
      kvmErr('EBUSY', `physical line ${line} is already forwarded to INTID ${m[p + P.vintid]}`);
    }
    if (m[b + IRQ.off.active]) kvmErr('EAGAIN', `SPI ${gsi + VGIC_NR_PRIVATE_IRQS} is active in the guest`);
    for (;;) {
      const s = Atomics.load(m, p + P.state);
      if (s & (PIRQ_MASKED | PIRQ_USER_MASKED)) kvmErr('EAGAIN', `physical line ${line} is masked`);
      if (s & PIRQ_ACTIVE) kvmErr('EAGAIN', `physical line ${line} is active`);
      if (Atomics.compareExchange(m, p + P.state, s, s | PIRQ_FWD) === s) break;
    }
    m[p + P.vintid] = gsi + VGIC_NR_PRIVATE_IRQS;
    m[b + IRQ.off.hw] = 1;
    m[b + IRQ.off.hwintid] = pintid;
  });
}

/** Stop forwarding line `line` (to whatever SPI it is mapped). EINVAL if it is not forwarded. */
export function unforwardIrq(h: Host, line: number): void {
  const m = h.m;
  const p = physOff(h.g, line);
  if (!(Atomics.load(m, p + P.state) & PIRQ_FWD)) kvmErr('EINVAL', `physical line ${line} is not forwarded`);
  const r = spiRecord(h, m[p + P.vintid]! - VGIC_NR_PRIVATE_IRQS);
  const b = irqOff(h.g, r);
  const level = m[p + P.level] === 1;
  halted(h, r, () => {
    for (;;) {
      const s = Atomics.load(m, p + P.state);
      const active = (s & PIRQ_ACTIVE) !== 0;
      const next = (s & ~(PIRQ_FWD | PIRQ_ACTIVE)) | (active && level ? PIRQ_MASKED : 0);
      if (Atomics.compareExchange(m, p + P.state, s, next) !== s) continue;
      // An active edge instance: the host completes it now (the guest still handles its
      // virtual copy, which is no longer linked to the line).
      if (active && !level) Atomics.add(m, p + P.serviced, 1);
      break;
    }
    m[p + P.vintid] = 0;
    m[b + IRQ.off.hw] = 0;
    m[b + IRQ.off.hwintid] = 0;
  });
  ringDevice(m, bellOf(h, p));
}

/** Is the line forwarded now? */
export function isForwarded(h: Host, line: number): boolean {
  return (Atomics.load(h.m, physOff(h.g, line) + P.state) & PIRQ_FWD) !== 0;
}
