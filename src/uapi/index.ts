/**
 * vgic-emu/uapi: the kernel's uapi numbers under their kernel names (include/uapi/linux/kvm.h,
 * arch/arm64/include/uapi/asm/kvm.h, linux/vfio.h, asm-generic/errno*.h), so code written against
 * KVM reads the same here. The bottom layer: it imports nothing of vgic-emu.
 */
export * from './kvm.js';
export * from './vfio.js';
export * from './timer.js';
export { ERRNO, KvmError, kvmErr, type ErrnoName } from './errno.js';
