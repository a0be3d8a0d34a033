/**
 * Interrupt records: lookup (vgic_get_irq) and the derived predicates of spec §1.2.
 * Record indices: private IRQs of vCPU v are v*32 + intid; SPIs follow at spiRecordBase, LPIs at
 * lpiRecordBase.
 */
import { accessRecycled } from '../check/lockset/index.js';
import { VGIC_NR_PRIVATE_IRQS, VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { IRQ, LPI_BASE, MAX_LPIS } from '../shm/layouts.js';
import { irqOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { D } from './host.js';

export const EDGE = 0;
export const LEVEL = 1;

/** Record index for (vcpu, intid), or -1 when no such interrupt exists (callers return EINVAL). */
export function irqRecord(h: Host, vcpu: number, intid: number): number {
  if (intid < VGIC_NR_PRIVATE_IRQS) {
    if (vcpu < 0 || intid < 0) return -1;
    return vcpu * 32 + intid;
  }
  if (intid < VGIC_NR_PRIVATE_IRQS + h.m[D.nrSpis]!) return h.g.spiRecordBase + intid - VGIC_NR_PRIVATE_IRQS;
  // LPIs: the record exists while referenced; callers hold a reference (an ap_list's, for LRs).
  if (intid >= LPI_BASE && intid < LPI_BASE + MAX_LPIS) return h.g.lpiRecordBase + intid - LPI_BASE;
  return -1;
}

/** INTID of record r (stored in the record at init; computed here for speed). */
export function recordIntid(h: Host, r: number): number {
  if (r >= h.g.lpiRecordBase) return r - h.g.lpiRecordBase + LPI_BASE;
  return r < h.g.spiRecordBase ? r & 31 : r - h.g.spiRecordBase + 32;
}

/** pending(irq): the latch for edge; latch OR line for level (spec §3.4). Caller holds irq_lock. */
export function irqIsPending(m: Int32Array, b: number): boolean {
  return m[b + IRQ.off.pendingLatch] !== 0 || (m[b + IRQ.off.config] === LEVEL && m[b + IRQ.off.lineLevel] !== 0);
}

export function isV2Sgi(h: Host, b: number): boolean {
  return h.m[D.model] === VGIC_MODEL_V2 && h.m[b + IRQ.off.intid]! < 16;
}

export function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** lr_count(irq) (spec §1.2): how many LRs the record wants. Caller holds irq_lock. */
export function irqLrCount(h: Host, b: number): number {
  const m = h.m;
  if (isV2Sgi(h, b) && m[b + IRQ.off.source] !== 0) return popcount(m[b + IRQ.off.source]!) + (m[b + IRQ.off.active] ? 1 : 0);
  return irqIsPending(m, b) || m[b + IRQ.off.active] ? 1 : 0;
}

/** Reset one record to the all-zero SPI default (spec §1.6), keeping its lock words. */
export function resetRecord(h: Host, r: number): void {
  const b = irqOff(h.g, r);
  const m = h.m;
  // vgic_init allocates and initialises these without their locks: not reachable yet.
  accessRecycled(h, b, IRQ.size);
  for (const f of IRQ.fields) {
    if (f.name === 'lock') continue;
    for (let i = 0; i < f.words; i++) m[b + f.offset + i] = 0;
  }
  m[b + IRQ.off.vcpu] = -1;
  m[b + IRQ.off.target] = -1;
  m[b + IRQ.off.next] = -1;
  m[b + IRQ.off.prev] = -1;
  m[b + IRQ.off.intid] = recordIntid(h, r);
}
