/**
 * A stress driver pausing the VM the way a VMM does before it saves or restores device state:
 * signal every vCPU thread out of KVM_RUN (Vcpu.interrupt's protocol on the VCPU `signal` word:
 * SIG_PENDING, then the signal request, then the kick), wait until each says SIG_OUT (its
 * vcpu->mutex is free again), do the work under "lock all vCPUs", and let them issue KVM_RUN
 * again. Interrupts stay in flight across the pause: queued on ap_lists, pending in records.
 */
import { VCPU } from '../../shm/layouts.js';
import { vcpuOff } from '../../shm/vm-memory.js';
import { VGIC_EMU_REQ_SIGNAL } from '../../uapi/kvm.js';
import { SIG_NONE, SIG_OUT, SIG_PENDING } from '../../kvm/vcpu-runner.js';
import { kickVcpu, makeRequest } from '../../vgic/queue.js';
import type { DriverCtx } from '../driver-ctx.js';

const sigIdx = (d: DriverCtx, v: number): number => vcpuOff(d.host.g, v) + VCPU.off.signal;

/** Take every vCPU out of KVM_RUN; false (a stall is recorded) if one does not come out. */
export function pauseVcpus(d: DriverCtx): boolean {
  const h = d.host;
  for (let v = 0; v < d.nrVcpus; v++) {
    Atomics.compareExchange(h.m, sigIdx(d, v), SIG_NONE, SIG_PENDING);
    // Request before kick: the kick's exit (or WFI doorbell) must find the request on re-entry.
    makeRequest(h, v, VGIC_EMU_REQ_SIGNAL);
    kickVcpu(h, v);
  }
  return d.waitFor(() => {
    for (let v = 0; v < d.nrVcpus; v++) if (Atomics.load(h.m, sigIdx(d, v)) !== SIG_OUT) return false;
    return true;
  }, 'every vCPU to leave KVM_RUN (signal)');
}

/** Vcpu.resume for each vCPU: they issue KVM_RUN again and continue where they were. */
export function resumeVcpus(d: DriverCtx): void {
  const m = d.host.m;
  for (let v = 0; v < d.nrVcpus; v++) if (Atomics.exchange(m, sigIdx(d, v), SIG_NONE) !== SIG_NONE) Atomics.notify(m, sigIdx(d, v));
}
