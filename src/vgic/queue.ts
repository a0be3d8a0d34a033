/**
 * Core queueing (kernel vgic.c): the target oracle, the ap_list, vgic_queue_irq_unlock with its
 * drop-lock / re-check / retry loop, requests and kicks, and kvm_vgic_inject_irq.
 *
 * Lock order (sync/lock-classes.ts is the single table): ap_list_lock before irq_lock; two
 * ap_list_locks in ascending vCPU id. Anything that holds irq_lock and needs an ap_list_lock must
 * drop the irq_lock, take both in order, and re-validate everything it decided before.
 */
import { kvmErr } from '../uapi/errno.js';
import { EXITING_GUEST_MODE, IN_GUEST_MODE, KVM_REQ_IRQ_PENDING, VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';
import { IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import { schedPoint, SchedPoint } from '../sync/sched.js';
import { BUG } from './bugs.js';
import type { Host } from './host.js';
import { D } from './host.js';
import { EDGE, irqIsPending, irqRecord, LEVEL } from './irq.js';
import { vgicLazyInit } from './init.js';
import { lpiGet, lpiInject, lpiPut } from './lpi.js';
import { lockApList, lockIrq, unlockApList, unlockIrq } from './locks.js';
import { traceLine, tracePend, traceQueue } from './trace.js';
import { activeSpiQueued, kickAllVcpus } from './lr-mainline.js';
import { EventKind } from '../record/events.js';
import { LockSite } from '../sync/lock-sites.js';

/**
 * vgic_target_oracle (spec §3.5). Caller holds irq_lock. Returns a vCPU id or -1.
 * Active: stay with the holder. Enabled+pending: target, unless the distributor is disabled.
 */
export function oracle(h: Host, b: number): number {
  const m = h.m;
  if (m[b + IRQ.off.active]) {
    const v = m[b + IRQ.off.vcpu]!;
    return v >= 0 ? v : m[b + IRQ.off.target]!;
  }
  if (m[b + IRQ.off.enabled] && irqIsPending(m, b)) {
    const t = m[b + IRQ.off.target]!;
    // dist->enabled is read without a lock, as the kernel does.
    if (t >= 0 && m[D.enabled] === 0) return -1;
    return t;
  }
  return -1;
}

/** Append record r at the tail of vCPU v's ap_list. Caller holds v's ap_list_lock and r's irq_lock. */
export function apListAppend(h: Host, v: number, r: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const b = irqOff(h.g, r);
  const tail = m[vb + VCPU.off.apTail]!;
  m[b + IRQ.off.prev] = tail;
  m[b + IRQ.off.next] = -1;
  if (tail >= 0) m[irqOff(h.g, tail) + IRQ.off.next] = r;
  else m[vb + VCPU.off.apHead] = r;
  m[vb + VCPU.off.apTail] = r;
}

/** Unlink record r from vCPU v's ap_list. Same locking as apListAppend. */
export function apListUnlink(h: Host, v: number, r: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  const b = irqOff(h.g, r);
  const prev = m[b + IRQ.off.prev]!;
  const next = m[b + IRQ.off.next]!;
  if (prev >= 0) m[irqOff(h.g, prev) + IRQ.off.next] = next;
  else m[vb + VCPU.off.apHead] = next;
  if (next >= 0) m[irqOff(h.g, next) + IRQ.off.prev] = prev;
  else m[vb + VCPU.off.apTail] = prev;
  m[b + IRQ.off.prev] = -1;
  m[b + IRQ.off.next] = -1;
}

/** kvm_make_request: order earlier stores, then set the bit (Atomics.or is sequentially consistent). */
export function makeRequest(h: Host, v: number, req: number): void {
  schedPoint(SchedPoint.PublishRequest, v);
  Atomics.or(h.m, vcpuOff(h.g, v) + VCPU.off.requests, req);
}

/**
 * kvm_vcpu_kick (spec §3.7). Wake it if it is blocked; otherwise, if it is in the guest, flip its
 * mode IN_GUEST -> EXITING, which the guest sees at its next instruction boundary (the "IPI").
 * Pairs with the vCPU's "store IN_GUEST_MODE, then re-check requests": a request made before the
 * vCPU's store is seen by its re-check; one made after makes this CAS succeed.
 */
export function kickVcpu(h: Host, v: number): void {
  schedPoint(SchedPoint.Kick, v);
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (h.hist) h.hist.record(EventKind.KICK, -1, v, h.t.slot, 0);
  if (Atomics.load(m, vb + VCPU.off.blocked) !== 0) {
    // Wake only someone who sleeps: the doorbell store costs ~10 ns, a notify 8-12 us.
    Atomics.store(m, vb + VCPU.off.wake, 1);
    if (h.hist) h.hist.record(EventKind.WAKE, -1, v, h.t.slot, 0);
    schedPoint(SchedPoint.Wake, v);
    // Seeded: the doorbell rings, but a parked sleeper is never woken (kickNoNotify).
    if (h.bugs & BUG.kickNoNotify) return;
    if (Atomics.load(m, vb + VCPU.off.parked) !== 0) Atomics.notify(m, vb + VCPU.off.wake, 1);
    return;
  }
  if (v === h.selfVcpu) {
    // Only the IN_GUEST -> EXITING transition can race, and not with ourselves (spec §12.23).
    if (Atomics.load(m, vb + VCPU.off.mode) === IN_GUEST_MODE) Atomics.store(m, vb + VCPU.off.mode, EXITING_GUEST_MODE);
    return;
  }
  Atomics.compareExchange(m, vb + VCPU.off.mode, IN_GUEST_MODE, EXITING_GUEST_MODE);
}

/**
 * vgic_queue_irq_unlock (spec §3.6). Entered with r's irq_lock held; returns with no lock held.
 * Returns whether it inserted r into an ap_list.
 */
export function queueIrqUnlock(h: Host, r: number): boolean {
  const m = h.m;
  const b = irqOff(h.g, r);
  for (;;) {
    const t = oracle(h, b);
    if (m[b + IRQ.off.vcpu]! >= 0 || t < 0) {
      unlockIrq(h, r);
      // Already queued (or going nowhere). Still kick the oracle's target: an edge re-asserted
      // while its previous instance sits in an LR makes no maintenance interrupt, so without
      // this kick the vCPU would run on with a stale LR (race §12.3, the 2016 skeleton's bug).
      if (t >= 0 && !(h.bugs & BUG.noKickWhenQueued)) {
        makeRequest(h, t, KVM_REQ_IRQ_PENDING);
        kickVcpu(h, t);
      }
      return false;
    }
    if (h.bugs & BUG.apListInsideIrqLock) {
      // Seeded inversion: take the ap_list lock while still holding the irq lock.
      lockApList(h, t, LockSite.QueueIrqUnlock);
    } else {
      // ap_list_lock ranks above irq_lock: drop ours, take both in order.
      unlockIrq(h, r);
      lockApList(h, t, LockSite.QueueIrqUnlock);
      lockIrq(h, r, LockSite.QueueIrqUnlock);
    }
    // Between the unlock and the relock another thread may have queued r elsewhere, cleared its
    // pending/enable state or retargeted it (race §12.1): re-validate, else start over.
    if (!(h.bugs & BUG.queueNoRevalidate) && (m[b + IRQ.off.vcpu]! >= 0 || oracle(h, b) !== t)) {
      unlockIrq(h, r);
      unlockApList(h, t);
      lockIrq(h, r, LockSite.QueueIrqUnlock);
      continue;
    }
    // With the queueNoRevalidate seed a record already queued (by a racing injector) is linked a
    // second time here: the list corruption the re-check exists to prevent.
    apListAppend(h, t, r);
    m[b + IRQ.off.vcpu] = t;
    // The ap_list holds a reference on an LPI (vgic_get_irq_kref); prune drops it.
    if (r >= h.g.lpiRecordBase) Atomics.add(m, b + IRQ.off.refcount, 1);
    if (h.hist) traceQueue(h, r, t);
    // Mainline: a new SPI in flight may make DIR trap on every vCPU.
    const bcast = activeSpiQueued(h, m[b + IRQ.off.intid]!);
    unlockIrq(h, r);
    unlockApList(h, t);
    if (bcast) kickAllVcpus(h);
    else if (!(h.bugs & BUG.queueNoKick)) {
      makeRequest(h, t, KVM_REQ_IRQ_PENDING);
      kickVcpu(h, t);
    }
    return true;
  }
}

/**
 * kvm_vgic_inject_irq (spec §3.2): lazy init, lookup, validate, set line/latch, queue.
 * `vcpu` names the vCPU for private INTIDs, -1 otherwise. `owner` 0 = userspace.
 */
export function injectIrq(h: Host, vcpu: number, intid: number, level: boolean, owner = 0): void {
  if (!vgicLazyInit(h)) return; // seeded early-injection drop
  if (intid < VGIC_NR_PRIVATE_IRQS && vcpu < 0) kvmErr('EINVAL', `private INTID ${intid} needs a vCPU`);
  const r = irqRecord(h, vcpu, intid);
  if (r < 0) kvmErr('EINVAL', `no interrupt ${intid}`);
  if (r >= h.g.lpiRecordBase) return injectLpiLine(h, r, intid, level);
  const m = h.m;
  const b = irqOff(h.g, r);
  lockIrq(h, r, LockSite.InjectIrq);
  // vgic_validate_injection: only real state changes go on.
  if (m[b + IRQ.off.owner] !== owner) {
    unlockIrq(h, r);
    return;
  }
  if (m[b + IRQ.off.config] === LEVEL) {
    if ((m[b + IRQ.off.lineLevel] !== 0) === level) {
      unlockIrq(h, r);
      return;
    }
    m[b + IRQ.off.lineLevel] = level ? 1 : 0;
    if (h.hist) traceLine(h, r, level ? 1 : 0);
  } else {
    if (!level) {
      unlockIrq(h, r);
      return;
    }
    if (h.bugs & BUG.unlockedPendingWrite) {
      unlockIrq(h, r);
      m[b + IRQ.off.pendingLatch] = 1;
      lockIrq(h, r);
    } else m[b + IRQ.off.pendingLatch] = 1;
    if (h.hist) tracePend(h, r);
  }
  schedPoint(SchedPoint.PublishLatch, r);
  queueIrqUnlock(h, r);
}

/**
 * kvm_vgic_inject_irq on an LPI INTID (the kernel looks LPIs up too): only a live LPI, with a
 * reference held while it is made pending; a level of 0 changes nothing for an edge LPI.
 */
function injectLpiLine(h: Host, r: number, intid: number, level: boolean): void {
  if (!lpiGet(h, r)) kvmErr('EINVAL', `no interrupt ${intid} (LPI not mapped)`);
  try {
    if (level) lpiInject(h, r);
  } finally {
    lpiPut(h, r);
  }
}

export { EDGE, LEVEL };
