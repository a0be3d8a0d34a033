/**
 * Whether a VM's handles may still be used. After vm.destroy() every call on the VM or on any of
 * its handles (vCPUs, devices) fails the same way: KvmError EBADF, as an ioctl on a closed fd does
 * (destroy closes the VM fd and every fd made from it). A VM marked dead (a failed first run, the
 * kernel's kvm_vm_dead) answers EIO instead, as KVM does.
 */
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { kvmErr } from '../uapi/errno.js';

/** Main-thread-only: which Hosts belong to a destroyed VM. */
const closed = new WeakSet<Host>();

export function markVmClosed(h: Host): void {
  closed.add(h);
}

/** EBADF once destroyed, EIO once dead; `call` names the ioctl or method in the message. */
export function checkVmUsable(h: Host, call: string): void {
  if (closed.has(h)) kvmErr('EBADF', `${call}: the VM was destroyed (vm.destroy())`);
  // Plain read, as kvm_vm_ioctl reads kvm->vm_dead (DIST.dead's racy read): every ioctl passes here.
  if (h.m[D.dead]) kvmErr('EIO', `${call}: the VM is dead`);
}
