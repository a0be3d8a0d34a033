/**
 * The per-thread view of one VM's vgic: the shared buffers as typed arrays, the geometry, and this
 * thread's lock context. Host code (injection, MMIO emulation, the run loop) takes a Host as its
 * first argument, like the kernel's functions take `struct kvm *`.
 */
import { DIST } from '../shm/layouts.js';
import type { VmBuffers, VmGeometry } from '../shm/vm-memory.js';
import type { LockStatsMode, SyncThread } from '../sync/thread.js';
import { makeSyncThread, statsBaseOf } from '../sync/thread.js';
import { setVcpuSlotCount } from '../sync/lock.js';
import { HistoryWriter, type HistoryBuffers } from '../record/history.js';
import { checkedViews } from '../check/lockset/index.js';

export type LockingMode = 'fine' | 'global';

/**
 * How the ap_list is fed through the list registers when it does not fit. 'mainline' is the
 * kernel since the 2025 LR-overflow rework (pending first, NPIE/LRENPIE/UIE, EOIcount walked, DIR
 * trapped while actives live outside the LRs); 'classic' is the ~6.1-6.6 algorithm (actives first,
 * UIE only), kept for studies: a guest cannot nest deeper than the LR count under it.
 */
export type LrPolicy = 'mainline' | 'classic';

/** Options every thread of a VM must agree on (passed to workers verbatim). */
export interface SharedVmConfig {
  readonly maxVcpus: number;
  readonly nrLr: number;
  readonly ramBytes: number;
  readonly ipaBits: number;
  readonly locking: LockingMode;
  readonly lockdep: boolean;
  readonly lockStats: LockStatsMode;
  readonly lrPolicy: LrPolicy;
  /** Bitmask of enabled bug seeds (stress testing); 0 in a correct model. */
  readonly bugs: number;
  /** Lockset checking of every shared-state access (check/lockset); off when absent. */
  readonly checkAccess?: boolean;
}

export interface Host {
  readonly g: VmGeometry;
  readonly cfg: SharedVmConfig;
  readonly buf: VmBuffers;
  readonly m: Int32Array;
  readonly f: Float64Array;
  readonly ram: Uint8Array;
  readonly ramView: DataView;
  readonly t: SyncThread;
  readonly global: boolean;
  /** lrPolicy === 'classic', as a flag for the world-switch paths. */
  readonly classicLr: boolean;
  /** vCPU id when this thread is a vCPU thread, else -1. */
  readonly selfVcpu: number;
  readonly bugs: number;
  /** Called on the vCPU thread at fold when a level SPI's EOI maintenance fires (ack notifier). */
  onAckedSpi: ((pin: number) => void) | null;
  /** This thread's history ring writer, when the VM records history (stress runs). */
  readonly hist: HistoryWriter | null;
}

export function makeHost(g: VmGeometry, cfg: SharedVmConfig, buf: VmBuffers, slot: number, name: string, selfVcpu: number, history: HistoryBuffers | null = null): Host {
  const m = new Int32Array(buf.state);
  const stats = new Float64Array(buf.stats);
  setVcpuSlotCount(cfg.maxVcpus);
  const t: SyncThread = makeSyncThread({
    m,
    stats,
    slot,
    name,
    statsBase: statsBaseOf(slot, cfg.lockStats),
    statsMode: cfg.lockStats,
    stopWord: g.distBase + DIST.off.stop,
    waitingOnWord: g.distBase + DIST.off.waitingOn + slot,
    edgeBase: g.edgeBase,
    lockdep: cfg.lockdep,
  });
  const f = new Float64Array(buf.state);
  // Checking mode: h.m / h.f are checked views; the locks (t.m) keep the raw array.
  const views = cfg.checkAccess && buf.access ? checkedViews(g, cfg, buf.access, t, selfVcpu, m, f) : null;
  return {
    g,
    cfg,
    buf,
    m: views ? views.m : m,
    f: views ? views.f : f,
    ram: new Uint8Array(buf.ram),
    ramView: new DataView(buf.ram),
    t,
    global: cfg.locking === 'global',
    classicLr: cfg.lrPolicy === 'classic',
    selfVcpu,
    bugs: cfg.bugs,
    onAckedSpi: null,
    hist: history ? new HistoryWriter(history, slot) : null,
  };
}

/** Index of a DIST field (cold paths). */
export function dw(h: Host, field: keyof typeof DIST.off): number {
  return h.g.distBase + DIST.off[field];
}

/**
 * DIST field indices for hot paths: the distributor block sits at word 0 of the state buffer
 * (computeGeometry), so `h.m[D.enabled]` is the field, with no per-call keyed lookup.
 */
export const D = DIST.off;
