/**
 * The VM: the KVM VM file descriptor's operations, on the main thread (the VMM's thread).
 * createVm -> createDevice / createVcpu -> setAttr ... -> run -> destroy.
 */
import { KvmError, kvmErr } from './errno.js';
import { KVM_MSI_VALID_DEVID, KVM_DEV_TYPE_ARM_VGIC_ITS, KVM_DEV_TYPE_ARM_VGIC_V2, KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_TYPE_VFIO, KVM_PHYS_SHIFT_DEFAULT, VGIC_EMU_REQ_STOP } from './uapi.js';
import { LOCK_CLASSES, NR_LOCK_CLASSES } from '../sync/lock-classes.js';
import { releaseAll } from '../sync/lock.js';
import { LOCK_STAT_FIELDS, LOCK_STAT_WIDTH, type LockStatsMode } from '../sync/thread.js';
import { allocateBuffers, computeGeometry, irqOff, vcpuOff, type VmBuffers, type VmGeometry } from '../shm/vm-memory.js';
import { IRQ, MAX_LRS, VCPU } from '../shm/layouts.js';
import { makeHost, dw, type Host, type LockingMode, type LrPolicy, type SharedVmConfig } from '../vgic/host.js';
import { bugMask } from '../vgic/bugs.js';
import { initPrivateIrqs, resetCpuInterface } from '../vgic/init.js';
import { kickVcpu, makeRequest } from '../vgic/queue.js';
import { lockKvm, unlockKvm, withConfigLock } from '../vgic/locks.js';
import { placeRedist } from '../vgic/rdist.js';
import { vgicCreate, VgicDevice, vgicMaxVcpus, type KvmDevice } from './vgic-device.js';
import { Vcpu, type VcpuOptions, type VcpuRunResult } from './vcpu.js';
import { kvmIrqLine } from './irq-line.js';
import type { StressThreadConfig } from '../stress/thread-config.js';
import { randomInt } from 'node:crypto';
import { Worker, type MessagePort } from 'node:worker_threads';
import { Irqfds, type IrqfdInfo, type KvmIrqfd } from './irqfd.js';
import { installVmWakeups } from './irqfd-path.js';
import { setWakeupHandler } from '../eventfd/wakeup.js';
import { distPath } from './worker-path.js';
import { vgicDestroy } from '../vgic/init.js';
import type { IrqBypassConsumer } from './irq-bypass.js';
import { forwardingConsumer } from './vfio/bypass-consumer.js';
import { KvmVfioDevice } from './vfio/kvm-vfio-device.js';
import { ItsDevice, itsCreate } from './its-device.js';
import { setGsiRouting, type RoutingEntry } from '../vgic/irq-routing.js';
import { vgicItsInjectMsi } from '../vgic/its/translate.js';

export interface VmOptions {
  /** Upper bound on vCPUs (memory is laid out for it). Default 8. */
  maxVcpus?: number;
  /** List registers per vCPU, 1-16. Default 4 (a common GICv3 implementation). */
  nrLr?: number;
  /** Guest RAM bytes, shared by all vCPUs. Default 1 MiB. */
  ramBytes?: number;
  /** Guest physical address size in bits (KVM_VM_TYPE_ARM_IPA_SIZE). Default 40, KVM's default. */
  ipaBits?: number;
  /** 'fine' (2016+ kernel) or 'global' (2014 kernel's single distributor lock). Default 'fine'. */
  locking?: LockingMode;
  /**
   * LR overflow handling: 'mainline' (default, the kernel since the 2025 rework) or 'classic'
   * (the ~6.1-6.6 algorithm, whose guests cannot nest deeper than the LR count).
   */
  lrPolicy?: LrPolicy;
  /** Lock-order checking (lockdep). Default: on when VGIC_EMU_LOCKDEP=1 (tests), else off. */
  lockdep?: boolean;
  /** Lock statistics: 'off', 'counts' (default), or 'timed' (adds wait/hold time). */
  lockStats?: LockStatsMode;
  /** Bug seeds to switch on (see BUG in vgic/bugs.ts). */
  bugs?: readonly string[];
  /** Stress runs: history recording and chaos/controlled scheduling for every thread. */
  stress?: StressThreadConfig;
  /**
   * irq bypass forwarding: when an irqfd shares its eventfd with a VFIO device's trigger, forward
   * the device's line to the irqfd's SPI automatically (the 2015 proposal). Default false, as in
   * the kernel, whose arm64 code never forwards SPIs.
   */
  irqBypass?: boolean;
}

