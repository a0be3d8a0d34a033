/**
 * The main thread's handle on one vCPU: its worker (spawned at KVM_CREATE_VCPU, as a VMM creates
 * its vCPU thread), `run()` (KVM_RUN until the guest program returns), and its counters, read
 * straight from shared memory.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { VcpuWorkerApi } from '../../workers/vcpu.js';
import { EXIT_REASONS, type ExitReason, VCPU, VCPU_COUNTERS, type VcpuCounter } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { resolveGuestUrl, resolveModuleUrl, type GuestRef } from './guest-ref.js';
import { reviveRunError, type VcpuRunOutcome } from './run-outcome.js';
import { distPath } from './worker-path.js';
import { lockVcpuMutex, unlockVcpuMutex } from '../vgic/locks.js';
import { isTimerReg, timerGetAttr, timerGetReg, timerHasAttr, timerSetAttr, timerSetReg } from './timer/timer-uapi-access.js';
import { kickVcpu, makeRequest } from '../vgic/queue.js';
import { KVM_EXIT_INTR, VGIC_EMU_REQ_SIGNAL } from '../uapi/kvm.js';
import { SIG_NONE, SIG_OUT, SIG_PENDING } from './vcpu-runner.js';
import { waitAsync } from '../eventfd/layout.js';
import { kvmErr } from '../uapi/errno.js';
import { checkVmUsable } from './vm-closed.js';
import { nameIoctls } from './ioctl-names.js';
import { getUserU64 } from './user-copy.js';
import { describe } from './vm-options.js';

export interface VcpuOptions {
  /** Built-in guest name, module path, or { source } (see guestFromFunction). */
  guest?: GuestRef;
  /** Passed to the guest's default export as its second argument (structured-cloned). */
  args?: unknown;
  /** Module path whose default export handles KVM_EXIT_MMIO: { read(gpa,len,vcpu), write(gpa,len,value,vcpu) }. */
  mmioHandler?: string;
}

export interface VcpuRunResult {
  vcpu: number;
  /** 'shutdown': the guest program returned; 'stopped': the VM was torn down. */
  reason: 'shutdown' | 'stopped';
  /** The guest program's return value. */
  result: unknown;
}

export type VcpuStats = { [K in VcpuCounter]: number } & { exits: { [K in ExitReason]: number } };

export class Vcpu {
  /** vcpu_id: the id given to createVcpu (MPIDR affinity, KVM_IRQ_LINE's vcpu field). */
  readonly id: number;
  /** vcpu_idx: creation order, the index of this vCPU's state in shared memory and in `vm.vcpus`. */
  readonly index: number;
  private readonly h: Host;
  private readonly worker: Worker;
  private readonly api: Comlink.Remote<VcpuWorkerApi>;
  private readonly opts: VcpuOptions;
  /** Settles when the worker thread is gone (exit or crash). */
  readonly gone: Promise<void>;
  private crashed: Error | null = null;
  private running: Promise<VcpuRunResult> | null = null;
  private readonly guestUrl: string;
  /** @internal The error its last KVM_RUN failed with (Vm.waitForRam stops at it). */
  failedWith: Error | null = null;
  private readonly mmioUrl: string | undefined;

  private readonly onFault: () => void;

  /** @internal created by Vm.createVcpu; `onFault` stops the VM's other vCPUs. */
  constructor(h: Host, id: number, index: number, workerData: unknown, opts: VcpuOptions, onFault: () => void, transferList: TransferListItem[] = []) {
    this.h = h;
    this.onFault = onFault;
    this.id = id;
    this.index = index;
    this.opts = opts;
    this.guestUrl = resolveGuestUrl(opts.guest ?? 'idle');
    this.mmioUrl = opts.mmioHandler === undefined ? undefined : resolveModuleUrl(opts.mmioHandler, 'mmioHandler');
    this.worker = new Worker(distPath('workers/vcpu.js'), { workerData, transferList });
    // Listeners first: an event emitted before a listener exists is lost (PLATFORM.md).
    this.gone = new Promise((res) => {
      this.worker.once('error', (e) => {
        this.crashed = e;
      });
      this.worker.once('exit', () => res());
    });
    this.api = Comlink.wrap<VcpuWorkerApi>(nodeEndpoint(this.worker));
    // An idle vCPU thread must not keep the process alive (a VM that is never destroyed, or whose
    // guests have all returned): only a KVM_RUN in flight holds a reference (run() below). After
    // the wrap: attaching a 'message' listener refs the worker's port again.
    this.worker.unref();
  }

