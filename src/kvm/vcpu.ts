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
import { resolveGuestUrl, type GuestRef } from './guest-ref.js';
import { reviveRunError, type VcpuRunOutcome } from './run-outcome.js';
import { distPath } from './worker-path.js';
import { lockVcpuMutex, unlockVcpuMutex } from '../vgic/locks.js';
import { kvmErr } from './errno.js';
import { isTimerReg, timerGetAttr, timerGetReg, timerHasAttr, timerSetAttr, timerSetReg } from './timer/timer-uapi-access.js';
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';

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
  readonly id: number;
  private readonly h: Host;
  private readonly worker: Worker;
  private readonly api: Comlink.Remote<VcpuWorkerApi>;
  private readonly opts: VcpuOptions;
  /** Settles when the worker thread is gone (exit or crash). */
  readonly gone: Promise<void>;
  private crashed: Error | null = null;
  private running: Promise<VcpuRunResult> | null = null;

  private readonly onFault: () => void;

  /** @internal created by Vm.createVcpu; `onFault` stops the VM's other vCPUs. */
  constructor(h: Host, id: number, workerData: unknown, opts: VcpuOptions, onFault: () => void, transferList: TransferListItem[] = []) {
    this.h = h;
    this.onFault = onFault;
    this.id = id;
    this.opts = opts;
    this.worker = new Worker(distPath('workers/vcpu.js'), { workerData, transferList });
    // Listeners first: an event emitted before a listener exists is lost (PLATFORM.md).
    this.gone = new Promise((res) => {
      this.worker.once('error', (e) => {
        this.crashed = e;
      });
      this.worker.once('exit', () => res());
    });
    this.api = Comlink.wrap<VcpuWorkerApi>(nodeEndpoint(this.worker));
  }

  /** KVM_RUN until the guest returns. Rejects with KvmError, LockOrderError or GuestFault. */
  run(): Promise<VcpuRunResult> {
    if (this.running) return this.running;
    const guestRef = this.opts.guest ?? 'idle';
    const p = (async (): Promise<VcpuRunResult> => {
      const url = resolveGuestUrl(guestRef);
      const mmio = this.opts.mmioHandler
        ? this.opts.mmioHandler.startsWith('file:') ? this.opts.mmioHandler : pathToFileURL(isAbsolute(this.opts.mmioHandler) ? this.opts.mmioHandler : resolve(this.opts.mmioHandler)).href
        : undefined;
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
        throw reviveRunError(out.error);
      }
      return { vcpu: this.id, reason: out.reason, result: out.result };
    })();
    this.running = p.finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Resolves once no run is in flight (never starts one). */
  idle(): Promise<void> {
    return this.running ? this.running.then(() => undefined, () => undefined) : Promise.resolve();
  }

  /** A vCPU ioctl: under vcpu->mutex, so it waits for a KVM_RUN in progress to return. */
  private ioctl<T>(body: () => T): T {
    lockVcpuMutex(this.h, this.id);
    try {
      return body();
    } finally {
      unlockVcpuMutex(this.h, this.id);
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
      if (!isTimerReg(id)) kvmErr('ENOENT', `no register with id 0x${id.toString(16)}`);
      return timerGetReg(this.h, this.id, id);
    });
  }
  /** KVM_SET_ONE_REG (see getOneReg). Writing a counter sets the VM's offset (restoring time). */
  setOneReg(id: bigint, value: bigint): void {
    this.ioctl(() => {
      if (!isTimerReg(id)) kvmErr('ENOENT', `no register with id 0x${id.toString(16)}`);
      timerSetReg(this.h, this.id, id, value);
    });
  }

  /** Counters of this vCPU (read from shared memory; exact once the vCPU is stopped). */
  stats(): VcpuStats {
    const m = this.h.m;
    const vb = vcpuOff(this.h.g, this.id);
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
