/**
 * Liveness watchdog. Samples the shared state of a running VM from the main thread (without
 * locks: a sample may be torn, so a finding must persist across consecutive samples spanning the
 * bound before it is reported) and finds:
 *  - a vCPU blocked in WFI while a deliverable interrupt sits on its ap_list (lost wake-up);
 *  - a vCPU in guest mode with a request pending (lost kick: the IN_GUEST/requests Dekker pair);
 *  - a thread parked on a lock for longer than the bound (deadlock or a stuck holder).
 * It then builds a wait-for graph (who holds what, who waits on what, each vCPU's mode and
 * requests), reports it, and stops the VM instead of letting it hang.
 */
import { lockHolderSlot } from '../sync/lock.js';
import { machineLoadFactor } from '../sync/load-factor.js';
import { DIST, IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff, type VmGeometry } from '../shm/vm-memory.js';
import { LockClass, lockClassName } from '../sync/lock-classes.js';
import { slotName } from '../sync/lockdep.js';
import { irqIsPending } from '../vgic/irq.js';
import { unchecked } from './lockset/view.js';

export interface WatchdogFinding {
  kind: 'wfi-lost-wakeup' | 'lost-kick' | 'stuck-on-lock' | 'deadlock';
  message: string;
  waitFor: string;
}

export interface WatchdogOptions {
  /** How long a condition must persist before it is reported (ms). Default 1000. */
  boundMs?: number;
  /** Sampling period (ms). Default 50. */
  periodMs?: number;
  /**
   * Factor (>= 1) the bound is stretched by, read at every sample. Default: the machine's
   * one-minute load average per core (sync/load-factor.ts: why). Tests pass a constant.
   */
  loadFactor?: () => number;
  /** Clock (ms). Default performance.now; tests drive sample() with their own. */
  now?: () => number;
}


interface LockRef {
  word: number;
  label: string;
}

/** Every lock word of the VM with a label, for "who holds what". */
function allLocks(g: VmGeometry, online: number): LockRef[] {
  const out: LockRef[] = [
    { word: g.distBase + DIST.off.kvmLock, label: lockClassName(LockClass.KvmLock) },
    { word: g.distBase + DIST.off.configLock, label: lockClassName(LockClass.ConfigLock) },
    { word: g.distBase + DIST.off.distLock, label: lockClassName(LockClass.DistLock) },
  ];
  for (let v = 0; v < online; v++) {
    out.push({ word: vcpuOff(g, v) + VCPU.off.mutex, label: `${lockClassName(LockClass.VcpuMutex)}#${v}` });
    out.push({ word: vcpuOff(g, v) + VCPU.off.apLock, label: `${lockClassName(LockClass.ApListLock)}#${v}` });
  }
  for (let r = 0; r < g.nrRecords; r++) out.push({ word: irqOff(g, r) + IRQ.off.lock, label: `${lockClassName(LockClass.IrqLock)}#${r}` });
  return out;
}

const MODES = ['OUTSIDE_GUEST_MODE', 'IN_GUEST_MODE', 'EXITING_GUEST_MODE'];

/** A textual wait-for graph of the current state. */
export function waitForGraph(m: Int32Array, g: VmGeometry): string {
  m = unchecked(m); // a diagnostic snapshot, lock-free by design
  const online = m[g.distBase + DIST.off.onlineVcpus]!;
  const locks = allLocks(g, online);
  const byWord = new Map(locks.map((l) => [l.word, l.label]));
  const holds = new Map<number, string[]>();
  for (const l of locks) {
    const owner = lockHolderSlot(m, l.word);
    if (owner >= 0 && Atomics.load(m, l.word) !== 0) {
      const list = holds.get(owner) ?? [];
      list.push(l.label);
      holds.set(owner, list);
    }
  }
  const lines: string[] = ['wait-for graph:'];
  for (let s = 0; s < g.threadSlots; s++) {
    const w = Atomics.load(m, g.distBase + DIST.off.waitingOn + s);
    const h = holds.get(s);
    if (!w && !h && s > online) continue;
    const name = slotName(s, g.maxVcpus);
    let line = `  ${name.padEnd(8)} holds [${(h ?? []).join(', ')}]`;
    if (w) {
      const word = w - 1;
      const owner = lockHolderSlot(m, word);
      line += ` waits for ${byWord.get(word) ?? `word ${word}`} held by ${owner >= 0 ? slotName(owner, g.maxVcpus) : '?'}`;
    }
    if (s >= 1 && s <= online) {
      const vb = vcpuOff(g, s - 1);
      line += `  mode=${MODES[Atomics.load(m, vb + VCPU.off.mode)] ?? '?'} requests=0x${Atomics.load(m, vb + VCPU.off.requests).toString(16)} blocked=${Atomics.load(m, vb + VCPU.off.blocked)}`;
    }
    lines.push(line);
  }
  return lines.join('\n');
}

/** Racy read: does vCPU v's ap_list hold a deliverable interrupt (spec §4.9 predicate)? */
function deliverableOnList(m: Int32Array, g: VmGeometry, v: number): number {
  if (m[g.distBase + DIST.off.enabled] === 0) return -1;
  const vb = vcpuOff(g, v);
  const pmr = m[vb + VCPU.off.pmr]!;
  let r = m[vb + VCPU.off.apHead]!;
  for (let n = 0; r >= 0 && n < g.nrRecords; n++) {
    const b = irqOff(g, r);
    if (irqIsPending(m, b) && m[b + IRQ.off.enabled] && !m[b + IRQ.off.active] && m[b + IRQ.off.priority]! < pmr) return m[b + IRQ.off.intid]!;
    r = m[b + IRQ.off.next]!;
  }
  return -1;
}

