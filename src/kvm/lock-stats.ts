/**
 * vm.lockStats(): lock_stat for one VM (sync/lock-stat-read.ts over the VM's stats buffer), with
 * the VM's names for lock instances: which interrupt an irq_lock guards, which vCPU an
 * ap_list_lock belongs to.
 */
import { IRQ } from '../shm/layouts.js';
import { irqOff } from '../shm/vm-memory.js';
import { LockClass, lockClassName } from '../sync/lock-classes.js';
import { readLockStats, resetLockStats, type LockStatsOptions, type LockStatsReport, type LockStatsSource } from '../sync/lock-stat-read.js';
import type { Host } from '../vgic/host.js';
import { kvmErr } from '../uapi/errno.js';
import { describe } from './vm-options.js';

export function lockInstanceLabel(h: Host, cls: LockClass, sub: number): string {
  switch (cls) {
    case LockClass.IrqLock: {
      if (sub < 0 || sub >= h.g.nrRecords) return `record ${sub}`;
      const intid = h.m[irqOff(h.g, sub) + IRQ.off.intid]!;
      if (sub >= h.g.lpiRecordBase) return `LPI ${intid}`;
      if (sub >= h.g.spiRecordBase) return `SPI ${intid}`;
      const v = Math.floor(sub / 32);
      return `${intid < 16 ? 'SGI' : 'PPI'} ${intid} (vCPU ${v})`;
    }
    case LockClass.ApListLock:
    case LockClass.VcpuMutex:
      return `vCPU ${sub}`;
    case LockClass.ItsLock:
    case LockClass.ItsCmdLock:
      return `ITS ${sub}`;
    default:
      return lockClassName(cls);
  }
}

const OPTION_KEYS = ['reset', 'instances'];

function checkOptions(o: unknown): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) kvmErr('EINVAL', `lockStats: options must be an object ({ reset?, instances? }), got ${describe(o)}`);
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!OPTION_KEYS.includes(k)) kvmErr('EINVAL', `lockStats: unknown option '${k}' (known: ${OPTION_KEYS.join(', ')})`);
  if (r.reset !== undefined && typeof r.reset !== 'boolean') kvmErr('EINVAL', `lockStats: reset must be a boolean, got ${describe(r.reset)}`);
  const n = r.instances;
  if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_INSTANCES)) kvmErr('EINVAL', `lockStats: instances must be a whole number in 0..${MAX_INSTANCES}, got ${describe(n)}`);
}

/** Most instances per class one read reports (each thread tracks INST_SLOTS instances). */
export const MAX_INSTANCES = 1024;

/** Per-VM reader state: the baseline of the last reset. */
export class VmLockStats {
  private baseline: Float64Array | null = null;
  private readonly src: LockStatsSource;

  constructor(h: Host) {
    this.src = {
      stats: new Float64Array(h.buf.stats),
      threadSlots: h.g.threadSlots,
      mode: h.cfg.lockStats,
      label: (cls, sub) => lockInstanceLabel(h, cls, sub),
    };
  }

  read(o: LockStatsOptions = {}): LockStatsReport {
    checkOptions(o);
    const r = readLockStats(this.src, o, this.baseline);
    if (o.reset) this.baseline = resetLockStats(this.src);
    return r;
  }
}
