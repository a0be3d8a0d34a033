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
    const r = readLockStats(this.src, o, this.baseline);
    if (o.reset) this.baseline = resetLockStats(this.src);
    return r;
  }
}
