/**
 * Quiescence audit of the ap_lists and LRs: once every vCPU has made its final exit, what may
 * still sit on an ap_list or in an LR follows from the kernel's rules, not from taste:
 *  - every exit folds the LRs (spec §4.6): no vCPU has an LR in use and no record says it is in
 *    one;
 *  - every exit then prunes (spec §4.7), which keeps exactly the entries whose oracle (spec §3.5)
 *    is this vCPU: active ones, and enabled pending ones targeting it with the distributor on.
 *    Nothing else re-evaluates an entry (spec §3.8: ICENABLER, a retarget, ICPENDR do not
 *    dequeue), so an entry whose oracle is now another vCPU or none is legitimate only if its
 *    interrupt (or the distributor) changed after the holder's last prune; otherwise the prune
 *    left a disabled, no longer pending, retargeted or deactivated interrupt behind.
 * An LPI the ITS unmapped (DISCARD, MAPD V=0) keeps its pending state and its ap_list entry in
 * mainline (its_free_ite does not clear it): its oracle is still the vCPU, so it may remain; a
 * freed one may not, which the LPI refcount audit (audits.ts) reports.
 *
 * `VCPU.prunedAt` is the history seq when the vCPU's last fold and prune began (kvm/vcpu-runner.ts):
 * a change recorded from then on may have come after the prune looked at the entry.
 */
import { EventKind, type HistoryEvent } from '../record/events.js';
import { IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { D } from '../vgic/host.js';
import { oracle } from '../vgic/queue.js';
import { VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';

/** The seq of the last event that can change the oracle of (intid, owner vCPU), and of the distributor. */
function lastChanges(events: readonly HistoryEvent[]): { irq: Map<string, number>; dist: number } {
  const irq = new Map<string, number>();
  let dist = -1;
  for (const e of events) {
    if (e.kind === EventKind.QUIESCE) break;
    if (e.kind === EventKind.DIST) dist = e.seq;
    else if (e.intid >= 0) irq.set(e.intid < VGIC_NR_PRIVATE_IRQS ? `${e.intid}@${e.vcpu}` : `${e.intid}`, e.seq);
  }
  return { irq, dist };
}

export function apListAudit(h: Host, online: number, events: readonly HistoryEvent[]): string[] {
  const m = h.m;
  const g = h.g;
  const out: string[] = [];
  const changes = lastChanges(events);
  for (let v = 0; v < online; v++) {
    const vb = vcpuOff(g, v);
    const used = m[vb + VCPU.off.usedLrs]!;
    if (used !== 0) out.push(`vcpu${v} has ${used} LR(s) in use at quiescence: its final exit did not fold them`);
    const pruned = m[vb + VCPU.off.prunedAt]!;
    for (let r = m[vb + VCPU.off.apHead]!, n = 0; r >= 0 && n++ < g.nrRecords; r = m[irqOff(g, r) + IRQ.off.next]!) {
      const b = irqOff(g, r);
      const t = oracle(h, b);
      if (t === v) continue;
      const intid = m[b + IRQ.off.intid]!;
      const changed = Math.max(changes.irq.get(intid < VGIC_NR_PRIVATE_IRQS ? `${intid}@${v}` : `${intid}`) ?? -1, changes.dist);
      if (changed >= pruned) continue; // changed since the last prune began: the next one would remove it
      const why = m[b + IRQ.off.active] ? `active, held by vcpu${m[b + IRQ.off.vcpu]}`
        : !m[b + IRQ.off.enabled] ? 'disabled'
        : t < 0 && m[D.enabled] === 0 ? 'pending with the distributor disabled'
        : t < 0 ? 'neither pending nor active'
        : `targeting vcpu${t}`;
      out.push(`INTID ${intid} is on vcpu${v}'s ap_list at quiescence, ${why}, unchanged since vcpu${v}'s last prune (history seq ${pruned}${changed >= 0 ? `; last change #${changed}` : ''}): the prune should have ${t < 0 ? 'removed' : 'migrated'} it`);
    }
  }
  for (let r = 0; r < g.nrRecords; r++) {
    const b = irqOff(g, r);
    if (m[b + IRQ.off.onLr] && out.length < 40) out.push(`INTID ${m[b + IRQ.off.intid]} (record ${r}) is marked in an LR at quiescence: a fold did not clear it`);
  }
  return out;
}