export interface LockClassStats {
  name: string;
  acquisitions: number;
  contentions: number;
  waitNs: number;
  holdNs: number;
}

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
export function createVm(options: VmOptions = {}): Vm {
  return new Vm(options);
}

const TEARDOWN_GRACE_MS = 3000;

export class Vm {
  readonly options: Readonly<Required<Omit<VmOptions, 'bugs' | 'stress'>>> & { bugs: readonly string[] };
  private kvmVfio: KvmVfioDevice | null = null;
  private readonly stress: StressThreadConfig | null;
  /** @internal the main thread's view of the shared state */
  readonly host: Host;
  readonly geometry: VmGeometry;
  private readonly buffers: VmBuffers;
  private readonly cfg: SharedVmConfig;
  private readonly vcpuList: Vcpu[] = [];
  private vgic: VgicDevice | null = null;
  private destroyed = false;
  private readonly irqfdTable: Irqfds;
  /** What destroy() tore down, in order (spec §11: irqfds before the vgic). */
  readonly teardownLog: string[] = [];
  private readonly teardownHooks: { name: string; fn: () => Promise<void> }[] = [];

  constructor(o: VmOptions) {
    const nrLr = o.nrLr ?? 4;
    if (!Number.isInteger(nrLr) || nrLr < 1 || nrLr > MAX_LRS) throw new KvmError('EINVAL', `nrLr must be 1..${MAX_LRS}`);
    const maxVcpus = o.maxVcpus ?? 8;
    if (!Number.isInteger(maxVcpus) || maxVcpus < 1 || maxVcpus > 64) throw new KvmError('EINVAL', 'maxVcpus must be 1..64');
    const ipaBits = o.ipaBits ?? KVM_PHYS_SHIFT_DEFAULT;
    if (!Number.isInteger(ipaBits) || ipaBits < 32 || ipaBits > 52) throw new KvmError('EINVAL', 'ipaBits must be 32..52');
    const ramBytes = o.ramBytes ?? 1 << 20;
    if (!Number.isInteger(ramBytes) || ramBytes < 4096 || ramBytes % 4096) throw new KvmError('EINVAL', 'ramBytes must be a positive multiple of 4096');
    const locking = o.locking ?? 'fine';
    if (locking !== 'fine' && locking !== 'global') throw new KvmError('EINVAL', "locking must be 'fine' or 'global'");
    const lrPolicy = o.lrPolicy ?? 'mainline';
    if (lrPolicy !== 'mainline' && lrPolicy !== 'classic') throw new KvmError('EINVAL', "lrPolicy must be 'mainline' or 'classic'");
    const lockdep = o.lockdep ?? process.env.VGIC_EMU_LOCKDEP === '1';
    const lockStats = o.lockStats ?? 'counts';
    const bugs = o.bugs ?? [];
    const irqBypass = o.irqBypass ?? false;
    this.options = { maxVcpus, nrLr, ramBytes, ipaBits, locking, lrPolicy, lockdep, lockStats, bugs, irqBypass };
    this.cfg = { maxVcpus, nrLr, ramBytes, ipaBits, locking, lrPolicy, lockdep, lockStats, bugs: bugMask(bugs) };
    this.geometry = computeGeometry(this.cfg);
    this.buffers = allocateBuffers(this.geometry);
    this.stress = o.stress ?? null;
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
    // This VM's identity as an eventfd wake-up owner (eventfd/wakeup.ts), > 0.
    m[dw(this.host, 'vmToken')] = randomInt(1, 0x7fff_ffff);
    this.irqfdTable = new Irqfds(this.host, {
      spawnInjector: (port) => this.spawnInjector(port),
      bypassConsumer: (token, gsi) => this.bypassConsumer?.(token, gsi) ?? null,
    });
    installVmWakeups(this.host, null, (slot, gen) => this.irqfdTable.hangup(slot, gen));
    if (irqBypass) this.bypassConsumer = (token, gsi) => forwardingConsumer(this.host, token, gsi);
  }

