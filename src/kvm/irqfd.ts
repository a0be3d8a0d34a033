/**
 * KVM_IRQFD on the VMM's thread (kernel virt/kvm/eventfd.c kvm_irqfd, spec §8.3, §8.6): assign,
 * deassign, the per-GSI resamplers, POLLHUP, and release at VM teardown. The data paths are in
 * irqfd-path.ts; the table itself is shared memory (shm IRQFD), so every thread sees the same
 * irqfds.
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import { EFD_SEMAPHORE, EventFd } from '../eventfd/eventfd.js';
import { IRQFD, IRQFD_ACTIVE, IRQFD_FREE, IRQFD_HUP, IRQFD_SHUTDOWN, NR_IRQFDS } from '../shm/layouts.js';
import { irqfdOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { setGsi } from '../vgic/irq-routing.js';
import { kvmErr } from '../uapi/errno.js';
import { FdChannel } from './fd-channel.js';
import { GEN_MASK, makeCookie, WAKE_IRQFD } from './wake-cookie.js';
import { irqBypass, type IrqBypassConsumer } from './irq-bypass.js';
import { handToInjector } from './irqfd-path.js';
import { KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE } from '../uapi/kvm.js';

/** struct kvm_irqfd. */
export interface KvmIrqfd {
  /** The eventfd whose signals raise the GSI. */
  fd: EventFd;
  /** GSI: SPI INTID - 32 (the default arm routing). */
  gsi: number;
  /** KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE. */
  flags?: number;
  /** With KVM_IRQFD_FLAG_RESAMPLE: signalled when the guest EOIs the (level) SPI. */
  resamplefd?: EventFd;
}

export interface IrqfdInfo {
  slot: number;
  gsi: number;
  resample: boolean;
  /** The eventfd's identity token (EventFd.token). */
  token: string;
  consumed: number;
  fastInjections: number;
  slowInjections: number;
  dropped: number;
  resamples: number;
}

/** What the irqfd layer needs from the VM: its injector worker and a consumer for irq bypass. */
export interface IrqfdHooks {
  spawnInjector(port: MessagePort): Worker;
  /** The irq-bypass consumer for an irqfd (kvm_arch_irq_bypass_add_producer & co), or null. */
  bypassConsumer(token: string, gsi: number): IrqBypassConsumer | null;
}

interface Slot {
  gen: number;
  fd: EventFd;
  resamplefd: EventFd | null;
  gsi: number;
  consumer: IrqBypassConsumer | null;
}

const SHUTDOWN_TIMEOUT_MS = 5000;
const SHUTDOWN_SLICE_MS = 20;

export class Irqfds {
  private readonly slots: (Slot | null)[] = new Array<Slot | null>(NR_IRQFDS).fill(null);
  /** Ports to the vCPU workers (resamplefds) and the injector (trigger eventfds). */
  readonly fds = new FdChannel();
  private injector: Worker | null = null;
  private injectorError: Error | null = null;

  constructor(private readonly h: Host, private readonly hooks: IrqfdHooks) {}

  /** KVM_IRQFD. */
  ioctl(a: KvmIrqfd): void {
    const flags = a.flags ?? 0;
    if (!Number.isInteger(flags) || (flags & ~(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE)) !== 0) kvmErr('EINVAL', `KVM_IRQFD: unknown flags ${flags}`);
    // kvm_irqfd / kvm_irqfd_assign check the flags, the vgic stage and the eventfds, never the
    // GSI: any u32 is assigned. One with no route (past the routing table, or past the SPIs of
    // the default table) resolves to no delivery, so its signals are counted as dropped.
    if (!Number.isInteger(a.gsi) || a.gsi < 0 || a.gsi > 0xffff_ffff) kvmErr('EINVAL', `KVM_IRQFD: gsi ${a.gsi} is not a u32`);
    this.reapHangups();
    if (flags & KVM_IRQFD_FLAG_DEASSIGN) return this.deassign(a);
    this.assign(a, (flags & KVM_IRQFD_FLAG_RESAMPLE) !== 0);
  }

