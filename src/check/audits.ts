/**
 * Quiescence audits: once every thread of a run has stopped (the guests returned, the driver is
 * done, nothing is in flight), the shared state must be at rest. These checks know no bug; they
 * state what "at rest" means, so a leak or a lost release shows whatever caused it:
 *  - every lock is free (every field the layout tables declare of kind 'lock', in every record);
 *  - no irqfd has an injection or resample in flight;
 *  - each LPI's refcount equals the references that exist: one per ITE mapping it, one per valid
 *    translation-cache entry naming it, one while it is on an ap_list (spec §1.7, §9.5); so an LPI
 *    on an ap_list after it was freed shows too; no transient reference is left at rest. A record
 *    is free exactly when unreferenced (a referenced one names its INTID, a released one none), and
 *    every ITE and cache entry names an LPI that has a record;
 *  - every eventfd the run used balances: what was added equals what was taken plus what is
 *    left (a count lost or invented by any path shows, whoever lost it), and none of its waits
 *    counted a lost wake-up (eventfd/layout.ts park());
 *  - every physical line forwarded to the guest is consistent with the guest's view: it names
 *    an SPI that is HW-mapped back to it, and while it is active the guest still holds the
 *    interrupt (pending or active), or nothing will ever deactivate it.
 */
import { lockHolderSlot } from '../sync/lock.js';
import { DIST, IRQ, IRQFD, ITS, NR_PHYS_IRQS, PHYS_INTID_BASE, PHYS_IRQ, PIRQ_ACTIVE, PIRQ_FWD, ITS_CACHE, ITS_ITE, LPI_BASE, MAX_LPIS, NR_ITES, NR_ITS_CACHE, VCPU } from '../shm/layouts.js';
import type { Layout } from '../shm/layout.js';
import { irqfdOff, irqOff, itsOff, physOff, vcpuOff, type VmGeometry } from '../shm/vm-memory.js';
import { EventFd } from '../eventfd/eventfd.js';
import { VGIC_NR_PRIVATE_IRQS } from '../uapi/kvm.js';

function heldLocks(m: Int32Array, l: Layout<string>, base: number, what: string, out: string[]): void {
  for (const f of l.fields) {
    if (f.kind !== 'lock') continue;
    const state = Atomics.load(m, base + f.offset);
    if (state !== 0) out.push(`${what}.${f.name} is still held at quiescence (state ${state}, owner slot ${lockHolderSlot(m, base + f.offset)})`);
  }
}

export function quiescenceAudit(m: Int32Array, g: VmGeometry, eventfds: readonly { name: string; fd: EventFd }[] = []): string[] {
  const out: string[] = [...eventfdAudit(eventfds), ...physLineAudit(m, g)];
  const d = g.distBase;
  heldLocks(m, DIST, d, 'dist', out);
  const vcpus = m[d + DIST.off.onlineVcpus]!;
  for (let v = 0; v < vcpus; v++) heldLocks(m, VCPU, vcpuOff(g, v), `vcpu${v}`, out);
  for (let r = 0; r < g.nrRecords; r++) heldLocks(m, IRQ, irqOff(g, r), `irq record ${r} (INTID ${m[irqOff(g, r) + IRQ.off.intid]})`, out);
  const nrIts = m[d + DIST.off.nrIts]!;
  for (let i = 0; i < nrIts; i++) heldLocks(m, ITS, itsOff(g, i), `its${i}`, out);

  for (let i = 0; i < m[d + DIST.off.irqfdHiwater]!; i++) {
    const n = Atomics.load(m, irqfdOff(g, i) + IRQFD.off.inflight);
    if (n !== 0) out.push(`irqfd ${i} (gsi ${m[irqfdOff(g, i) + IRQFD.off.gsi]}) has ${n} injection(s) in flight at quiescence`);
  }

  // LPI references, counted from where they live.
  const refs = new Int32Array(MAX_LPIS);
  const ites = new Int32Array(MAX_LPIS);
  const cached = new Int32Array(MAX_LPIS);
  for (let i = 0; i < nrIts; i++) {
    const ib = itsOff(g, i);
    for (let s = 0; s < NR_ITES; s++) {
      const e = ib + ITS.off.ites + s * ITS_ITE.size;
      if (!m[e + ITS_ITE.off.valid]) continue;
      const k = m[e + ITS_ITE.off.lpi]! - LPI_BASE;
      if (k >= 0 && k < MAX_LPIS) ites[k]!++;
      else out.push(`its${i} ITE ${s} maps INTID ${m[e + ITS_ITE.off.lpi]}, which has no LPI record`);
    }
    for (let s = 0; s < NR_ITS_CACHE; s++) {
      const c = ib + ITS.off.cache + s * ITS_CACHE.size;
      if (!Atomics.load(m, c + ITS_CACHE.off.valid)) continue;
      const k = m[c + ITS_CACHE.off.record]! - g.lpiRecordBase;
      if (k >= 0 && k < MAX_LPIS) cached[k]!++;
      else out.push(`its${i} translation-cache entry ${s} names record ${m[c + ITS_CACHE.off.record]}, which is no LPI record`);
    }
  }
  for (let k = 0; k < MAX_LPIS; k++) {
    const b = irqOff(g, g.lpiRecordBase + k);
    const onList = m[b + IRQ.off.vcpu]! >= 0 ? 1 : 0;
    refs[k] = ites[k]! + cached[k]! + onList;
    const rc = Atomics.load(m, b + IRQ.off.refcount);
    if (rc !== refs[k] && out.length < 40) {
      out.push(`LPI ${LPI_BASE + k}: refcount ${rc}, but ${refs[k]} reference(s) exist (${ites[k]} ITE, ${cached[k]} translation-cache, ${onList} ap_list)${rc === 0 && onList ? ': a freed LPI is still on an ap_list' : ''}`);
    }
    const intid = m[b + IRQ.off.intid]!;
    if (rc > 0 && intid !== LPI_BASE + k && out.length < 40) out.push(`LPI record ${g.lpiRecordBase + k} has refcount ${rc} but names INTID ${intid}: referenced, yet released`);
    if (rc === 0 && intid !== 0 && out.length < 40) out.push(`LPI ${intid}: no reference is left, but its record was never released (a put that skipped the release)`);
  }
  return out;
}

