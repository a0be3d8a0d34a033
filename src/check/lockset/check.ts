/**
 * The lockset check of one access: is the accessing thread allowed to touch this word the way it
 * does, by the field's declared protection (shm/protection.ts)? Eraser's refinement first: a word
 * is exclusive to the first thread that touches it (initialisation before the VM is shared is not
 * a race) until a second thread does; from then on every access is checked.
 *
 * One exception to the refinement: a write to a field guarded by a sleeping lock or by
 * owner(vcpu) (FieldInfo.checkWrites) is checked, exclusive or not, once the record is reachable
 * by other threads, i.e. once a vCPU is online (kvm->online_vcpus; for a vCPU's own record, once
 * that vCPU is). Those fields are written mostly by the VMM thread alone (device attributes,
 * vCPU ioctls), so the second thread Eraser waits for never touches them, and a write that forgot
 * kvm->lock or config_lock while a vCPU thread could run beside it would never be reported.
 * A record being (re)allocated is marked FRESH for its allocator (accessRecycled): its
 * initialisation is exempt until another thread touches it, as kzalloc'd memory is before it is
 * published.
 */
import { describeProtection } from '../../shm/protection.js';
import { DIST, VCPU } from '../../shm/layouts.js';
import { LockClass, lockClassName } from '../../sync/lock-classes.js';
import type { SyncThread } from '../../sync/thread.js';
import { fieldPath, Rule, type FieldInfo, type LockReq, type RegionTable } from './regions.js';
import { writeReport, type AccessViolation, type ReportSink } from './reports.js';

export const enum Access {
  Read = 0,
  Write = 1,
  AtomicRead = 2,
  AtomicWrite = 3,
}
const ACCESS_NAMES = ['read', 'write', 'atomic-read', 'atomic-write'] as const;

/**
 * Eraser state of a word: 0 untouched, slot + 1 exclusive to that thread, SHARED, or
 * FRESH - slot: freshly (re)allocated by that thread, exempt from every check for it.
 */
const SHARED = -1;
const FRESH = -2;

/** The Eraser state accessRecycled gives the words of a record `slot` (re)allocates. */
export function freshState(slot: number): number {
  return FRESH - slot;
}

// The checker's own shared-memory operations must not go through the wrappers of view.ts.
const aLoad = Atomics.load;
const aStore = Atomics.store;
const aCas = Atomics.compareExchange;

export interface AccessCtx {
  readonly table: RegionTable;
  readonly t: SyncThread;
  readonly selfVcpu: number;
  readonly global: boolean;
  readonly eraser: Int32Array;
  readonly sink: ReportSink;
  /** Sites already reported by this thread (field|access|call site). */
  readonly seen: Set<string>;
}

export function checkAccess(c: AccessCtx, word: number, acc: Access): void {
  const id = c.table.fid[word];
  if (!(id! >= 0)) return; // unmapped, or outside the state (undefined), as the typed array reads it
  const f = c.table.fields[id]!;
  if (f.rule === Rule.Stats) return;
  const me = c.t.slot + 1;
  const rb = c.table.base[word]!;
  const s = aLoad(c.eraser, word);
  if (s !== SHARED) {
    if (s === FRESH - c.t.slot) return;
    if (s === me || (s === 0 && aCas(c.eraser, word, 0, me) === 0)) {
      if (!(f.checkWrites && isWrite(acc) && published(c, f, rb))) return;
    } else aStore(c.eraser, word, SHARED);
  }
  const broken = ruleBroken(c, f, rb, acc);
  if (broken !== null) report(c, f, word, acc, broken);
}

function isWrite(acc: Access): boolean {
  return acc === Access.Write || acc === Access.AtomicWrite;
}

function onlineVcpus(c: AccessCtx): number {
  return aLoad(c.t.m, c.table.g.distBase + DIST.off.onlineVcpus);
}

/**
 * Can a thread other than this one reach the record? A vCPU's record once that vCPU is online
 * (kvm_get_vcpu walks online_vcpus: KVM_CREATE_VCPU fills the record before it counts it); any
 * other record once some vCPU is: a vCPU thread may then be running beside the VMM thread.
 */
function published(c: AccessCtx, f: FieldInfo, rb: number): boolean {
  const online = onlineVcpus(c);
  return f.top === VCPU ? online > (rb - f.segStart) / VCPU.size : online > 0;
}

