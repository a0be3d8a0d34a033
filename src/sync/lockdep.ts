/**
 * Lock-order checking, lockdep style. Runs before a lock is attempted, so an inversion is reported
 * the first time the bad order is *tried*, long before two threads actually deadlock on it.
 *
 * Knowledge used:
 *  - the rank table (lock-classes.ts), i.e. the order the kernel documents;
 *  - the edges actually observed at run time (class A held while class B taken), recorded once per
 *    pair in shared memory with the first thread that took them, so the report can show the
 *    other chain as it really happened, possibly on another thread.
 */
import { LOCK_CLASSES, LockClass, lockClassName, NR_LOCK_CLASSES } from './lock-classes.js';
import type { SyncThread } from './thread.js';

export class LockOrderError extends Error {
  readonly report: string;
  constructor(report: string) {
    super(report);
    this.name = 'LockOrderError';
    this.report = report;
  }
}

/**
 * lockdep_assert_held failed: a function that documents "caller holds X" ran without X. Thrown
 * at the call, so the stack names the caller that forgot the lock.
 */
export class LockNotHeldError extends Error {
  constructor(t: SyncThread, cls: LockClass, sub: number, where: string) {
    const held: string[] = [];
    for (let i = 0; i < Math.min(t.depth, t.heldClass.length); i++) held.push(lockLabel(t.heldClass[i]!, t.heldSub[i]!));
    super(`WARNING: lockdep_assert_held(${lockLabel(cls, sub)}) failed in ${where}: ${t.name} does not hold it (holding [${held.join(', ')}])`);
    this.name = 'LockNotHeldError';
  }
}

/** Thread names by slot, so reports can say "vcpu1" rather than "slot 2". */
export function slotName(slot: number, nrVcpuSlots: number): string {
  if (slot === 0) return 'main';
  if (slot <= nrVcpuSlots) return `vcpu${slot - 1}`;
  return `thread${slot}`;
}

function lockLabel(cls: number, sub: number): string {
  const n = lockClassName(cls as LockClass);
  return sub >= 0 ? `${n}#${sub}` : n;
}

/** Is acquiring (cls, sub) while holding (hcls, hsub) allowed by the order? */
function allowed(hcls: number, hsub: number, cls: number, sub: number, nestOk: boolean): boolean {
  const hr = LOCK_CLASSES[hcls]!.rank;
  const r = LOCK_CLASSES[cls]!.rank;
  if (hcls === cls) {
    // Two ap_list locks: ascending vCPU id only (vgic_prune_ap_list).
    // Two ap_list locks: ascending vCPU id only (vgic_prune_ap_list); "lock all vCPUs" takes
    // every vcpu->mutex in index order (kvm_trylock_all_vcpus, a lockdep subclass in the kernel).
    if (cls === LockClass.ApListLock || cls === LockClass.VcpuMutex) return hsub < sub;
    // Two irq locks only in the ap_list sort comparator (the caller says so).
    if (cls === LockClass.IrqLock) return nestOk && hsub !== sub;
    return false;
  }
  return r > hr;
}

/**
 * Check, then record, the new acquisition. Throws LockOrderError with a lockdep-style report.
 * `nestOk` marks the one place two same-class irq locks may nest.
 */
export function lockdepAcquire(t: SyncThread, cls: number, sub: number, nestOk: boolean, nrVcpuSlots: number): void {
  for (let i = 0; i < t.depth; i++) {
    const hcls = t.heldClass[i]!;
    const hsub = t.heldSub[i]!;
    if (!allowed(hcls, hsub, cls, sub, nestOk)) {
      throw new LockOrderError(violationReport(t, i, cls, sub, nrVcpuSlots));
    }
  }
  // Record the edge from the innermost held class (first observer wins).
  if (t.depth > 0) {
    const from = t.heldClass[t.depth - 1]!;
    const e = t.edgeBase + from * NR_LOCK_CLASSES + cls;
    // A plain read first: once an edge is recorded it never changes back, so the common case
    // costs no atomic operation.
    if (t.m[e] === 0 && Atomics.load(t.m, e) === 0) Atomics.compareExchange(t.m, e, 0, t.slot + 1);
  }
}

function violationReport(t: SyncThread, badIdx: number, cls: number, sub: number, nrVcpuSlots: number): string {
  const hcls = t.heldClass[badIdx]!;
  const hsub = t.heldSub[badIdx]!;
  const held = lockLabel(hcls, hsub);
  const want = lockLabel(cls, sub);
  const lines: string[] = [];
  lines.push('======================================================');
  if (hcls === cls && cls !== LockClass.ApListLock && cls !== LockClass.IrqLock) {
    lines.push('WARNING: possible recursive locking detected');
  } else {
    lines.push('WARNING: possible circular locking dependency detected');
  }
  lines.push('------------------------------------------------------');
  lines.push(`${t.name} is trying to acquire lock:`);
  lines.push(`  ${want}  (class ${lockClassName(cls as LockClass)}, rank ${LOCK_CLASSES[cls]!.rank})`);
  lines.push('but task is already holding lock:');
  lines.push(`  ${held}  (class ${lockClassName(hcls as LockClass)}, rank ${LOCK_CLASSES[hcls]!.rank})`);
  lines.push('');
  lines.push('chain #1 (this acquisition), outermost first:');
  for (let i = 0; i < t.depth; i++) lines.push(`  ${t.name}: ${lockLabel(t.heldClass[i]!, t.heldSub[i]!)}`);
  lines.push(`  ${t.name}: ${want}   <-- new`);
  lines.push('');
  lines.push('chain #2 (the existing dependency it inverts):');
  const seen = Atomics.load(t.m, t.edgeBase + cls * NR_LOCK_CLASSES + hcls);
  if (hcls === cls && (cls === LockClass.ApListLock || cls === LockClass.VcpuMutex)) {
    lines.push(`  rule: two ${lockClassName(cls)}s are taken in ascending vCPU id order only (held #${hsub}, wanted #${sub})`);
  } else if (hcls === cls) {
    lines.push(`  rule: ${lockClassName(cls)} does not nest in itself here`);
  } else {
    lines.push(`  documented order: ${lockClassName(cls as LockClass)} (rank ${LOCK_CLASSES[cls]!.rank}) -> ${lockClassName(hcls as LockClass)} (rank ${LOCK_CLASSES[hcls]!.rank})`);
  }
  if (seen !== 0) {
    lines.push(`  observed at run time on ${slotName(seen - 1, nrVcpuSlots)}: ${lockClassName(cls as LockClass)} held, then ${lockClassName(hcls as LockClass)} taken`);
  }
  lines.push('');
  lines.push(' Possible unsafe locking scenario:');
  lines.push('');
  const a = lockClassName(hcls as LockClass);
  const b = lockClassName(cls as LockClass);
  lines.push('       CPU0                    CPU1');
  lines.push('       ----                    ----');
  lines.push(`  lock(${a});`);
  lines.push(`                               lock(${b});`);
  lines.push(`                               lock(${a});`);
  lines.push(`  lock(${b});`);
  lines.push('');
  lines.push(' *** DEADLOCK ***');
  return lines.join('\n');
}
