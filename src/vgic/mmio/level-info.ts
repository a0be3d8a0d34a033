/**
 * KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO (GICv3; spec §7.4, kernel vgic_v3_line_level_info_uaccess):
 * 32 input line levels starting at a multiple of 32, private ones being vCPU v's. Userspace
 * saves/restores line levels here, separately from the pending latch (ISPENDR), because a level
 * interrupt's pending state is latch OR line and must not be restored as a latch.
 */
import { traceLine } from '../trace.js';
import { VGIC_NR_PRIVATE_IRQS, VGIC_NR_SGIS } from '../../uapi/kvm.js';
import { kvmErr } from '../../uapi/errno.js';
import { IRQ } from '../../shm/layouts.js';
import { irqOff } from '../../shm/vm-memory.js';
import type { Host } from '../host.js';
import { D } from '../host.js';
import { LEVEL } from '../irq.js';
import { lockIrq, unlockIrq } from '../locks.js';
import { queueIrqUnlock } from '../queue.js';
import { LockSite } from '../../sync/lock-sites.js';

function rec(h: Host, v: number, intid: number): number {
  return intid < VGIC_NR_PRIVATE_IRQS ? v * 32 + intid : h.g.spiRecordBase + intid - VGIC_NR_PRIVATE_IRQS;
}

/**
 * Get or set the line levels of INTIDs intidBase..intidBase+31. SGIs (no input line) and INTIDs
 * beyond the configured ones are RAZ/WI. A get reports only level-configured interrupts (an edge
 * interrupt's line is meaningless). A set writes the line whatever the configuration, so the VMM
 * need not restore ICFGR first; raising a line queues the interrupt.
 */
export function levelInfoUaccess(h: Host, v: number, intidBase: number, isWrite: boolean, value: number): number {
  if (intidBase % 32 !== 0) kvmErr('EINVAL', `LEVEL_INFO vINTID ${intidBase} is not a multiple of 32`);
  const m = h.m;
  const nrIrqs = m[D.nrSpis]! + 32;
  let out = 0;
  for (let i = 0; i < 32; i++) {
    const intid = intidBase + i;
    if (intid < VGIC_NR_SGIS || intid >= nrIrqs) continue;
    const r = rec(h, v, intid);
    const b = irqOff(h.g, r);
    lockIrq(h, r, LockSite.Userspace);
    if (!isWrite) {
      if (m[b + IRQ.off.config] === LEVEL && m[b + IRQ.off.lineLevel] !== 0) out |= 1 << i;
      unlockIrq(h, r);
      continue;
    }
    const level = (value >>> i) & 1;
    m[b + IRQ.off.lineLevel] = level;
    if (h.hist) traceLine(h, r, level);
    if (level) queueIrqUnlock(h, r);
    else unlockIrq(h, r);
  }
  return out >>> 0;
}
