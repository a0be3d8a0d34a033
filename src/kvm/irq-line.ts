/**
 * KVM_IRQ_LINE (spec §8.1), on whichever host thread calls it (the VMM main thread, or a stress
 * driver thread). `irq` is the uapi field: vcpu2_index[31:28] | type[27:24] | vcpu_index[23:16] |
 * number[15:0] (see kvmIrqLineField). The vcpu fields name a vcpu_id (vcpu_id = vcpu_index +
 * 256 * vcpu2_index, looked up with kvm_get_vcpu_by_id in kvm_vm_ioctl_irq_line), not a creation
 * index: EINVAL when no vCPU has that id.
 */
import { kvmErr } from '../uapi/errno.js';
import {
  KVM_ARM_IRQ_NUM_MASK, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_MASK, KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_SHIFT,
  KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_IRQ_VCPU2_MASK, KVM_ARM_IRQ_VCPU2_SHIFT, KVM_ARM_IRQ_VCPU_MASK, KVM_ARM_IRQ_VCPU_SHIFT,
  KVM_REQ_IRQ_PENDING,
} from '../uapi/kvm.js';
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { injectIrq, kickVcpu, makeRequest } from '../vgic/queue.js';
import { vcpuIdxById } from '../vgic/vcpu-id.js';

export function kvmIrqLine(h: Host, irq: number, level: boolean | number): void {
  // Plain read (DIST.dead's racy read): the VMM's injection call, no builtin call per interrupt.
  if (h.m[D.dead]) kvmErr('EIO', 'VM is dead');
  const type = (irq >>> KVM_ARM_IRQ_TYPE_SHIFT) & KVM_ARM_IRQ_TYPE_MASK;
  const vcpuId = ((irq >>> KVM_ARM_IRQ_VCPU_SHIFT) & KVM_ARM_IRQ_VCPU_MASK) + 256 * ((irq >>> KVM_ARM_IRQ_VCPU2_SHIFT) & KVM_ARM_IRQ_VCPU2_MASK);
  const num = irq & KVM_ARM_IRQ_NUM_MASK;
  const lvl = !!level;
  const inKernel = h.m[D.inKernel] !== 0;
  switch (type) {
    case KVM_ARM_IRQ_TYPE_CPU: {
      if (inKernel) kvmErr('ENXIO', 'CPU-type lines need a userspace irqchip');
      const v = vcpuIdxById(h, vcpuId);
      if (v < 0) kvmErr('EINVAL', `no vCPU with id ${vcpuId}`);
      if (num > 1) kvmErr('EINVAL', `CPU line ${num} (0 = IRQ, 1 = FIQ)`);
      const line = vcpuOff(h.g, v) + (num === 0 ? VCPU.off.irqLine : VCPU.off.fiqLine);
      if (Atomics.exchange(h.m, line, lvl ? 1 : 0) !== (lvl ? 1 : 0)) {
        makeRequest(h, v, KVM_REQ_IRQ_PENDING);
        kickVcpu(h, v);
      }
      return;
    }
    case KVM_ARM_IRQ_TYPE_PPI: {
      if (!inKernel) kvmErr('ENXIO', 'no in-kernel vgic');
      const v = vcpuIdxById(h, vcpuId);
      if (v < 0) kvmErr('EINVAL', `no vCPU with id ${vcpuId}`);
      if (num < 16 || num > 31) kvmErr('EINVAL', `PPI number ${num} not in 16..31`);
      return injectIrq(h, v, num, lvl);
    }
    case KVM_ARM_IRQ_TYPE_SPI:
      if (!inKernel) kvmErr('ENXIO', 'no in-kernel vgic');
      if (num < 32) kvmErr('EINVAL', `SPI number ${num} < 32`);
      return injectIrq(h, -1, num, lvl);
    default:
      kvmErr('EINVAL', `unknown KVM_IRQ_LINE type ${type}`);
  }
}
