/**
 * Quiescence audits: once every thread of a run has stopped (the guests returned, the driver is
 * done, nothing is in flight), the shared state must be at rest. These checks know no bug; they
 * state what "at rest" means, so a leak or a lost release shows whatever caused it:
 *  - every lock is free (every field the layout tables declare of kind 'lock', in every record);
 *  - no irqfd has an injection or resample in flight;
 *  - each LPI's refcount equals the references that exist: one per ITE mapping it, one per valid
 *    translation-cache entry naming it, one while it is on an ap_list (spec §1.7, §9.5); so an LPI
 *    on an ap_list after it was freed shows too.
 */
import { lockHolderSlot } from '../sync/lock.js';
import { DIST, IRQ, IRQFD, ITS, ITS_CACHE, ITS_ITE, LPI_BASE, MAX_LPIS, NR_ITES, NR_ITS_CACHE, VCPU } from '../shm/layouts.js';
import type { Layout } from '../shm/layout.js';
import { irqfdOff, irqOff, itsOff, vcpuOff, type VmGeometry } from '../shm/vm-memory.js';

function heldLocks(m: Int32Array, l: Layout<string>, base: number, what: string, out: string[]): void {
  for (const f of l.fields) {
    if (f.kind !== 'lock') continue;
    const state = Atomics.load(m, base + f.offset);
    if (state !== 0) out.push(`${what}.${f.name} is still held at quiescence (state ${state}, owner slot ${lockHolderSlot(m, base + f.offset)})`);
  }
}

export function quiescenceAudit(m: Int32Array, g: VmGeometry): string[] {
  const out: string[] = [];
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
    }
    for (let s = 0; s < NR_ITS_CACHE; s++) {
      const c = ib + ITS.off.cache + s * ITS_CACHE.size;
      if (!Atomics.load(m, c + ITS_CACHE.off.valid)) continue;
      const k = m[c + ITS_CACHE.off.record]! - g.lpiRecordBase;
      if (k >= 0 && k < MAX_LPIS) cached[k]!++;
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
  }
  return out;
}