  /** The irq-bypass consumer made for each new irqfd (vfio/bypass-consumer.ts), when enabled. */
  private bypassConsumer: ((token: string, gsi: number) => IrqBypassConsumer) | null = null;

  private spawnInjector(port: MessagePort): Worker {
    return new Worker(distPath('workers/irqfd-injector.js'), {
      workerData: { buffers: this.buffers, cfg: this.cfg, history: this.stress?.history ?? null, port },
      transferList: [port],
    });
  }

  /**
   * KVM_IRQFD (spec §8.3): assign `fd` to raise SPI `gsi + 32`, with KVM_IRQFD_FLAG_RESAMPLE a
   * `resamplefd` signalled at each EOI of that (level) SPI, or with KVM_IRQFD_FLAG_DEASSIGN remove
   * it and wait until nothing can inject for it any more.
   */
  irqfd(a: KvmIrqfd): void {
    this.checkAlive();
    this.irqfdTable.ioctl(a);
  }

  /**
   * KVM_SIGNAL_MSI (spec §8.7): deliver an MSI through the ITS whose doorbell `addressHi:addressLo`
   * is. Returns 1 when delivered, 0 when the ITS dropped it (unmapped device, event or
   * collection). EINVAL without an in-kernel vgic, for unknown flags, a doorbell that is no ITS or
   * a missing KVM_MSI_VALID_DEVID; ENODEV without an ITS; EBUSY while the ITS (or the target's
   * LPIs) are disabled.
   */
  signalMsi(msi: KvmMsi): number {
    this.checkAlive();
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
    this.checkAlive();
    setGsiRouting(this.host, entries);
  }

