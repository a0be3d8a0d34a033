/**
 * The VM: the KVM VM file descriptor's operations, on the main thread (the VMM's thread).
 * createVm -> createDevice / createVcpu -> setAttr ... -> run -> destroy.
 */
import { timerInitVm, timerVcpuInit } from './timer/timer-enable.js';
import { KvmError, kvmErr } from '../uapi/errno.js';
import { KVM_MSI_VALID_DEVID, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_VFIO, VGIC_EMU_REQ_STOP } from '../uapi/kvm.js';
import { releaseAll } from '../sync/lock.js';
import type { LockClassStats, LockStatsOptions } from '../sync/lock-stat-read.js';
import { VmLockStats } from './lock-stats.js';
import { allocateBuffers, computeGeometry, irqOff, vcpuOff, type VmBuffers, type VmGeometry } from '../shm/vm-memory.js';
import { IRQ, VCPU } from '../shm/layouts.js';
import { makeHost, dw, type Host, type SharedVmConfig } from '../vgic/host.js';
import { bugMask } from '../vgic/bugs.js';
import { initPrivateIrqs, resetCpuInterface } from '../vgic/init.js';
import { kickVcpu, makeRequest } from '../vgic/queue.js';
import { lockKvm, unlockKvm, withConfigLock } from '../vgic/locks.js';
import { placeRedist } from '../vgic/rdist.js';
import { mpidrAffOf, vcpuIdxById } from '../vgic/vcpu-id.js';
import { vgicCreate, VgicDevice, vgicMaxVcpus, type KvmDevice } from './vgic-device.js';
import { Vcpu, type VcpuOptions, type VcpuRunResult } from './vcpu.js';
import { kvmIrqLine } from './irq-line.js';
import type { StressThreadConfig } from '../stress/thread-config.js';
import { randomInt } from 'node:crypto';
import { Worker, type MessagePort } from 'node:worker_threads';
import { Irqfds, type IrqfdInfo, type KvmIrqfd } from './irqfd.js';
import { copyFromUser } from './user-copy.js';
import { installVmWakeups } from './irqfd-path.js';
import { setWakeupHandler } from '../eventfd/wakeup.js';
import type { EventFd } from '../eventfd/eventfd.js';
import { distPath } from './worker-path.js';
import { vgicDestroy } from '../vgic/init.js';
import type { IrqBypassConsumer } from './irq-bypass.js';
import { forwardingConsumer } from './vfio/bypass-consumer.js';
import { checkVmUsable, markVmClosed } from './vm-closed.js';
import { checkVcpuOptions } from './guest-ref.js';
import { nameIoctls } from './ioctl-names.js';
import { describe, resolveVmOptions, type ResolvedVmOptions, type VmOptions } from './vm-options.js';
import { KvmVfioDevice } from './vfio/kvm-vfio-device.js';
import { ItsDevice, itsCreate } from './its-device.js';
import { setGsiRouting, type RoutingEntry } from '../vgic/irq-routing.js';
import { vgicItsInjectMsi } from '../vgic/its/translate.js';
import { throwOnAccessViolations } from '../check/lockset/index.js';

export type { VmOptions } from './vm-options.js';

export type { LockClassStats, LockContentionPoint, LockInstanceStats, LockStatsOptions } from '../sync/lock-stat-read.js';

/** struct kvm_msi. */
export interface KvmMsi {
  addressLo: number;
  addressHi?: number;
  data: number;
  /** KVM_MSI_VALID_DEVID when `devid` is meaningful (an ITS needs it). */
  flags?: number;
  devid?: number;
}

/** KVM_CREATE_VM. */
export function createVm(options?: VmOptions): Vm {
  try {
    return new Vm(options);
  } catch (e) {
    if (e instanceof KvmError) e.syscall = 'KVM_CREATE_VM';
    throw e;
  }
}

const TEARDOWN_GRACE_MS = 3000;

export class Vm {
  readonly options: Readonly<ResolvedVmOptions>;
  private kvmVfio: KvmVfioDevice | null = null;
  private readonly stress: StressThreadConfig | null;
  /** @internal the main thread's view of the shared state */
  readonly host: Host;
  readonly geometry: VmGeometry;
  private readonly buffers: VmBuffers;
  private readonly cfg: SharedVmConfig;
  private readonly vcpuList: Vcpu[] = [];
  private vgic: VgicDevice | null = null;
  private teardown: Promise<void> | null = null;
  private readonly irqfdTable: Irqfds;
  /** What destroy() tore down, in order (spec §11: irqfds before the vgic). */
  readonly teardownLog: string[] = [];
  private readonly teardownHooks: { name: string; fn: () => Promise<void> }[] = [];

