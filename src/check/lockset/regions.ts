/**
 * The map from a word of the VM state buffer to the field it belongs to, built from the geometry
 * and the layout tables (nothing listed by hand). Flat per-word arrays, not a search: the check
 * runs on every access in checking mode, and a VM's state is ~100k words.
 */
import type { Layout } from '../../shm/layout.js';
import type { LockName, Protection } from '../../shm/protection.js';
import { DIST, IRQ, IRQFD, ITS, LPI_BASE, MAX_ITS, NR_IRQFDS, NR_PHYS_IRQS, NR_ROUTES, PHYS_IRQ, ROUTE, VCPU } from '../../shm/layouts.js';
import type { VmGeometry } from '../../shm/vm-memory.js';
import { LockClass } from '../../sync/lock-classes.js';

export const enum Rule {
  Lock,
  Atomic,
  OwnerVcpu,
  OwnerMain,
  Seqlock,
  Init,
  Stats,
}

/** One lock a rule names, resolved: a word relative to the record, an absolute word, or any of a class. */
export interface LockReq {
  readonly name: LockName;
  readonly cls: LockClass;
  /** Word offset from the top-level record's first word, or -1. */
  readonly rel: number;
  /** Absolute word (VM-wide locks), or -1. */
  readonly abs: number;
  /** irq_lock / ap_list_lock: dist->lock stands for it in `locking: 'global'`. */
  readonly vgicLock: boolean;
  /** `all vcpu->mutex`: every online vCPU's mutex (lock_all_vcpus). */
  readonly allVcpus: boolean;
}

export interface FieldInfo {
  readonly id: number;
  /** Top-level layout (the record the field lives in) and the segment of its records. */
  readonly top: Layout<string>;
  readonly segStart: number;
  /** For a field of a sub-record (vcpu.lr[k].state): the parent field and the element layout. */
  readonly parent: { readonly name: string; readonly offset: number; readonly elem: Layout<string> } | null;
  readonly name: string;
  readonly prot: Protection;
  readonly rule: Rule;
  /** Lock rules: the locks, in declaration order (writes hold all, reads any). Seqlock/init: the writers. */
  readonly locks: readonly LockReq[];
  /** Lock rules: the alternative set a write may hold instead (Protection.orLocks), or empty. */
  readonly orLocks: readonly LockReq[];
  readonly racyRead: boolean;
  /**
   * A write is checked even while the word is exclusive to one thread, once other threads can
   * reach the record (a vCPU is online): the field is guarded by a sleeping lock (kvm->lock,
   * config_lock, vcpu->mutex, its_lock, cmd_lock) or by owner(vcpu), whose writers are mostly the
   * VMM thread alone, so Eraser's "second thread" never comes and a write that forgot the lock
   * would never be seen.
   */
  readonly checkWrites: boolean;
}

export interface RegionTable {
  readonly g: VmGeometry;
  /** Field id per word; -1: not checked (a lock's words, the lockdep matrix, padding). */
  readonly fid: Int16Array;
  /** First word of the top-level record holding each word. */
  readonly base: Int32Array;
  readonly fields: readonly FieldInfo[];
}

const CLASS_OF: Record<LockName, LockClass> = {
  'irq_lock': LockClass.IrqLock,
  'ap_list_lock': LockClass.ApListLock,
  'vcpu->mutex': LockClass.VcpuMutex,
  'all vcpu->mutex': LockClass.VcpuMutex,
  'kvm->lock': LockClass.KvmLock,
  'config_lock': LockClass.ConfigLock,
  'its_lock': LockClass.ItsLock,
  'cmd_lock': LockClass.ItsCmdLock,
  'lpi_lock': LockClass.LpiLock,
};

function resolveLock(name: LockName, top: Layout<string>, g: VmGeometry): LockReq {
  const cls = CLASS_OF[name];
  const mk = (rel: number, abs: number): LockReq => ({ name, cls, rel, abs, vgicLock: name === 'irq_lock' || name === 'ap_list_lock', allVcpus: name === 'all vcpu->mutex' });
  switch (name) {
    case 'kvm->lock': return mk(-1, g.distBase + DIST.off.kvmLock);
    case 'config_lock': return mk(-1, g.distBase + DIST.off.configLock);
    case 'lpi_lock': return mk(-1, g.distBase + DIST.off.lpiLock);
    case 'irq_lock':
      if (top !== IRQ) throw new Error(`lockset: ${top.name} names irq_lock, which only an IRQ record has`);
      return mk(IRQ.off.lock, -1);
    case 'ap_list_lock': return mk(top === VCPU ? VCPU.off.apLock : -1, -1);
    case 'vcpu->mutex':
      // Outside a vCPU record: any vCPU's mutex (a VM-wide field that a vCPU ioctl of whichever
      // vCPU writes, as KVM_SET_ONE_REG writes the VM's counter offset), like ap_list_lock in an
      // IRQ record.
      return mk(top === VCPU ? VCPU.off.mutex : -1, -1);
    case 'all vcpu->mutex':
      return mk(-1, -1);
    case 'its_lock':
    case 'cmd_lock':
      if (top !== ITS) throw new Error(`lockset: ${top.name} names ${name} outside an ITS record`);
      return mk(name === 'its_lock' ? ITS.off.itsLock : ITS.off.cmdLock, -1);
  }
}