  /** The irqfds now assigned, with their delivery counters. */
  irqfds(): IrqfdInfo[] {
    return this.irqfdTable.list();
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

  get vcpus(): readonly Vcpu[] {
    return this.vcpuList;
  }

  private checkAlive(): void {
    if (this.destroyed) kvmErr('EIO', 'VM destroyed');
    if (Atomics.load(this.host.m, dw(this.host, 'dead'))) kvmErr('EIO', 'VM is dead');
  }

  /** KVM_CREATE_DEVICE. `test` probes only whether the type exists (KVM_CREATE_DEVICE_TEST). */
  createDevice(type: number, opts: { test?: boolean } = {}): KvmDevice {
    this.checkAlive();
    if (type === KVM_DEV_TYPE_VFIO) {
      if (opts.test) return new KvmVfioDevice(this.host);
      // kvm_vfio_create: one KVM VFIO device per VM.
      if (this.kvmVfio) kvmErr('EBUSY', 'this VM already has a KVM VFIO device');
      this.kvmVfio = new KvmVfioDevice(this.host);
      return this.kvmVfio;
    }
    if (type === KVM_DEV_TYPE_ARM_VGIC_ITS) {
      if (opts.test) return new ItsDevice(this.host, -1, this.options.ipaBits);
      lockKvm(this.host);
      try {
        const i = withConfigLock(this.host, () => itsCreate(this.host));
        return new ItsDevice(this.host, i, this.options.ipaBits);
      } finally {
        unlockKvm(this.host);
      }
    }
    if (type !== KVM_DEV_TYPE_ARM_VGIC_V2 && type !== KVM_DEV_TYPE_ARM_VGIC_V3) kvmErr('ENODEV', `device type ${type} is not supported`);
    if (opts.test) return new VgicDevice(this.host, type, this.options.ipaBits);
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
   * KVM_CREATE_VCPU. vCPU ids are created in order 0, 1, 2 … (vgic-emu indexes its per-vCPU memory
   * by id). Spec §7.3: EBUSY once the vgic is initialised; EINVAL beyond the vgic's vCPU limit.
   */
  createVcpu(id: number, opts: VcpuOptions = {}): Vcpu {
    this.checkAlive();
    const h = this.host;
    const m = h.m;
    lockKvm(h);
    try {
      if (Atomics.load(m, dw(h, 'initialized'))) kvmErr('EBUSY', 'vgic already initialised: no new vCPUs');
      if (!Number.isInteger(id) || id < 0) kvmErr('EINVAL', `bad vCPU id ${id}`);
      if (m[dw(h, 'inKernel')] && id >= vgicMaxVcpus(h)) kvmErr('EINVAL', `vCPU id ${id} beyond the vgic's limit`);
      if (id >= this.options.maxVcpus) kvmErr('EINVAL', `vCPU id ${id} >= maxVcpus (${this.options.maxVcpus})`);
      const online = m[dw(h, 'onlineVcpus')]!;
      if (id < online) kvmErr('EEXIST', `vCPU ${id} exists`);
      if (id !== online) kvmErr('EINVAL', `vCPU ids must be created in order: next is ${online}`);
      m[dw(h, 'createdVcpus')] = online + 1;
      const vb = vcpuOff(this.geometry, id);
      m.fill(0, vb, vb + VCPU.size);
      m[vb + VCPU.off.apHead] = -1;
      m[vb + VCPU.off.apTail] = -1;
      m[vb + VCPU.off.rdRegion] = -1;
      h.f[(vb + VCPU.off.rdBase) / 2] = -1;
      // KVM's reset MPIDR: Aff0 = id[3:0], Aff1 = id[11:4], Aff2 = id[19:12].
      m[vb + VCPU.off.mpidr] = (id & 0xf) | (((id >> 4) & 0xff) << 8) | (((id >> 12) & 0xff) << 16);
      m[vb + VCPU.off.nrLr] = this.options.nrLr;
      m[vb + VCPU.off.created] = 1;
      try {
        if (m[dw(h, 'inKernel')]) {
          withConfigLock(h, () => {
            Atomics.store(m, dw(h, 'onlineVcpus'), online + 1);
            try {
              initPrivateIrqs(h, id);
              resetCpuInterface(h, id);
              if (m[dw(h, 'model')] === 3) placeRedist(h, id);
            } catch (e) {
              Atomics.store(m, dw(h, 'onlineVcpus'), online);
              throw e;
            }
          });
        } else Atomics.store(m, dw(h, 'onlineVcpus'), online + 1);
      } catch (e) {
        m[dw(h, 'createdVcpus')] = online;
        m[vb + VCPU.off.created] = 0;
        throw e;
      }
    } finally {
      unlockKvm(h);
    }
    const fdPort = this.irqfdTable.fds.newPort();
    const v = new Vcpu(h, id, { buffers: this.buffers, cfg: this.cfg, vcpu: id, stress: this.stress, fdPort }, opts, () => this.stopAll(), [fdPort]);
    this.vcpuList.push(v);
    return v;
  }

  /**
   * KVM_IRQ_LINE (spec §8.1). `irq` is the uapi field: vcpu2_index[31:28] | type[27:24] |
   * vcpu_index[23:16] | number[15:0] (see kvmIrqLineField).
   */
  irqLine(irq: number, level: boolean | number): void {
    this.checkAlive();
    kvmIrqLine(this.host, irq, level);
  }

  /**
   * Run every vCPU until its guest returns. If one fails, the others are stopped and the first
   * error is thrown (GuestFault, KvmError or LockOrderError, each with the vCPU id).
   */
  async run(): Promise<VcpuRunResult[]> {
    this.checkAlive();
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
      throw order.find((e) => !(e instanceof KvmError && e.errno === 'EIO')) ?? order[0];
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
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
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

  /** Lock statistics per class, summed over all threads. */
  lockStats(): LockClassStats[] {
    const st = new Float64Array(this.buffers.stats);
    const out: LockClassStats[] = [];
    for (let c = 0; c < NR_LOCK_CLASSES; c++) {
      const row: LockClassStats = { name: LOCK_CLASSES[c]!.name, acquisitions: 0, contentions: 0, waitNs: 0, holdNs: 0 };
      for (let s = 0; s < this.geometry.threadSlots; s++) {
        const base = s * NR_LOCK_CLASSES * LOCK_STAT_WIDTH + c * LOCK_STAT_WIDTH;
        LOCK_STAT_FIELDS.forEach((f, i) => (row[f] += st[base + i]!));
      }
      out.push(row);
    }
    return out;
  }
}