  private assign(a: KvmIrqfd, resample: boolean): void {
    const h = this.h;
    const m = h.m;
    // kvm_arch_intc_initialized: irqfds can only be wired to an initialised vgic (the reason
    // for CTRL_INIT: QEMU wires VFIO irqfds before the first KVM_RUN).
    if (!Atomics.load(m, D.initialized)) kvmErr('EAGAIN', 'KVM_IRQFD: the vgic is not initialised yet (KVM_DEV_ARM_VGIC_CTRL_INIT first)');
    const fd = openEventFd(a.fd, 'fd');
    const rfd = resample ? openEventFd(a.resamplefd, 'resamplefd') : null;
    const slot = this.slots.indexOf(null);
    if (slot < 0) kvmErr('ENOMEM', `KVM_IRQFD: all ${NR_IRQFDS} irqfds are in use`);
    const e = irqfdOff(h.g, slot);
    const gen = (Atomics.load(m, e + IRQFD.off.gen) + 1) & GEN_MASK;
    // The eventfd's wait queue takes one irqfd: binding it is also the duplicate check (KVM:
    // -EBUSY for an eventfd already used by an irqfd of this VM).
    if (!fd.bindWakeup(m[D.vmToken]!, makeCookie(WAKE_IRQFD, gen, slot))) kvmErr('EBUSY', 'KVM_IRQFD: this eventfd is already bound to an irqfd (or another wake-up callback)');
    m[e + IRQFD.off.gsi] = a.gsi;
    m[e + IRQFD.off.resample] = resample ? 1 : 0;
    for (const f of ['consumed', 'fastInjections', 'slowInjections', 'dropped', 'resamples'] as const) Atomics.store(m, e + IRQFD.off[f], 0);
    // The generation before the message: a running injector that sees the message must find the
    // new generation, or its poller takes the slot for reassigned and quits ("lost work item").
    Atomics.store(m, e + IRQFD.off.gen, gen);
    this.startInjector();
    // Threads must be able to find the eventfds before they can see the irqfd (fd-channel.ts).
    this.fds.publish({ slot, gen, fd: fd.share(), resamplefd: rfd ? rfd.share() : null });
    if (resample) Atomics.add(m, D.irqfdResamplers, 1);
    if (slot >= Atomics.load(m, D.irqfdHiwater)) Atomics.store(m, D.irqfdHiwater, slot + 1);
    // Publication: from here the fast path, the injector and the resampler act on it.
    Atomics.store(m, e + IRQFD.off.state, IRQFD_ACTIVE);
    // A count already there (signalled before the assign, or while it was under way: the fast
    // path leaves counts to a not-yet-active irqfd) goes to the work item, as kvm_irqfd_assign
    // schedules the inject work when the eventfd is already readable. The load comes after the
    // ACTIVE store, so a signal either sees ACTIVE or its count is seen here (SC Dekker pair).
    const pending = fd.value;
    if (pending !== 0n) handToInjector(h, fd, fd.flags & EFD_SEMAPHORE ? Number(pending > 0x3fffffffn ? 0x3fffffffn : pending) : 1);
    const s: Slot = { gen, fd, resamplefd: rfd, gsi: a.gsi, consumer: null };
    this.slots[slot] = s;
    // irq bypass: a failure to connect is not an irqfd failure (spec §8.3: only logged).
    const consumer = this.hooks.bypassConsumer(fd.token, a.gsi);
    if (consumer) {
      try {
        irqBypass.registerConsumer(consumer);
        s.consumer = consumer;
      } catch {
        // delivery stays on the software path
      }
    }
  }

  /** KVM_IRQFD_FLAG_DEASSIGN: every irqfd on (fd, gsi). No match is not an error. */
  private deassign(a: KvmIrqfd): void {
    if (!EventFd.is(a.fd)) kvmErr('EBADF', 'KVM_IRQFD: fd is not an eventfd');
    const token = a.fd.token;
    this.slots.forEach((s, i) => {
      if (s && s.gsi === a.gsi && s.fd.token === token) this.shutdown(i);
    });
  }