  constructor(o?: VmOptions) {
    const { stress, ...opts } = resolveVmOptions(o);
    const { maxVcpus, nrLr, ramBytes, ipaBits, locking, lrPolicy, lockdep, lockStats, bugs, checkAccess } = opts;
    this.options = opts;
    this.cfg = { maxVcpus, nrLr, ramBytes, ipaBits, locking, lrPolicy, lockdep, lockStats, bugs: bugMask(bugs), checkAccess };
    this.geometry = computeGeometry(this.cfg);
    this.buffers = allocateBuffers(this.geometry, checkAccess);
    this.stress = stress;
    this.host = makeHost(this.geometry, this.cfg, this.buffers, 0, 'main', -1, this.stress?.history ?? null);
    const m = this.host.m;
    m.fill(0);
    this.host.f[dw(this.host, 'distBase') / 2] = -1;
    this.host.f[dw(this.host, 'cpuBase') / 2] = -1;
    for (let r = 0; r < this.geometry.nrRecords; r++) {
      const b = irqOff(this.geometry, r);
      m[b + IRQ.off.vcpu] = -1;
      m[b + IRQ.off.target] = -1;
      m[b + IRQ.off.next] = -1;
      m[b + IRQ.off.prev] = -1;
    }
    m[dw(this.host, 'nrRoutes')] = -1; // the default GSI routing
    // kvm_timer_init_vm; a controlled stress run makes the counter a function of its schedule.
    timerInitVm(this.host, this.stress?.sched != null);
    // This VM's identity as an eventfd wake-up owner (eventfd/wakeup.ts), > 0.
    m[dw(this.host, 'vmToken')] = randomInt(1, 0x7fff_ffff);
    this.irqfdTable = new Irqfds(this.host, {
      spawnInjector: (port) => this.spawnInjector(port),
      bypassConsumer: (token, gsi) => this.bypassConsumer?.(token, gsi) ?? null,
    });
    installVmWakeups(this.host, null, (slot, gen) => this.irqfdTable.hangup(slot, gen));
    if (opts.irqBypass) this.bypassConsumer = (token, gsi) => forwardingConsumer(this.host, token, gsi);
  }

  /** The irq-bypass consumer made for each new irqfd (vfio/bypass-consumer.ts), when enabled. */
  private bypassConsumer: ((token: string, gsi: number) => IrqBypassConsumer) | null = null;

  private spawnInjector(port: MessagePort): Worker {
    return new Worker(distPath('workers/irqfd-injector.js'), {
      workerData: { buffers: this.buffers, cfg: this.cfg, history: this.stress?.history ?? null, stress: this.stress, port },
      transferList: [port],
    });
  }

  /**
   * KVM_IRQFD (spec §8.3): assign `fd` to raise SPI `gsi + 32`, with KVM_IRQFD_FLAG_RESAMPLE a
   * `resamplefd` signalled at each EOI of that (level) SPI, or with KVM_IRQFD_FLAG_DEASSIGN remove
   * it and wait until nothing can inject for it any more.
   */
  irqfd(a: KvmIrqfd): void {
    this.checkAlive('KVM_IRQFD');
    this.irqfdTable.ioctl(copyFromUser(a, 'KVM_IRQFD: struct kvm_irqfd'));
  }

