/**
 * The DIR trap of mainline LR-overflow handling (lr-mainline.ts; kernel vgic_v3_deactivate,
 * vgic_v2_deactivate): a DIR whose INTID is in none of this vCPU's LRs, while TDIR is set (GICv3)
 * or always (GICv2, whose GICC_DIR page mainline never maps). A file of its own because it
 * writes through the MMIO dispatcher, which the queueing code must not import (a module cycle).
 *
 * "In an LR" is the record's onLr flag, set at populate and cleared at fold, both under the
 * irq_lock: reading it under the same lock, a DIR trap cannot race the holder's flush or fold.
 * Either the holder populated first (onLr: the ICACTIVER path, which makes it exit and fold) or
 * we deactivated first (the holder's next flush sees an inactive record; the oracle drops it
 * unless it is pending again).
 */
import { KVM_REQ_VGIC_PROCESS_UPDATE, VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS, VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { IRQ, VCPU } from '../shm/layouts.js';
import { DEACT_BY_DIR, EventKind } from '../record/events.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { irqIsPending, irqRecord } from './irq.js';
import { lockIrq, unlockIrq } from './locks.js';
import { activeSpiDone, deactivateRecord } from './lr-mainline.js';
import { vgicMmioWrite } from './mmio/dispatch.js';
import { GICD_ICACTIVER } from './mmio/offsets.js';
import { kickVcpu, makeRequest, oracle } from './queue.js';
import { LockSite } from '../sync/lock-sites.js';

/**
 * A trapped DIR (ICC_DIR_EL1 with TDIR, GICC_DIR, whose page mainline never maps): vgic_v3_deactivate
 * / vgic_v2_deactivate. Runs on vCPU v's thread after its exit folded its LRs. Returns whether it
 * deactivated something (directly or through ICACTIVER).
 */
export function vgicDeactivate(h: Host, v: number, value: number): boolean {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const cpuid = (value >>> 10) & 7;
  const intid = value & 0xffffff & ~(7 << 10);
  // Only with EOImode=1, and only for SGIs, PPIs and SPIs.
  if (!m[vb + VCPU.off.eoiMode] || intid >= VGIC_NR_PRIVATE_IRQS + m[D.nrSpis]!) return false;
  const r = irqRecord(h, v, intid);
  if (r < 0) return false;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.Deactivate);
  let target = m[b + IRQ.off.vcpu]!;
  let hammer = false;
  let done = false;
  let acked = false;
  let wake = false;
  if (target >= 0) {
    if (m[b + IRQ.off.onLr]) {
      // In an LR of a vCPU that is running (ours were folded at this exit, so it is another's,
      // and so an SPI): its state cannot be observed from here.
      hammer = true;
    } else if (!m[b + IRQ.off.active] || (m[D.model] === VGIC_MODEL_V2 && intid < VGIC_NR_SGIS && m[b + IRQ.off.activeSource] !== cpuid)) {
      target = -1;
    } else {
      acked = deactivateRecord(h, b);
      done = true;
      // Recorded here, under the irq_lock: the holder may re-populate the interrupt before this
      // thread is back in its guest.
      if (h.hist) h.hist.record(EventKind.DEACT, value, v, m[b + IRQ.off.config]!, DEACT_BY_DIR);
      // An edge that re-asserted while it was active is pending now, deliverable at last.
      wake = oracle(h, b) === target && m[b + IRQ.off.enabled] !== 0 && irqIsPending(m, b);
    }
  }
  unlockIrq(h, r);
  if (acked) {
    if (h.onAckedSpi) h.onAckedSpi(intid - VGIC_NR_PRIVATE_IRQS);
    activeSpiDone(h);
  }
  // The big hammer: a guest GICD_ICACTIVER write halts every vCPU (each folds), then clears it.
  if (hammer) vgicMmioWrite(h, v, h.f[D.distBase / 2]! + GICD_ICACTIVER + 4 * (intid >> 5), 4, 1 << (intid & 31));
  // The holder's ap_list now has an idle entry: have it pruned at its next entry. Mainline only
  // posts the request. We also kick the holder when the deactivation left the interrupt pending:
  // a holder sleeping in WFI would otherwise sleep on until some other wake-up (a real guest's
  // timer tick; this model has none), though the interrupt is now deliverable. (Race: the edge
  // arrived while active, its kick found the holder not runnable, and it went back to sleep.)
  if (target >= 0) {
    makeRequest(h, target, KVM_REQ_VGIC_PROCESS_UPDATE);
    if (wake) kickVcpu(h, target);
  }
  return done || hammer;
}
