/**
 * Where everything of one VM lives. The geometry is a pure function of the VM options, so the main
 * thread and every worker compute the same offsets from the same options.
 *
 *  state SAB (Int32):  [ DIST | lockdep edges | VCPU x maxVcpus | IRQ x (32*maxVcpus + MAX_SPIS) ]
 *  stats SAB (Float64): lock statistics, per thread slot x lock class
 *  ram SAB:             guest RAM, shared by every vCPU
 *  userMmio SAB:        the default VMM MMIO register file
 */
import { NR_LOCK_CLASSES } from '../sync/lock-classes.js';
import { threadStatsSize } from '../sync/thread.js';
import { DIST, IRQ, MAX_THREAD_SLOTS, VCPU } from './layouts.js';

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
  readonly nrRecords: number;
  readonly stateWords: number;
  readonly threadSlots: number;
  readonly statsWords: number;
}

export function computeGeometry(o: { maxVcpus: number; nrLr: number; ramBytes: number }): VmGeometry {
  const distBase = 0; // hot paths index DIST fields directly (vgic/host.ts `D`)
  const edgeBase = distBase + DIST.size;
  const vcpuBase = edgeBase + ((NR_LOCK_CLASSES * NR_LOCK_CLASSES + 1) & ~1);
  const irqBase = vcpuBase + o.maxVcpus * VCPU.size;
  const spiRecordBase = o.maxVcpus * 32;
  const nrRecords = spiRecordBase + MAX_SPIS;
  const stateWords = irqBase + nrRecords * IRQ.size;
  const threadSlots = Math.min(MAX_THREAD_SLOTS, 1 + o.maxVcpus + 8);
  return {
    maxVcpus: o.maxVcpus,
    nrLr: o.nrLr,
    ramBytes: o.ramBytes,
    distBase,
    edgeBase,
    vcpuBase,
    irqBase,
    spiRecordBase,
    nrRecords,
    stateWords,
    threadSlots,
    statsWords: threadSlots * threadStatsSize(),
  };
}

export interface VmBuffers {
  readonly state: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly ram: SharedArrayBuffer;
  /** The default KVM_EXIT_MMIO handler's register file (kvm/user-mmio.ts). */
  readonly userMmio: SharedArrayBuffer;
}

export const USER_MMIO_SLOTS = 4096;

export function allocateBuffers(g: VmGeometry): VmBuffers {
  return {
    state: new SharedArrayBuffer(g.stateWords * 4),
    stats: new SharedArrayBuffer(g.statsWords * 8),
    ram: new SharedArrayBuffer(g.ramBytes),
    userMmio: new SharedArrayBuffer(USER_MMIO_SLOTS * 4 * 4),
  };
}

/** Index of the first word of vCPU `id`'s record. */
export function vcpuOff(g: VmGeometry, id: number): number {
  return g.vcpuBase + id * VCPU.size;
}

/** Index of the first word of interrupt record `r`. */
export function irqOff(g: VmGeometry, r: number): number {
  return g.irqBase + r * IRQ.size;
}
