/**
 * vgic-emu public API: a KVM-shaped interface to a truly parallel model of the KVM arm64 vgic.
 */
export { createVm, Vm, type VmOptions, type LockClassStats } from './kvm/vm.js';
export { Vcpu, type VcpuOptions, type VcpuRunResult, type VcpuStats } from './kvm/vcpu.js';
export type { KvmDevice } from './kvm/vgic-device.js';
export { KvmError, ERRNO, type ErrnoName } from './kvm/errno.js';
export { GuestFault } from './kvm/run-outcome.js';
export { guestFromFunction, type GuestRef } from './kvm/guest-ref.js';
export * as uapi from './kvm/uapi.js';
export * from './kvm/uapi.js';
export { GuestCpu, type IrqHandler, type UserMmioHandler, type SgiTargets } from './guest/guest-cpu.js';
export { GicDriver } from './guest/gic-driver.js';
export { BUILTIN_GUESTS } from './guest/builtins/index.js';
export { ECHO, type IrqEchoArgs } from './guest/builtins/irq-echo.js';
export { PINGPONG } from './guest/builtins/ipi-pingpong.js';
export { LockOrderError } from './sync/lockdep.js';
export { LOCK_CLASSES, LockClass } from './sync/lock-classes.js';
export { setSchedHook, SchedPoint, type SchedHook } from './sync/sched.js';
export { BUG, type BugName } from './vgic/bugs.js';
export { EXIT_REASONS, type ExitReason } from './shm/layouts.js';
