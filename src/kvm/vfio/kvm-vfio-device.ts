/**
 * The KVM VFIO pseudo device (KVM_DEV_TYPE_VFIO, virt/kvm/vfio.c): the FILE group that tells KVM
 * which VFIO files the VM uses, and the DEVICE group of the 2015 forwarding proposal with
 * FORWARD_IRQ / UNFORWARD_IRQ, whose argument is struct kvm_arch_forwarded_irq.
 */
import { DEVICE_ATTR_IOCTLS, nameIoctls } from '../ioctl-names.js';
import { deviceAttr } from '../user-copy.js';
import { checkVmUsable } from '../vm-closed.js';
import { kvmErr } from '../../uapi/errno.js';
import { copyFromUser } from '../user-copy.js';
import {
  KVM_DEV_TYPE_VFIO, KVM_DEV_VFIO_DEVICE, KVM_DEV_VFIO_DEVICE_FORWARD_IRQ, KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ, KVM_DEV_VFIO_FILE,
  KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL,
} from '../../uapi/kvm.js';
import type { Host } from '../../vgic/host.js';
import type { KvmDevice } from '../vgic-device.js';
import { forwardIrq, unforwardIrq } from './forward.js';
import { VfioPlatformDevice } from './platform-device.js';

/** struct kvm_arch_forwarded_irq: which VFIO interrupt, and the guest's GSI (SPI INTID - 32). */
export interface KvmArchForwardedIrq {
  fd: VfioPlatformDevice;
  index: number;
  start: number;
  count: number;
  gsi: number;
}

export class KvmVfioDevice implements KvmDevice {
  readonly type = KVM_DEV_TYPE_VFIO;
  private readonly files = new Set<VfioPlatformDevice>();

  constructor(private readonly h: Host) {}

  setAttr(group: number, attr: bigint | number, value?: unknown): void {
    checkVmUsable(this.h, 'KVM VFIO device');
    const a = Number(deviceAttr(group, attr, 'KVM_SET_DEVICE_ATTR'));
    if (group === KVM_DEV_VFIO_FILE && (a === KVM_DEV_VFIO_FILE_ADD || a === KVM_DEV_VFIO_FILE_DEL)) {
      // get_user of the fd: no value is EFAULT; a value that is no open VFIO file is EBADF.
      if (value === null || value === undefined) kvmErr('EFAULT', 'KVM_DEV_VFIO_FILE: no fd');
      if (!(value instanceof VfioPlatformDevice) || value.isClosed) kvmErr('EBADF', 'KVM_DEV_VFIO_FILE: not an open VFIO device');
      if (a === KVM_DEV_VFIO_FILE_ADD) {
        if (this.files.has(value)) kvmErr('EEXIST', `${value.name} was already added`);
        this.files.add(value);
      } else if (!this.files.delete(value)) kvmErr('ENOENT', `${value.name} was not added`);
      return;
    }
    if (group === KVM_DEV_VFIO_DEVICE && (a === KVM_DEV_VFIO_DEVICE_FORWARD_IRQ || a === KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ)) {
      const f = this.checkForwarded(value);
      const line = f.fd.line(f.index);
      if (a === KVM_DEV_VFIO_DEVICE_FORWARD_IRQ) forwardIrq(this.h, line, f.gsi);
      else unforwardIrq(this.h, line);
      return;
    }
    kvmErr('ENXIO', `KVM VFIO device: no attribute ${group}/${a}`);
  }

  getAttr(group: number, attr: bigint | number): bigint {
    checkVmUsable(this.h, 'KVM VFIO device');
    deviceAttr(group, attr, 'KVM_GET_DEVICE_ATTR');
    kvmErr('ENXIO', `KVM VFIO device: attribute ${group}/${Number(attr)} cannot be read`);
  }

  hasAttr(group: number, attr: bigint | number): void {
    checkVmUsable(this.h, 'KVM VFIO device');
    const a = Number(deviceAttr(group, attr, 'KVM_HAS_DEVICE_ATTR'));
    const ok = (group === KVM_DEV_VFIO_FILE && (a === KVM_DEV_VFIO_FILE_ADD || a === KVM_DEV_VFIO_FILE_DEL))
      || (group === KVM_DEV_VFIO_DEVICE && (a === KVM_DEV_VFIO_DEVICE_FORWARD_IRQ || a === KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ));
    if (!ok) kvmErr('ENXIO', `KVM VFIO device: no attribute ${group}/${a}`);
  }

  private checkForwarded(v: unknown): KvmArchForwardedIrq {
    // copy_from_user of the struct: nothing there is EFAULT.
    const f = copyFromUser(v as Partial<KvmArchForwardedIrq> | null | undefined, 'struct kvm_arch_forwarded_irq');
    if (!(f.fd instanceof VfioPlatformDevice) || f.fd.isClosed) kvmErr('EBADF', 'kvm_arch_forwarded_irq.fd is not an open VFIO device');
    if (f.fd.host !== this.h) kvmErr('EINVAL', `${f.fd.name} belongs to another VM`);
    if (f.start !== 0 || f.count !== 1) kvmErr('EINVAL', 'kvm_arch_forwarded_irq: a platform interrupt index has one interrupt (start 0, count 1)');
    if (!Number.isInteger(f.gsi)) kvmErr('EINVAL', 'kvm_arch_forwarded_irq.gsi must be an integer');
    f.fd.line(f.index!); // EINVAL for a bad index
    return f as KvmArchForwardedIrq;
  }
}

nameIoctls(KvmVfioDevice.prototype, DEVICE_ATTR_IOCTLS);