  /** KVM_RUN until the guest returns. Rejects with KvmError, LockOrderError or GuestFault. */
  run(): Promise<VcpuRunResult> {
    if (this.running) return this.running;
    try {
      checkVmUsable(this.h, 'KVM_RUN');
    } catch (e) {
      return Promise.reject(e);
    }
    const url = this.guestUrl;
    const mmio = this.mmioUrl;
    this.worker.ref();
    const p = (async (): Promise<VcpuRunResult> => {
      // Comlink calls do not reject if the worker dies: race the call against the worker's exit.
      const died = this.gone.then((): VcpuRunOutcome => ({
        ok: false,
        error: { name: 'Error', message: `vCPU ${this.id} worker exited${this.crashed ? `: ${this.crashed.message}` : ''}`, vcpu: this.id },
      }));
      const out = await Promise.race([this.api.run(url, this.opts.args, mmio), died]);
      if (!out.ok) {
        // A guest that throws (or a host error on this vCPU) stops the whole VM: no thread may
        // keep spinning against a vCPU that is gone.
        this.onFault();
        this.failedWith = reviveRunError(out.error);
        throw this.failedWith;
      }
      return { vcpu: this.id, reason: out.reason, result: out.result };
    })();
    this.running = p.finally(() => {
      this.running = null;
      this.worker.unref();
    });
    return this.running;
  }

  /**
   * Take this vCPU out of KVM_RUN from the host, as a signal to QEMU's vCPU thread does (or
   * `immediate_exit` before the call): at its next instruction boundary, or out of WFI, KVM_RUN
   * returns -EINTR with exit reason KVM_EXIT_INTR (counted in `stats().exits.intr`), vcpu->mutex is
   * released, and the vCPU thread waits in userspace until `resume()`, then issues KVM_RUN again:
   * the guest continues where it was. While it is out, calls that need the vCPU outside KVM_RUN
   * (the vgic register groups, which lock every vCPU) succeed: this is how a VMM pauses a VM to
   * save or restore it.
   *
   * Resolves `{ exitReason: KVM_EXIT_INTR, errno: 'EINTR' }` once the vCPU is out, or
   * `{ exitReason: null }` when no KVM_RUN was in progress (nothing to interrupt; no signal is
   * left pending). ETIMEDOUT if it does not come out within `timeoutMs`.
   */
  async interrupt(timeoutMs = 5000): Promise<{ exitReason: typeof KVM_EXIT_INTR; errno: 'EINTR' } | { exitReason: null }> {
    checkVmUsable(this.h, 'vcpu.interrupt');
    const m = this.h.m;
    const sig = vcpuOff(this.h.g, this.index) + VCPU.off.signal;
    if (Atomics.load(m, sig) === SIG_OUT) return { exitReason: KVM_EXIT_INTR, errno: 'EINTR' };
    if (!this.running) return { exitReason: null };
    Atomics.compareExchange(m, sig, SIG_NONE, SIG_PENDING);
    // Request first, then kick: the kick's IN_GUEST -> EXITING flip (or the WFI doorbell) must
    // find the request when the vCPU re-enters (the kick-vs-guest-entry Dekker pair, queue.ts).
    makeRequest(this.h, this.index, VGIC_EMU_REQ_SIGNAL);
    kickVcpu(this.h, this.index);
    const deadline = performance.now() + timeoutMs;
    let ended = false;
    const run = this.running;
    void run.then(() => (ended = true), () => (ended = true));
    for (;;) {
      const s = Atomics.load(m, sig);
      if (s === SIG_OUT) return { exitReason: KVM_EXIT_INTR, errno: 'EINTR' };
      if (s === SIG_NONE) return { exitReason: null }; // resume() cancelled it
      if (ended) {
        // The run ended (guest returned, VM stopped) before the signal was taken.
        Atomics.compareExchange(m, sig, SIG_PENDING, SIG_NONE);
        return { exitReason: null };
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        Atomics.compareExchange(m, sig, SIG_PENDING, SIG_NONE);
        kvmErr('ETIMEDOUT', `vCPU ${this.id} did not leave KVM_RUN within ${timeoutMs} ms`);
      }
      // A pending waitAsync does not keep Node's event loop alive: the timer does (PLATFORM.md).
      const slice = Math.min(left, 20);
      const r = waitAsync(m, sig, SIG_PENDING, slice);
      if (r.async) {
        let t: NodeJS.Timeout | undefined;
        await Promise.race([r.value, new Promise((res) => (t = setTimeout(res, slice + 1)))]);
        clearTimeout(t);
      }
    }
  }

  /** Let a vCPU that interrupt() took out of KVM_RUN issue KVM_RUN again (or cancel a pending signal). */
  resume(): void {
    const m = this.h.m;
    const sig = vcpuOff(this.h.g, this.index) + VCPU.off.signal;
    if (Atomics.exchange(m, sig, SIG_NONE) !== SIG_NONE) Atomics.notify(m, sig);
  }