/** Eventfds in a value: EventFd objects and shared handles (what a scenario's setup hands out). */
export function eventfdsIn(value: unknown, path = 'extra', out: { name: string; fd: EventFd }[] = [], depth = 0): { name: string; fd: EventFd }[] {
  if (value === null || typeof value !== 'object' || depth > 4) return out;
  if (EventFd.is(value)) out.push({ name: path, fd: value });
  else if ((value as { kind?: unknown }).kind === 'eventfd' && (value as { sab?: unknown }).sab instanceof SharedArrayBuffer) {
    try {
      out.push({ name: path, fd: EventFd.from(value as Parameters<typeof EventFd.from>[0]) });
    } catch {
      // Not an eventfd after all (EventFd.from validates the buffer): nothing to audit.
    }
  } else if (Array.isArray(value)) value.forEach((v, i) => eventfdsIn(v, `${path}[${i}]`, out, depth + 1));
  else for (const [k, v] of Object.entries(value)) eventfdsIn(v, `${path}.${k}`, out, depth + 1);
  return out;
}

/** Every eventfd balances (added = taken + left) and lost no wake-up, each audited once (by token). */
export function eventfdAudit(fds: readonly { name: string; fd: EventFd }[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const { name, fd } of fds) {
    if (seen.has(fd.token)) continue;
    seen.add(fd.token);
    const t = fd.totals();
    if (!t.balanced) out.push(`eventfd ${name}: ${t.added} added but ${t.taken} taken and ${fd.value} left at quiescence (mod 2^32): a count was lost or invented`);
    if (t.lostWakes) out.push(`eventfd ${name}: lost wake-up: ${t.lostWakes} wait(s) found the eventfd ready when their park slice ran out, and no wake came within the grace period (a waker published without waking; the kernel's waiter would sleep for good)`);
  }
  return out;
}

/** Forwarded physical lines against the guest's interrupt records. */
export function physLineAudit(m: Int32Array, g: VmGeometry): string[] {
  const out: string[] = [];
  const nrSpis = m[g.distBase + DIST.off.nrSpis]!;
  for (let i = 0; i < NR_PHYS_IRQS; i++) {
    const p = physOff(g, i);
    if (Atomics.load(m, p + PHYS_IRQ.off.used) === 0) continue;
    const s = Atomics.load(m, p + PHYS_IRQ.off.state);
    if (!(s & PIRQ_FWD)) continue;
    const vintid = m[p + PHYS_IRQ.off.vintid]!;
    const spi = vintid - VGIC_NR_PRIVATE_IRQS;
    if (spi < 0 || spi >= nrSpis) {
      out.push(`physical line ${i} is forwarded to INTID ${vintid}, which is not an SPI of this VM`);
      continue;
    }
    const b = irqOff(g, g.spiRecordBase + spi);
    if (!m[b + IRQ.off.hw] || m[b + IRQ.off.hwintid] !== PHYS_INTID_BASE + i) {
      out.push(`physical line ${i} is forwarded to INTID ${vintid}, but that SPI is ${m[b + IRQ.off.hw] ? `mapped to pINTID ${m[b + IRQ.off.hwintid]}` : 'not HW-mapped'}`);
      continue;
    }
    const guestHolds = m[b + IRQ.off.active] || m[b + IRQ.off.pendingLatch] || m[b + IRQ.off.lineLevel] || m[b + IRQ.off.onLr];
    if (s & PIRQ_ACTIVE && !guestHolds) {
      out.push(`physical line ${i} is active at quiescence, but the guest's INTID ${vintid} is neither pending nor active: nothing will deactivate it`);
    }
  }
  return out;
}
