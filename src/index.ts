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
export * from './kvm/timer/uapi.js';
export { CNTFRQ_HZ } from './kvm/timer/counter.js';
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
// Stress testing (DESIGN §6).
export { runStress, type StressRunOptions, type StressRunReport, type StressMode, type Strategy } from './stress/runner.js';
export { runCampaign, runSeed, type CampaignOptions, type CampaignResult } from './stress/campaign.js';
export { minimiseSchedule, type MinimiseResult } from './stress/minimise.js';
export { readScheduleFile, writeScheduleFile, toScheduleFile, fileSwitches, type ScheduleFile } from './stress/schedule-file.js';
export type { ScenarioModule, ScenarioArgs, ScenarioInfo } from './stress/scenario.js';
export type { DriverCtx } from './stress/driver-ctx.js';
export type { Finding, FindingKind } from './stress/findings.js';
export { BUILTIN_SCENARIOS } from './stress/scenarios/index.js';
export { BUG_INFO, type BugInfo } from './vgic/bugs.js';
export { checkHistory, formatViolation, type Violation } from './check/checker.js';
export { createHistory, readHistory, type HistoryBuffers } from './check/history.js';
export { Prng, deriveSeed, parseSeed, formatSeed } from './sched/prng.js';
// irqfd, eventfd, VFIO (DESIGN §5).
export { EventFd, EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC, EVENTFD_MAX, type EventFdHandle } from './eventfd/eventfd.js';
export type { KvmIrqfd, IrqfdInfo } from './kvm/irqfd.js';
export { VfioPlatformDevice, type VfioPlatformDeviceOptions, type VfioIrqCounts, type VfioIrqInfo, type VfioIrqType } from './kvm/vfio/platform-device.js';
export type { KvmArchForwardedIrq } from './kvm/vfio/kvm-vfio-device.js';
export type { IrqSchedule } from './kvm/vfio/schedule.js';
export * from './kvm/vfio/uapi.js';
export { irqBypass, IrqBypassManager, type IrqBypassProducer, type IrqBypassConsumer } from './kvm/irq-bypass.js';