function holdsWord(t: SyncThread, w: number): boolean {
  const n = Math.min(t.depth, t.heldWord.length);
  for (let j = 0; j < n; j++) if (t.heldWord[j] === w) return true;
  return false;
}

function holdsClass(t: SyncThread, cls: LockClass): boolean {
  const n = Math.min(t.depth, t.heldClass.length);
  for (let j = 0; j < n; j++) if (t.heldClass[j] === cls) return true;
  return false;
}

function holds(c: AccessCtx, l: LockReq, rb: number): boolean {
  if (c.global && l.vgicLock) return c.t.globalDepth > 0;
  if (l.allVcpus) {
    const n = onlineVcpus(c);
    for (let v = 0; v < n; v++) if (!holdsWord(c.t, c.table.g.vcpuBase + v * VCPU.size + VCPU.off.mutex)) return false;
    return true;
  }
  if (l.abs >= 0) return holdsWord(c.t, l.abs);
  if (l.rel >= 0) return holdsWord(c.t, rb + l.rel);
  return holdsClass(c.t, l.cls);
}

/** What the access lacks, or null if it is allowed. */
function ruleBroken(c: AccessCtx, f: FieldInfo, rb: number, acc: Access): string | null {
  const write = isWrite(acc);
  const atomic = acc >= Access.AtomicRead;
  if (!write && f.racyRead) return null;
  switch (f.rule) {
    case Rule.Lock: {
      if (write) {
        const missing = f.locks.find((l) => !holds(c, l, rb));
        if (!missing) return null;
        if (f.orLocks.length && f.orLocks.every((l) => holds(c, l, rb))) return null;
        const alt = f.orLocks.length ? `, or ${f.orLocks.map((x) => x.name).join(' and ')}` : '';
        return `a write must hold ${f.locks.map((x) => x.name).join(' and ')}${alt}; ${missing.name} is not held`;
      }
      for (const l of f.locks) if (holds(c, l, rb)) return null;
      for (const l of f.orLocks) if (holds(c, l, rb)) return null;
      return `a read must hold ${[...f.locks, ...f.orLocks].map((x) => x.name).join(' or ')}`;
    }
    case Rule.Atomic:
      return atomic ? null : `only Atomics may access it; this is a plain ${write ? 'write' : 'read'}`;
    case Rule.OwnerVcpu: {
      const v = (rb - f.segStart) / VCPU.size;
      if (c.selfVcpu === v || holdsWord(c.t, rb + VCPU.off.mutex)) return null;
      return `only vcpu${v}'s thread, or a thread holding its vcpu->mutex, may access it`;
    }
    case Rule.OwnerMain:
      return c.t.slot === 0 ? null : 'only the VMM (main) thread may access it';
    case Rule.Seqlock:
    case Rule.Init: {
      if (!write) return null;
      for (const l of f.locks) if (holds(c, l, rb)) return null;
      return f.locks.length ? `a write must hold ${f.locks.map((x) => x.name).join(' or ')}` : 'written after the VM was shared (it is fixed at initialisation)';
    }
    case Rule.Stats:
      return null;
  }
}

function heldNames(t: SyncThread): string[] {
  const out: string[] = [];
  const n = Math.min(t.depth, t.heldWord.length);
  for (let j = 0; j < n; j++) out.push(`${lockClassName(t.heldClass[j]! as LockClass)}#${t.heldSub[j]}`);
  if (t.globalDepth > 0 && !out.some((x) => x.startsWith('dist->lock'))) out.push('dist->lock');
  return out;
}

/** The stack without the checker's own frames; its first line names the call site. */
function callerStack(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(1);
  return lines.filter((l) => !/[/\\]check[/\\]lockset[/\\]|<anonymous>|Reflect\.|Proxy\./.test(l)).map((l) => l.trim()).join('\n');
}

function report(c: AccessCtx, f: FieldInfo, word: number, acc: Access, broken: string): void {
  const stack = callerStack();
  const key = `${f.id}|${acc}|${stack.split('\n', 1)[0]}`;
  if (c.seen.has(key)) return writeReport(c.sink, null);
  c.seen.add(key);
  const v: AccessViolation = {
    field: fieldPath(c.table, word),
    layout: f.parent ? f.parent.elem.name : f.top.name,
    access: ACCESS_NAMES[acc],
    thread: c.t.name,
    held: heldNames(c.t),
    rule: `${describeProtection(f.prot)}: ${broken}`,
    stack,
  };
  writeReport(c.sink, v);
}
