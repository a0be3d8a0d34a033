/**
 * vgic-emu: a KVM-shaped interface to a truly parallel model of the KVM arm64 vgic. The root has
 * the VM, its vCPUs and devices, eventfds, VFIO-like devices, the guest API and the errors; the
 * kernel's numbers are in 'vgic-emu/uapi', the stress tester in 'vgic-emu/stress'.
 */
// The VM, its vCPUs and devices.
export { createVm, Vm, type VmOptions, type LockClassStats, type KvmMsi } from './kvm/vm.js';
export { Vcpu, type VcpuOptions, type VcpuRunResult, type VcpuStats } from './kvm/vcpu.js';
export type { KvmDevice } from './kvm/vgic-device.js';
export { EXIT_REASONS, type ExitReason } from './shm/layouts.js';
/** The model's counter frequency (CNTFRQ_EL0): 1 GHz, a tick per nanosecond. */
export { CNTFRQ_HZ } from './kvm/timer/counter.js';
export { LOCK_CLASSES, LockClass } from './sync/lock-classes.js';
// Errors.
export { KvmError, ERRNO, type ErrnoName } from './uapi/errno.js';
export { GuestFault } from './kvm/run-outcome.js';
export { LockOrderError } from './sync/lockdep.js';
// The guest API and the built-in guests.
export { guestFromFunction, type GuestRef } from './kvm/guest-ref.js';
export { GuestCpu, type IrqHandler, type UserMmioHandler, type SgiTargets } from './guest/guest-cpu.js';
export { GicDriver } from './guest/gic-driver.js';
export { GuestIts, enableLpis, setLpiConfig, invLpi, type ItsLayout, type LpiLayout } from './guest/its-driver.js';
export { BUILTIN_GUESTS } from './guest/builtins/index.js';
export { ECHO, type IrqEchoArgs } from './guest/builtins/irq-echo.js';
export { PINGPONG } from './guest/builtins/ipi-pingpong.js';
export { SINK as IRQ_SINK, type SinkArgs as IrqSinkArgs } from './guest/builtins/irq-sink.js';
// irqfd, eventfd, VFIO (DESIGN §5).
export { EventFd, EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC, EVENTFD_MAX, type EventFdHandle } from './eventfd/eventfd.js';
export type { KvmIrqfd, IrqfdInfo } from './kvm/irqfd.js';
export { VfioPlatformDevice, type VfioPlatformDeviceOptions, type VfioIrqCounts, type VfioIrqInfo, type VfioIrqType } from './kvm/vfio/platform-device.js';
export type { KvmArchForwardedIrq } from './kvm/vfio/kvm-vfio-device.js';
export type { IrqSchedule } from './kvm/vfio/schedule.js';
export { irqBypass, IrqBypassManager, type IrqBypassProducer, type IrqBypassConsumer } from './kvm/irq-bypass.js';