function ruleOf(p: Protection): Rule {
  switch (p.by) {
    case 'lock': return Rule.Lock;
    case 'atomic': return Rule.Atomic;
    case 'owner': return p.owner === 'vcpu' ? Rule.OwnerVcpu : Rule.OwnerMain;
    case 'seqlock': return Rule.Seqlock;
    case 'init': return Rule.Init;
    case 'stats': return Rule.Stats;
  }
}

/** The sleeping locks: a field they guard is written mostly by the VMM thread (FieldInfo.checkWrites). */
const MUTEX_CLASSES: ReadonlySet<LockClass> = new Set([LockClass.KvmLock, LockClass.ConfigLock, LockClass.VcpuMutex, LockClass.ItsLock, LockClass.ItsCmdLock]);

function checksWrites(rule: Rule, locks: readonly LockReq[]): boolean {
  return rule === Rule.OwnerVcpu || locks.some((l) => MUTEX_CLASSES.has(l.cls));
}

function locksOf(p: Protection): readonly LockName[] {
  return p.by === 'lock' ? p.locks : p.by === 'seqlock' ? [p.writer] : p.by === 'init' ? p.writer : [];
}

const cache = new Map<string, RegionTable>();

/** The table of a geometry (one per distinct geometry per thread: it is a pure function of it). */
export function regionTable(g: VmGeometry): RegionTable {
  const key = `${g.maxVcpus}/${g.stateWords}`;
  let t = cache.get(key);
  if (!t) cache.set(key, (t = buildTable(g)));
  return t;
}

function buildTable(g: VmGeometry): RegionTable {
  const fid = new Int16Array(g.stateWords).fill(-1);
  const base = new Int32Array(g.stateWords);
  const fields: FieldInfo[] = [];
  const segment = (top: Layout<string>, start: number, count: number): void => {
    const ids: { id: number; offset: number; words: number }[] = [];
    const add = (name: string, prot: Protection | undefined, parent: FieldInfo['parent'], offset: number, words: number): void => {
      if (!prot) throw new Error(`lockset: ${top.name}.${name} declares no protection`);
      const id = fields.length;
      const rule = ruleOf(prot);
      const locks = locksOf(prot).map((n) => resolveLock(n, top, g));
      const orLocks = (prot.by === 'lock' ? prot.orLocks ?? [] : []).map((n) => resolveLock(n, top, g));
      fields.push({
        id, top, segStart: start, parent, name, prot, rule, locks, orLocks,
        racyRead: 'racyRead' in prot && !!prot.racyRead,
        checkWrites: checksWrites(rule, [...locks, ...orLocks]),
      });
      ids.push({ id, offset, words });
    };
    for (const f of top.fields) {
      if (f.kind === 'lock') continue;
      if (f.elem) {
        const e = f.elem;
        for (const sf of e.fields) {
          add(sf.name, sf.prot, { name: f.name, offset: f.offset, elem: e }, f.offset + sf.offset, sf.words);
          const id = fields.length - 1;
          for (let k = 1; (k + 1) * e.size <= f.words; k++) ids.push({ id, offset: f.offset + k * e.size + sf.offset, words: sf.words });
        }
      } else add(f.name, f.prot, null, f.offset, f.words);
    }
    for (let r = 0; r < count; r++) {
      const rb = start + r * top.size;
      for (const x of ids) for (let w = 0; w < x.words; w++) {
        fid[rb + x.offset + w] = x.id;
        base[rb + x.offset + w] = rb;
      }
    }
  };
  segment(DIST, g.distBase, 1);
  segment(VCPU, g.vcpuBase, g.maxVcpus);
  segment(IRQ, g.irqBase, g.nrRecords);
  segment(IRQFD, g.irqfdBase, NR_IRQFDS);
  segment(PHYS_IRQ, g.physBase, NR_PHYS_IRQS);
  segment(ITS, g.itsBase, MAX_ITS);
  segment(ROUTE, g.routeBase, NR_ROUTES);
  return { g, fid, base, fields };
}

/** `vgic_irq[INTID 40].pendingLatch`, `vcpu[1].lr[2].state`, `vgic_dist.enabled`. */
export function fieldPath(t: RegionTable, word: number): string {
  const f = t.fields[t.fid[word]!]!;
  const rb = t.base[word]!;
  const r = (rb - f.segStart) / f.top.size;
  let rec: string;
  if (f.top === DIST) rec = DIST.name;
  else if (f.top === IRQ) {
    const g = t.g;
    rec = r < g.spiRecordBase ? `vgic_irq[vcpu${Math.floor(r / 32)} INTID ${r % 32}]`
      : r < g.lpiRecordBase ? `vgic_irq[INTID ${32 + r - g.spiRecordBase}]`
      : `vgic_irq[INTID ${LPI_BASE + r - g.lpiRecordBase}]`;
  } else rec = `${f.top.name}[${r}]`;
  if (!f.parent) return `${rec}.${f.name}`;
  const k = Math.floor((word - rb - f.parent.offset) / f.parent.elem.size);
  return `${rec}.${f.parent.name}[${k}].${f.name}`;
}