  /**
   * KVM_SIGNAL_MSI (spec §8.7): deliver an MSI through the ITS whose doorbell `addressHi:addressLo`
   * is. Returns 1 when delivered, 0 when the ITS dropped it (unmapped device, event or
   * collection). EINVAL without an in-kernel vgic, for unknown flags, a doorbell that is no ITS or
   * a missing KVM_MSI_VALID_DEVID; ENODEV without an ITS; EBUSY while the ITS (or the target's
   * LPIs) are disabled.
   */
  signalMsi(msi: KvmMsi): number {
    this.checkAlive('KVM_SIGNAL_MSI');
    copyFromUser(msi, 'KVM_SIGNAL_MSI: struct kvm_msi');
    const h = this.host;
    const flags = msi.flags ?? 0;
    if (!h.m[dw(h, 'inKernel')]) kvmErr('EINVAL', 'KVM_SIGNAL_MSI: no in-kernel irqchip');
    if (!Number.isInteger(flags) || (flags & ~KVM_MSI_VALID_DEVID) !== 0) kvmErr('EINVAL', `KVM_SIGNAL_MSI: unknown flags ${flags}`);
    for (const k of ['addressLo', 'addressHi', 'data', 'devid'] as const) {
      const v = msi[k] ?? 0;
      if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) kvmErr('EINVAL', `KVM_SIGNAL_MSI: ${k} must be a u32`);
    }
    if (!Atomics.load(h.m, dw(h, 'nrIts'))) kvmErr('ENODEV', 'KVM_SIGNAL_MSI: this VM has no ITS');
    const addr = (msi.addressHi ?? 0) * 0x1_0000_0000 + msi.addressLo;
    return vgicItsInjectMsi(h, addr, msi.devid ?? 0, msi.data, flags);
  }

  /** KVM_SET_GSI_ROUTING: replace the routing table (irqchip and MSI entries). */
  setGsiRouting(entries: readonly RoutingEntry[]): void {
    this.checkAlive('KVM_SET_GSI_ROUTING');
    setGsiRouting(this.host, copyFromUser(entries, 'KVM_SET_GSI_ROUTING: struct kvm_irq_routing'));
  }

  /** The irqfds now assigned, with their delivery counters. */
  irqfds(): IrqfdInfo[] {
    return this.irqfdTable.list();
  }

  /** @internal The eventfds of the assigned irqfds, for the quiescence audit (check/audits.ts). */
  irqfdEventFds(): { name: string; fd: EventFd }[] {
    return this.irqfdTable.eventfds();
  }

  /** @internal Run `fn` at destroy() after the irqfds, vCPUs and vgic (devices); returns its remover. */
  onTeardown(name: string, fn: () => Promise<void>): () => void {
    const hook = { name, fn };
    this.teardownHooks.push(hook);
    return () => {
      const i = this.teardownHooks.indexOf(hook);
      if (i >= 0) this.teardownHooks.splice(i, 1);
    };
  }

  /** Guest RAM as 32-bit words (the same memory the vCPUs see). */
  get ram(): Int32Array {
    return new Int32Array(this.buffers.ram);
  }

  /**
   * Wait until guest RAM word `index` (32-bit words, as `vm.ram`) meets `cond`: equal to a number,
   * or a predicate of the word. Guests publish their progress in RAM (the built-in guests' READY
   * word), and an injection made before a guest enabled its interrupts is not delivered, so a VMM
   * waits for READY before it injects. Bounded: ETIMEDOUT naming `what` after `timeoutMs`
   * (default 10 s). It fails at once with a vCPU's error when a KVM_RUN fails meanwhile, and with
   * EINVAL when no vCPU is running (then the word can never change). Resolves the word.
   */
  async waitForRam(index: number, cond: number | ((word: number) => boolean), opts: { timeoutMs?: number; what?: string } = {}): Promise<number> {
    this.checkAlive('waitForRam');
    const ram = this.ram;
    if (!Number.isInteger(index) || index < 0 || index >= ram.length) kvmErr('EINVAL', `waitForRam: index must be a word index below ${ram.length}, got ${describe(index)}`);
    if (typeof cond !== 'number' && typeof cond !== 'function') kvmErr('EINVAL', `waitForRam: cond must be a number or a predicate, got ${describe(cond)}`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) kvmErr('EINVAL', `waitForRam: timeoutMs must be a number >= 0, got ${describe(timeoutMs)}`);
    const what = opts.what ?? `guest RAM word ${index} to be ${typeof cond === 'number' ? cond : 'as expected'}`;
    const ok = typeof cond === 'number' ? (w: number): boolean => w === cond : cond;
    const deadline = performance.now() + timeoutMs;
    for (let spins = 0; ; spins++) {
      const w = Atomics.load(ram, index);
      if (ok(w)) return w;
      const failed = this.vcpuList.find((v) => v.failedWith)?.failedWith;
      if (failed) throw failed;
      if (!this.vcpuList.some((v) => v.isRunning)) kvmErr('EINVAL', `waitForRam: no vCPU is running (vm.run() first, or every guest has returned), waiting for ${what}`);
      if (performance.now() > deadline) kvmErr('ETIMEDOUT', `waitForRam: timed out after ${timeoutMs} ms waiting for ${what} (word ${index} is ${w})`);
      // Poll the word (guests store it plainly, nothing notifies): turns of the event loop first,
      // then 1 ms timers, so a long wait costs no CPU.
      await new Promise<void>((r) => (spins < 200 ? setImmediate(r) : setTimeout(r, 1)));
    }
  }

  /** Every vCPU, in creation order (vcpu_idx); `vcpu(id)` finds one by its vcpu_id. */
  get vcpus(): readonly Vcpu[] {
    return this.vcpuList;
  }

  private checkAlive(call = 'vm'): void {
    checkVmUsable(this.host, call);
  }

  /**
   * KVM_CREATE_DEVICE. With `{ test: true }` (KVM_CREATE_DEVICE_TEST) it only asks whether the
   * type is supported: it creates nothing and returns no handle (undefined), or fails with
   * ENODEV, as the kernel returns before calling the device's create.
   */
  createDevice(type: number, opts: { test: true }): undefined;
  createDevice(type: number, opts?: { test?: false }): KvmDevice;
  createDevice(type: number, opts: { test?: boolean } = {}): KvmDevice | undefined {
    this.checkAlive('KVM_CREATE_DEVICE');
    if (opts === null || typeof opts !== 'object') kvmErr('EINVAL', 'KVM_CREATE_DEVICE: opts must be an object ({ test?: boolean })');
    if (opts.test !== undefined && typeof opts.test !== 'boolean') kvmErr('EINVAL', 'KVM_CREATE_DEVICE: opts.test must be a boolean');
    const known = type === KVM_DEV_TYPE_VFIO || type === KVM_DEV_TYPE_ARM_VGIC_ITS || type === KVM_DEV_TYPE_ARM_VGIC_V2 || type === KVM_DEV_TYPE_ARM_VGIC_V3;
    if (!known) kvmErr('ENODEV', `KVM_CREATE_DEVICE: device type ${String(type)} is not supported`);
    if (opts.test) return undefined;
    if (type === KVM_DEV_TYPE_VFIO) {
      // kvm_vfio_create: one KVM VFIO device per VM.
      if (this.kvmVfio) kvmErr('EBUSY', 'this VM already has a KVM VFIO device');
      this.kvmVfio = new KvmVfioDevice(this.host);
      return this.kvmVfio;
    }
    if (type === KVM_DEV_TYPE_ARM_VGIC_ITS) {
      lockKvm(this.host);
      try {
        const i = withConfigLock(this.host, () => itsCreate(this.host));
        return new ItsDevice(this.host, i, this.options.ipaBits);
      } finally {
        unlockKvm(this.host);
      }
    }
    lockKvm(this.host);
    try {
      vgicCreate(this.host, type);
    } finally {
      unlockKvm(this.host);
    }
    this.vgic = new VgicDevice(this.host, type, this.options.ipaBits);
    return this.vgic;
  }

  /**
   * KVM_CREATE_VCPU (kvm_vm_ioctl_create_vcpu, kvm_arch_vcpu_precreate; spec §7.3). `id` is the
   * vcpu_id: any id below the VM's vCPU limit, in any order. The vCPU's per-vCPU memory, its
   * redistributor slot and its place in `vcpus` follow creation order (vcpu_idx); its MPIDR,
   * GICR_TYPER.Processor_Number and every uapi field naming a vCPU use the id.
   * EINVAL when maxVcpus vCPUs exist or the id is beyond the limit (maxVcpus, and the vgic's
   * kvm->max_vcpus once one exists); EBUSY once the vgic is initialised; EEXIST for a taken id.
   */
  createVcpu(id: number, opts: VcpuOptions = {}): Vcpu {
    this.checkAlive('KVM_CREATE_VCPU');
    checkVcpuOptions(opts);
    const h = this.host;
    const m = h.m;
    let idx: number;
    lockKvm(h);
    try {
      if (!Number.isInteger(id) || id < 0) kvmErr('EINVAL', `bad vCPU id ${id}`);
      const online = m[dw(h, 'onlineVcpus')]!;
      if (m[dw(h, 'createdVcpus')]! >= this.options.maxVcpus) kvmErr('EINVAL', `already ${this.options.maxVcpus} vCPUs (maxVcpus)`);
      if (Atomics.load(m, dw(h, 'initialized'))) kvmErr('EBUSY', 'vgic already initialised: no new vCPUs');
      if (id >= this.options.maxVcpus) kvmErr('EINVAL', `vCPU id ${id} >= maxVcpus (${this.options.maxVcpus})`);
      if (m[dw(h, 'inKernel')] && id >= vgicMaxVcpus(h)) kvmErr('EINVAL', `vCPU id ${id} beyond the vgic's limit`);
      if (vcpuIdxById(h, id) >= 0) kvmErr('EEXIST', `vCPU ${id} exists`);
      idx = online;
      m[dw(h, 'createdVcpus')] = online + 1;
      const vb = vcpuOff(this.geometry, idx);
      m.fill(0, vb, vb + VCPU.size);
      m[vb + VCPU.off.apHead] = -1;
      m[vb + VCPU.off.apTail] = -1;
      m[vb + VCPU.off.rdRegion] = -1;
      h.f[(vb + VCPU.off.rdBase) / 2] = -1;
      m[vb + VCPU.off.vcpuId] = id;
      m[vb + VCPU.off.mpidr] = mpidrAffOf(id);
      m[vb + VCPU.off.nrLr] = this.options.nrLr;
      m[vb + VCPU.off.created] = 1;
      timerVcpuInit(h, idx);
      try {
        // kvm_arch_vcpu_create runs before online_vcpus counts the new vCPU: the redistributor
        // placement's vgic_v3_check_base sizes a legacy region by the vCPUs already online, so a
        // frame of this vCPU that overlaps the distributor is only found at the first KVM_RUN.
        if (m[dw(h, 'inKernel')]) {
          withConfigLock(h, () => {
            initPrivateIrqs(h, idx);
            resetCpuInterface(h, idx);
            if (m[dw(h, 'model')] === 3) placeRedist(h, idx);
          });
        }
        Atomics.store(m, dw(h, 'onlineVcpus'), online + 1);
      } catch (e) {
        m[dw(h, 'createdVcpus')] = online;
        m[vb + VCPU.off.created] = 0;
        throw e;
      }
    } finally {
      unlockKvm(h);
    }
    const fdPort = this.irqfdTable.fds.newPort();
    const v = new Vcpu(h, id, idx, { buffers: this.buffers, cfg: this.cfg, vcpu: idx, stress: this.stress, fdPort }, opts, () => this.stopAll(), [fdPort]);
    this.vcpuList.push(v);
    return v;
  }

  /** The vCPU created with vcpu_id `id` (kvm_get_vcpu_by_id), or undefined. */
  vcpu(id: number): Vcpu | undefined {
    const idx = vcpuIdxById(this.host, id);
    return idx < 0 ? undefined : this.vcpuList[idx];
  }

  /**
   * KVM_IRQ_LINE (spec §8.1). `irq` is the uapi field: vcpu2_index[31:28] | type[27:24] |
   * vcpu_index[23:16] | number[15:0] (see kvmIrqLineField).
   */
  irqLine(irq: number, level: boolean | number): void {
    this.checkAlive('KVM_IRQ_LINE');
    // struct kvm_irq_level { irq, level }, copied from user: a missing field is EFAULT. Of what is
    // there, irq is a u32 and only 0 and 1 (or false/true) are levels: NaN, strings, objects or -7
    // are caller bugs, not "high" by truthiness.
    if (irq === null || irq === undefined || level === null || level === undefined) kvmErr('EFAULT', 'KVM_IRQ_LINE: struct kvm_irq_level needs irq and level');
    if (typeof irq !== 'number' || !Number.isInteger(irq) || irq < 0 || irq > 0xffff_ffff) kvmErr('EINVAL', `KVM_IRQ_LINE: irq must be a u32 (see kvmIrqLineField), got ${describe(irq)}`);
    if (level !== 0 && level !== 1 && level !== true && level !== false) kvmErr('EINVAL', `KVM_IRQ_LINE: level must be 0 or 1, got ${describe(level)}`);
    kvmIrqLine(this.host, irq, level);
  }

  /**
   * Run every vCPU until its guest returns. If one fails, the others are stopped and the first
   * error is thrown (GuestFault, KvmError or LockOrderError, each with the vCPU id).
   */
  async run(): Promise<VcpuRunResult[]> {
    this.checkAlive('KVM_RUN');
    const order: unknown[] = [];
    const runs = this.vcpuList.map((v) =>
      v.run().catch((e: unknown) => {
        order.push(e);
        throw e;
      }),
    );
    const settled = await Promise.allSettled(runs);
    if (order.length) {
      // Report the cause, not its echo: once one vCPU's first run marks the VM dead, the others
      // fail with EIO; the first error that is not that EIO is the one that explains the run.
      throw order.find((e) => !(e instanceof KvmError && e.code === 'EIO')) ?? order[0];
    }
    return settled.map((s) => (s as PromiseFulfilledResult<VcpuRunResult>).value);
  }

  /** Ask every vCPU to leave: raise the stop word and wake or kick each one. */
  stopAll(): void {
    const h = this.host;
    Atomics.store(h.m, dw(h, 'stop'), 1);
    const online = h.m[dw(h, 'onlineVcpus')]!;
    for (let v = 0; v < online; v++) {
      const vb = vcpuOff(this.geometry, v);
      makeRequest(h, v, VGIC_EMU_REQ_STOP);
      kickVcpu(h, v);
      Atomics.store(h.m, vb + VCPU.off.wake, 1);
      Atomics.notify(h.m, vb + VCPU.off.wake);
      Atomics.notify(h.m, vb + VCPU.off.pause);
    }
  }

  /**
   * Tear the VM down: stop every vCPU, wait for their runs (bounded), then end every worker
   * thread. No thread outlives its VM. Idempotent.
   */
  destroy(): Promise<void> {
    // Every call returns the same teardown: a second caller must not resolve while the first is
    // still tearing down (and must see its failure, if any).
    this.teardown ??= this.tearDown();
    return this.teardown;
  }

  /** `await using vm = createVm()`: destroyed when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }

  private async tearDown(): Promise<void> {
    markVmClosed(this.host);
    // A main-thread call that failed inside a critical section (a LockOrderError) may have left
    // locks held: teardown takes config_lock and must not trip over them.
    releaseAll(this.host.t);
    // kvm_irqfd_release first (spec §11.1): after it no eventfd signal can inject into this VM.
    await this.irqfdTable.release();
    setWakeupHandler(this.host.m[dw(this.host, 'vmToken')]!, null);
    this.teardownLog.push('irqfds');
    this.stopAll();
    const all = Promise.all(this.vcpuList.map((v) => v.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, TEARDOWN_GRACE_MS)))]);
    clearTimeout(timer);
    await Promise.all(this.vcpuList.map((v) => v.terminate()));
    this.teardownLog.push('vcpus');
    vgicDestroy(this.host);
    this.teardownLog.push('vgic');
    // A copy: each hook (a device's close) removes itself from the list.
    for (const t of [...this.teardownHooks]) {
      await t.fn();
      this.teardownLog.push(t.name);
    }
    // Checking mode: a lockset violation on any thread fails the VM's user (a stress run reads them as findings).
    if (!this.stress) throwOnAccessViolations(this.host);
  }

  /**
   * A copy of the whole VM state (GIC state, guest RAM). All state lives in shared memory, so a
   * snapshot is a copy of the buffers; take it while the vCPUs are stopped for a consistent view.
   */
  snapshot(): { state: ArrayBuffer; ram: ArrayBuffer } {
    const copy = (b: SharedArrayBuffer): ArrayBuffer => {
      const out = new ArrayBuffer(b.byteLength);
      new Uint8Array(out).set(new Uint8Array(b));
      return out;
    };
    return { state: copy(this.buffers.state), ram: copy(this.buffers.ram) };
  }

  /** @internal What another host thread (a stress driver) needs to build its own Host. */
  threadInit(): { buffers: VmBuffers; cfg: SharedVmConfig; stress: StressThreadConfig | null } {
    return { buffers: this.buffers, cfg: this.cfg, stress: this.stress };
  }

  private lockStatsReader: VmLockStats | null = null;

  /**
   * lock_stat per class, summed over all threads (sync/lock-stat-read.ts): the /proc/lock_stat
   * columns in whole ns, the contention points, with `instances: N` the N most contended
   * instances per class, with `reset: true` a new phase starts after this read.
   */
  lockStats(o: LockStatsOptions = {}): LockClassStats[] {
    this.lockStatsReader ??= new VmLockStats(this.host);
    return this.lockStatsReader.read(o).classes;
  }
}

nameIoctls(Vm.prototype, {
  createVcpu: 'KVM_CREATE_VCPU', createDevice: 'KVM_CREATE_DEVICE', irqLine: 'KVM_IRQ_LINE', irqfd: 'KVM_IRQFD',
  signalMsi: 'KVM_SIGNAL_MSI', setGsiRouting: 'KVM_SET_GSI_ROUTING', run: 'KVM_RUN',
});