  /**
   * irqfd_shutdown (spec §8.6): stop new wake-ups, wait for in-flight injections and resamples,
   * then the resampler, the bypass consumer, the slot. When it returns nothing can inject for it.
   */
  private shutdown(slot: number): void {
    const s = this.slots[slot]!;
    const h = this.h;
    const m = h.m;
    const e = irqfdOff(h.g, slot);
    // State first, then the inflight check (irqfd-path.ts irqfdEnter is the other half).
    Atomics.store(m, e + IRQFD.off.state, IRQFD_SHUTDOWN);
    s.fd.unbindWakeup(m[D.vmToken]!);
    const deadline = performance.now() + SHUTDOWN_TIMEOUT_MS;
    for (let n = Atomics.load(m, e + IRQFD.off.inflight); n !== 0; n = Atomics.load(m, e + IRQFD.off.inflight)) {
      if (performance.now() > deadline) throw new Error(`irqfd ${slot} (gsi ${s.gsi}): ${n} injection(s) still in flight after ${SHUTDOWN_TIMEOUT_MS} ms`);
      Atomics.wait(m, e + IRQFD.off.inflight, n, SHUTDOWN_SLICE_MS);
    }
    if (s.resamplefd) {
      Atomics.sub(m, D.irqfdResamplers, 1);
      // Last resampler on this GSI: lower the line it may have left high (irqfd_resampler_shutdown).
      const others = this.slots.some((o, i) => o && i !== slot && o.resamplefd && o.gsi === s.gsi);
      if (!others && Atomics.load(m, D.initialized)) setGsi(h, s.gsi, false);
    }
    if (s.consumer) {
      try {
        irqBypass.unregisterConsumer(s.consumer);
      } catch {
        // Disconnecting cannot fail in the kernel (del_producer returns nothing): the shutdown
        // must complete whatever a consumer callback did.
      }
    }
    this.slots[slot] = null;
    Atomics.store(m, e + IRQFD.off.state, IRQFD_FREE);
  }

  /** POLLHUP seen on the VMM thread: shut it down now. */
  hangup(slot: number, gen: number): void {
    const s = this.slots[slot];
    if (s && s.gen === gen) this.shutdown(slot);
  }

  /** POLLHUP seen by another thread marks the irqfd; the shutdown runs here, on the VMM thread. */
  private reapHangups(): void {
    const m = this.h.m;
    this.slots.forEach((s, i) => {
      if (s && Atomics.load(m, irqfdOff(this.h.g, i) + IRQFD.off.state) === IRQFD_HUP) this.shutdown(i);
    });
  }

  /** kvm_irqfd_release (VM teardown, spec §11.1): shut every irqfd down, then the injector. */
  async release(): Promise<void> {
    this.reapHangups();
    this.slots.forEach((s, i) => {
      if (s) this.shutdown(i);
    });
    const w = this.injector;
    this.injector = null;
    this.fds.close();
    if (w) await w.terminate();
  }

  /** The eventfds of the irqfds now assigned (trigger and resample), named for reports. */
  eventfds(): { name: string; fd: EventFd }[] {
    const out: { name: string; fd: EventFd }[] = [];
    this.slots.forEach((s, slot) => {
      if (!s) return;
      out.push({ name: `irqfd ${slot} (gsi ${s.gsi})`, fd: s.fd });
      if (s.resamplefd) out.push({ name: `resamplefd of irqfd ${slot} (gsi ${s.gsi})`, fd: s.resamplefd });
    });
    return out;
  }

  /** The irqfds now assigned, with their counters. */
  list(): IrqfdInfo[] {
    this.reapHangups();
    const m = this.h.m;
    const out: IrqfdInfo[] = [];
    this.slots.forEach((s, slot) => {
      if (!s) return;
      const e = irqfdOff(this.h.g, slot);
      const c = (f: keyof typeof IRQFD.off): number => Atomics.load(m, e + IRQFD.off[f]);
      out.push({
        slot, gsi: s.gsi, resample: s.resamplefd !== null, token: s.fd.token, consumed: c('consumed'),
        fastInjections: c('fastInjections'), slowInjections: c('slowInjections'), dropped: c('dropped'), resamples: c('resamples'),
      });
    });
    return out;
  }

  /** Set if the injector worker failed (it never should: a bug report, not a guest error). */
  get failure(): Error | null {
    return this.injectorError;
  }

  private startInjector(): void {
    if (this.injector) return;
    const w = this.hooks.spawnInjector(this.fds.newPort());
    w.on('error', (err) => {
      this.injectorError = err;
    });
    w.unref();
    this.injector = w;
  }
}

function openEventFd(fd: unknown, what: string): EventFd {
  if (!EventFd.is(fd)) kvmErr('EBADF', `KVM_IRQFD: ${what} is not an eventfd`);
  if (fd.closed) kvmErr('EBADF', `KVM_IRQFD: ${what} is closed`);
  return fd;
}