/** Find a cycle in the lock wait-for relation (thread -> thread owning the lock it waits on). */
function lockCycle(m: Int32Array, g: VmGeometry): number[] | null {
  const next = new Map<number, number>();
  for (let s = 0; s < g.threadSlots; s++) {
    const w = Atomics.load(m, g.distBase + DIST.off.waitingOn + s);
    if (!w) continue;
    const owner = lockHolderSlot(m, w - 1);
    if (owner >= 0) next.set(s, owner);
  }
  for (const start of next.keys()) {
    const path: number[] = [];
    let cur: number | undefined = start;
    while (cur !== undefined && !path.includes(cur)) {
      path.push(cur);
      cur = next.get(cur);
    }
    if (cur !== undefined) return path.slice(path.indexOf(cur));
  }
  return null;
}

export class Watchdog {
  private timer: NodeJS.Timeout | null = null;
  private readonly since = new Map<string, number>();
  /** The bound in force at the current sample (boundMs stretched by the load factor). */
  private boundNow = 0;
  finding: WatchdogFinding | null = null;

  /** The raw array: the watchdog samples without locks on purpose (not a lockset violation). */
  private readonly m: Int32Array;

  constructor(
    m: Int32Array,
    private readonly g: VmGeometry,
    private readonly onFinding: (f: WatchdogFinding) => void,
    private readonly opts: WatchdogOptions = {},
  ) {
    this.m = unchecked(m);
  }

  start(): void {
    const period = this.opts.periodMs ?? 50;
    this.timer = setInterval(() => this.sample(), period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Persisting for at least the bound? Conditions not seen in this sample are forgotten. */
  private persist(key: string, now: number, seen: Set<string>): boolean {
    seen.add(key);
    const t = this.since.get(key);
    if (t === undefined) {
      this.since.set(key, now);
      return false;
    }
    return now - t >= this.boundNow;
  }

  /** "1000 ms", or "3400 ms (bound 1000 ms x load factor 3.4)" when the load stretched it. */
  private boundText(): string {
    const base = this.opts.boundMs ?? 1000;
    const ms = Math.round(this.boundNow);
    return ms === base ? `${base} ms` : `${ms} ms (bound ${base} ms x load factor ${(this.boundNow / base).toFixed(1)})`;
  }

  sample(): void {
    if (this.finding) return;
    const m = this.m;
    const g = this.g;
    const now = this.opts.now ? this.opts.now() : performance.now();
    this.boundNow = (this.opts.boundMs ?? 1000) * Math.max(1, (this.opts.loadFactor ?? machineLoadFactor)());
    const seen = new Set<string>();
    const online = m[g.distBase + DIST.off.onlineVcpus]!;
    let f: WatchdogFinding | null = null;
    for (let v = 0; v < online && !f; v++) {
      const vb = vcpuOff(g, v);
      if (Atomics.load(m, vb + VCPU.off.blocked)) {
        const intid = deliverableOnList(m, g, v);
        if (intid >= 0 && this.persist(`wfi${v}:${intid}`, now, seen)) {
          f = { kind: 'wfi-lost-wakeup', message: `vcpu${v} blocked in WFI for over ${this.boundText()} while INTID ${intid} is deliverable on its ap_list`, waitFor: '' };
        }
      }
      if (Atomics.load(m, vb + VCPU.off.mode) === 1 && Atomics.load(m, vb + VCPU.off.requests) !== 0) {
        if (this.persist(`kick${v}`, now, seen)) {
          f = { kind: 'lost-kick', message: `vcpu${v} stayed in IN_GUEST_MODE with requests 0x${Atomics.load(m, vb + VCPU.off.requests).toString(16)} pending for over ${this.boundText()} (a kick was lost)`, waitFor: '' };
        }
      }
    }
    const cycle = f ? null : lockCycle(m, g);
    if (cycle && this.persist(`cycle${cycle.join(',')}`, now, seen)) {
      f = { kind: 'deadlock', message: `deadlock: ${cycle.map((s) => slotName(s, g.maxVcpus)).join(' -> ')} -> ${slotName(cycle[0]!, g.maxVcpus)}`, waitFor: '' };
    }
    for (let s = 0; s < g.threadSlots && !f; s++) {
      const w = Atomics.load(m, g.distBase + DIST.off.waitingOn + s);
      // The lock's owner word (holder, last taker, call site) is part of the condition: a lock
      // that changed hands since the last sample is contended, not stuck (an unfair lock can
      // make one waiter lose many hand-offs in a row on a loaded machine), so the wait starts
      // over. A stuck holder or a deadlock leaves the word as it is. (w is the lock word + 1,
      // which is where the owner word lives.)
      if (w && this.persist(`lock${s}:${w}:${Atomics.load(m, w)}`, now, seen)) {
        // The first waiter of a deadlock parks before the second, so its own wait can reach the
        // bound before the cycle has: name the cycle if there is one now.
        const cyc = lockCycle(m, g);
        f = cyc
          ? { kind: 'deadlock', message: `deadlock: ${cyc.map((x) => slotName(x, g.maxVcpus)).join(' -> ')} -> ${slotName(cyc[0]!, g.maxVcpus)}`, waitFor: '' }
          : { kind: 'stuck-on-lock', message: `${slotName(s, g.maxVcpus)} parked on a lock held by the same holder for over ${this.boundText()}`, waitFor: '' };
      }
    }
    for (const k of [...this.since.keys()]) if (!seen.has(k)) this.since.delete(k);
    if (f) {
      f.waitFor = waitForGraph(m, g);
      this.finding = f;
      this.stop();
      this.onFinding(f);
    }
  }
}
