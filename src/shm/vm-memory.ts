/**
 * Where everything of one VM lives. The geometry is a pure function of the VM options, so the main
 * thread and every worker compute the same offsets from the same options.
 *
 *  state SAB (Int32):  [ DIST | lockdep edges | VCPU x maxVcpus | IRQ x (32*maxVcpus + MAX_SPIS + MAX_LPIS)
 *                        | IRQFD x NR_IRQFDS | PHYS_IRQ x NR_PHYS_IRQS | ITS x MAX_ITS | ROUTE x NR_ROUTES ]
 *  stats SAB (Float64): lock statistics, per thread slot x lock class
 *  ram SAB:             guest RAM, shared by every vCPU
 *  userMmio SAB:        the default VMM MMIO register file
 */
import { NR_LOCK_CLASSES } from '../sync/lock-classes.js';
import { STATS_CLOCK_BASE, statsBufferSize, type LockStatsMode } from '../sync/thread.js';
import { accessBufferBytes } from '../check/lockset/reports.js';
import { DIST, IRQ, IRQFD, ITS, MAX_ITS, MAX_LPIS, MAX_THREAD_SLOTS, NR_IRQFDS, NR_PHYS_IRQS, NR_ROUTES, PHYS_IRQ, ROUTE, VCPU } from './layouts.js';

/** INTIDs 32..1019: the most SPIs any configuration can have. */
export const MAX_SPIS = 1020 - 32;

export interface VmGeometry {
  readonly maxVcpus: number;
  readonly nrLr: number;
  readonly ramBytes: number;
  readonly distBase: number;
  readonly edgeBase: number;
  readonly vcpuBase: number;
  readonly irqBase: number;
  readonly spiRecordBase: number;
  /** Record of LPI INTID LPI_BASE + k: lpiRecordBase + k. */
  readonly lpiRecordBase: number;
  readonly nrRecords: number;
  readonly irqfdBase: number;
  readonly physBase: number;
  readonly itsBase: number;
  readonly routeBase: number;
  readonly stateWords: number;
  readonly threadSlots: number;
  readonly statsWords: number;
}

export function computeGeometry(o: { maxVcpus: number; nrLr: number; ramBytes: number; lockStats?: LockStatsMode }): VmGeometry {
  const distBase = 0; // hot paths index DIST fields directly (vgic/host.ts `D`)
  const edgeBase = distBase + DIST.size;
  const vcpuBase = edgeBase + ((NR_LOCK_CLASSES * NR_LOCK_CLASSES + 1) & ~1);
  const irqBase = vcpuBase + o.maxVcpus * VCPU.size;
  const spiRecordBase = o.maxVcpus * 32;
  const lpiRecordBase = spiRecordBase + MAX_SPIS;
  const nrRecords = lpiRecordBase + MAX_LPIS;
  const irqfdBase = irqBase + nrRecords * IRQ.size;
  const physBase = irqfdBase + NR_IRQFDS * IRQFD.size;
  const itsBase = physBase + NR_PHYS_IRQS * PHYS_IRQ.size;
  const routeBase = itsBase + MAX_ITS * ITS.size;
  const stateWords = routeBase + NR_ROUTES * ROUTE.size;
  const threadSlots = Math.min(MAX_THREAD_SLOTS, 1 + o.maxVcpus + EXTRA_THREAD_SLOTS);
  return {
    maxVcpus: o.maxVcpus,
    nrLr: o.nrLr,
    ramBytes: o.ramBytes,
    distBase,
    edgeBase,
    vcpuBase,
    irqBase,
    spiRecordBase,
    lpiRecordBase,
    nrRecords,
    irqfdBase,
    physBase,
    itsBase,
    routeBase,
    stateWords,
    threadSlots,
    statsWords: statsBufferSize(threadSlots, o.lockStats),
  };
}

export interface VmBuffers {
  readonly state: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly ram: SharedArrayBuffer;
  /** The default KVM_EXIT_MMIO handler's register file (kvm/user-mmio.ts). */
  readonly userMmio: SharedArrayBuffer;
  /** Checking mode (VmOptions.checkAccess): Eraser state and lockset reports (check/lockset). */
  readonly access?: SharedArrayBuffer;
}

/**
 * Distinct addresses the default KVM_EXIT_MMIO register file holds (1 MiB of table): far more
 * registers than a VMM's devices have; past it an access fails with ENOSPC naming the limit.
 */
export const USER_MMIO_SLOTS = 65536;

export function allocateBuffers(g: VmGeometry, checkAccess = false): VmBuffers {
  const stats = new SharedArrayBuffer(g.statsWords * 8);
  // The clock every thread's lock trace is expressed on (each thread has its own timeOrigin).
  new Float64Array(stats)[STATS_CLOCK_BASE] = performance.timeOrigin;
  return {
    ...(checkAccess ? { access: new SharedArrayBuffer(accessBufferBytes(g)) } : {}),
    state: new SharedArrayBuffer(g.stateWords * 4),
    stats,
    ram: new SharedArrayBuffer(g.ramBytes),
    userMmio: new SharedArrayBuffer(USER_MMIO_SLOTS * 4 * 4),
  };
}

/**
 * Thread slots beyond main (0) and the vCPUs (1..maxVcpus): the stress driver, the irqfd injector,
 * then device workers.
 */
export const EXTRA_THREAD_SLOTS = 12;
export function driverSlot(g: VmGeometry): number {
  return 1 + g.maxVcpus;
}
export function injectorSlot(g: VmGeometry): number {
  return 2 + g.maxVcpus;
}
/** Slot of device worker k, or -1 when the VM has no slot left for it. */
export function deviceSlot(g: VmGeometry, k: number): number {
  const s = 3 + g.maxVcpus + k;
  return s < g.threadSlots ? s : -1;
}

/** Index of the first word of irqfd slot i. */
export function irqfdOff(g: VmGeometry, i: number): number {
  return g.irqfdBase + i * IRQFD.size;
}

/** Index of the first word of ITS instance i. */
export function itsOff(g: VmGeometry, i: number): number {
  return g.itsBase + i * ITS.size;
}

/** Index of the first word of GSI routing entry i. */
export function routeOff(g: VmGeometry, i: number): number {
  return g.routeBase + i * ROUTE.size;
}

/** Index of the first word of physical line i. */
export function physOff(g: VmGeometry, i: number): number {
  return g.physBase + i * PHYS_IRQ.size;
}

/** Index of the first word of vCPU `id`'s record. */
export function vcpuOff(g: VmGeometry, id: number): number {
  return g.vcpuBase + id * VCPU.size;
}

/** Index of the first word of interrupt record `r`. */
export function irqOff(g: VmGeometry, r: number): number {
  return g.irqBase + r * IRQ.size;
}
