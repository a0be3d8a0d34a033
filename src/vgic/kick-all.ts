/**
 * vgic_kick_vcpus (spec §3.8, S1): after the distributor is enabled, kick every vCPU whose
 * ap_list already holds a deliverable interrupt. Nothing is rescanned: interrupts that became
 * pending while the distributor was off were never queued (the oracle said "nowhere") and stay
 * undelivered until something calls the queue function for them again (spec §12.26).
 *
 * Takes each vCPU's ap_list_lock (vcpuHasPendingIrq), so the caller must hold no irq/ap_list lock.
 */
import { KVM_REQ_IRQ_PENDING } from '../uapi/kvm.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { vcpuHasPendingIrq } from './lr.js';
import { kickVcpu, makeRequest } from './queue.js';

export function vgicKickVcpus(h: Host): void {
  const online = h.m[D.onlineVcpus]!;
  for (let v = 0; v < online; v++) {
    if (vcpuHasPendingIrq(h, v)) {
      makeRequest(h, v, KVM_REQ_IRQ_PENDING);
      kickVcpu(h, v);
    }
  }
}