  /** True while interrupt() has this vCPU out of KVM_RUN, waiting for resume(). */
  get interrupted(): boolean {
    return Atomics.load(this.h.m, vcpuOff(this.h.g, this.index) + VCPU.off.signal) === SIG_OUT;
  }

  /** True while a KVM_RUN (run()) is in flight. */
  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Resolves once no run is in flight (never starts one). */
  idle(): Promise<void> {
    return this.running ? this.running.then(() => undefined, () => undefined) : Promise.resolve();
  }

  /**
   * A vCPU ioctl: under vcpu->mutex, so it waits (blocking this thread, as the ioctl blocks its
   * caller) for a KVM_RUN in progress to return; take a running vCPU out first with interrupt().
   */
  private ioctl<T>(body: () => T): T {
    lockVcpuMutex(this.h, this.index);
    try {
      return body();
    } finally {
      unlockVcpuMutex(this.h, this.index);
    }
  }

  /** KVM_SET_DEVICE_ATTR on the vCPU fd (group KVM_ARM_VCPU_TIMER_CTRL: the timer PPIs). */
  setAttr(group: number, attr: number, value: number): void {
    this.ioctl(() => timerSetAttr(this.h, group, attr, value));
  }
  /** KVM_GET_DEVICE_ATTR on the vCPU fd. */
  getAttr(group: number, attr: number): number {
    return this.ioctl(() => timerGetAttr(this.h, group, attr));
  }
  /** KVM_HAS_DEVICE_ATTR on the vCPU fd: returns if supported, ENXIO otherwise. */
  hasAttr(group: number, attr: number): void {
    this.ioctl(() => timerHasAttr(group, attr));
  }

  /** KVM_GET_ONE_REG. Registers modelled: the KVM_REG_ARM_[P]TIMER_{CTL,CNT,CVAL} ids (ENOENT otherwise). */
  getOneReg(id: bigint): bigint {
    return this.ioctl(() => {
      const reg = oneRegId(id);
      if (!isTimerReg(reg)) kvmErr('ENOENT', `KVM_GET_ONE_REG: no register with id 0x${reg.toString(16)}`);
      return timerGetReg(this.h, this.index, reg);
    });
  }
  /** KVM_SET_ONE_REG (see getOneReg). Writing a counter sets the VM's offset (restoring time). */
  setOneReg(id: bigint, value: bigint): void {
    this.ioctl(() => {
      const reg = oneRegId(id);
      if (!isTimerReg(reg)) kvmErr('ENOENT', `KVM_SET_ONE_REG: no register with id 0x${reg.toString(16)}`);
      timerSetReg(this.h, this.index, reg, getUserU64(value, 'KVM_SET_ONE_REG'));
    });
  }

  /** Counters of this vCPU (read from shared memory; exact once the vCPU is stopped). */
  stats(): VcpuStats {
    const m = this.h.m;
    const vb = vcpuOff(this.h.g, this.index);
    const out = {} as Record<string, unknown>;
    VCPU_COUNTERS.forEach((c, i) => (out[c] = Atomics.load(m, vb + VCPU.off.counters + i)));
    const exits = {} as Record<string, number>;
    EXIT_REASONS.forEach((r, i) => (exits[r] = Atomics.load(m, vb + VCPU.off.exits + i)));
    out.exits = exits;
    return out as VcpuStats;
  }

  /** @internal Terminate the worker thread (teardown). */
  async terminate(): Promise<void> {
    this.api[Comlink.releaseProxy]();
    await this.worker.terminate();
    await this.gone;
  }
}

/** struct kvm_one_reg's id (a u64): EFAULT when missing, EINVAL when not a u64. */
function oneRegId(id: unknown): bigint {
  if (id === null || id === undefined) kvmErr('EFAULT', 'KVM_ONE_REG: no struct kvm_one_reg');
  if (typeof id !== 'bigint' || id < 0n || id > 0xffff_ffff_ffff_ffffn) kvmErr('EINVAL', `KVM_ONE_REG: id must be a u64 bigint, got ${describe(id)}`);
  return id;
}

nameIoctls(Vcpu.prototype, {
  run: 'KVM_RUN', setAttr: 'KVM_SET_DEVICE_ATTR', getAttr: 'KVM_GET_DEVICE_ATTR', hasAttr: 'KVM_HAS_DEVICE_ATTR',
  getOneReg: 'KVM_GET_ONE_REG', setOneReg: 'KVM_SET_ONE_REG',
});
