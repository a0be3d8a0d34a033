/** Naming what went wrong in a stress run: error classes, the vCPUs' state, deadlock and livelock kinds. */
import { DIST, EXIT_REASONS, IRQ, VCPU, VCPU_COUNTERS } from '../../shm/layouts.js';
import type { Layout } from '../../shm/layout.js';
import { irqOff, vcpuOff, type VmGeometry } from '../../shm/vm-memory.js';
import { LockOrderError } from '../../sync/lockdep.js';
import { D } from '../../vgic/host.js';
import { unchecked } from '../../check/lockset/view.js';
import type { Finding } from '../findings.js';

export function classifyError(e: unknown): Finding {
  const err = e as Error & { vcpu?: number; report?: string };
  const where = err.vcpu !== undefined && err.vcpu >= 0 ? ` on vCPU ${err.vcpu}` : '';
  if (e instanceof LockOrderError) return { kind: 'lock-order', message: `lock order violation${where}`, details: err.report };
  if (/invariant violated: bounded delivery/.test(err.message)) {
    // The first line says what; the rest (the vCPU's state) goes with the stack.
    const nl = err.message.indexOf('\n');
    return { kind: 'bounded-delivery', message: `${nl < 0 ? err.message : err.message.slice(0, nl)}${where}`, details: err.stack };
  }
  if (/invariant violated/.test(err.message)) return { kind: 'invariant', message: `${err.message}${where}`, details: err.stack };
  return { kind: 'fault', message: `${err.name}: ${err.message}${where}`, details: err.stack };
}

const MODES = ['OUTSIDE', 'IN_GUEST', 'EXITING'];

export function vcpuStates(checked: Int32Array, g: VmGeometry, n: number): string {
  // A diagnostic snapshot after a timeout or stall, lock-free by design: not the model's access,
  // so not the lockset checker's business (it reported these reads as violations).
  const m = unchecked(checked);
  const lines: string[] = ['vCPU states:'];
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    const list: number[] = [];
    for (let r = m[vb + VCPU.off.apHead]!, k = 0; r >= 0 && k < 64; k++) {
      list.push(m[irqOff(g, r) + IRQ.off.intid]!);
      r = m[irqOff(g, r) + IRQ.off.next]!;
    }
    const ctr = VCPU_COUNTERS.map((c, i) => `${c}=${m[vb + VCPU.off.counters + i]}`).join(' ');
    const ex = EXIT_REASONS.map((c, i) => `${c}=${m[vb + VCPU.off.exits + i]}`).join(' ');
    lines.push(`  vcpu${v}: ${ctr}; exits ${ex}`);
    lines.push(`  vcpu${v}: mode=${MODES[m[vb + VCPU.off.mode]!]} requests=0x${m[vb + VCPU.off.requests]!.toString(16)} blocked=${m[vb + VCPU.off.blocked]} wake=${m[vb + VCPU.off.wake]} ap_list=[${list.join(',')}] usedLrs=${m[vb + VCPU.off.usedLrs]}`);
  }
  return lines.join('\n');
}

/** Everyone blocked: a vCPU asleep in WFI with a deliverable IRQ queued is a lost wake-up. */
export function classifyDeadlock(checked: Int32Array, g: VmGeometry, n: number): Finding['kind'] {
  const m = unchecked(checked); // a diagnostic snapshot, as vcpuStates: not the model's access
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    if (m[vb + VCPU.off.blocked] && m[vb + VCPU.off.apHead]! >= 0 && m[D.enabled]) return 'lost-wakeup';
  }
  return 'deadlock';
}

/** Out of steps with a vCPU in guest mode holding an unserved request: the kick was lost. */
export function classifyLivelock(checked: Int32Array, g: VmGeometry, n: number): Finding['kind'] {
  const m = unchecked(checked); // a diagnostic snapshot, as vcpuStates: not the model's access
  for (let v = 0; v < n; v++) {
    const vb = vcpuOff(g, v);
    if (m[vb + VCPU.off.mode] === 1 && m[vb + VCPU.off.requests] !== 0) return 'lost-kick';
  }
  return 'livelock';
}

function fieldAt(l: Layout<string>, off: number): string {
  const f = l.fields.find((x) => off >= x.offset && off < x.offset + x.words);
  return f ? f.name : `+${off}`;
}

/** A VM word by what it is (`vcpu0.wake`, `dist.irqfdWork`, `irq record 40.lock`), for reports. */
export function vmWordName(g: VmGeometry, w: number): string {
  if (w >= g.distBase && w < g.distBase + DIST.size) return `dist.${fieldAt(DIST, w - g.distBase)}`;
  if (w >= g.vcpuBase && w < g.vcpuBase + g.maxVcpus * VCPU.size) {
    const v = Math.floor((w - g.vcpuBase) / VCPU.size);
    return `vcpu${v}.${fieldAt(VCPU, w - vcpuOff(g, v))}`;
  }
  if (w >= g.irqBase && w < g.irqBase + g.nrRecords * IRQ.size) {
    const r = Math.floor((w - g.irqBase) / IRQ.size);
    return `irq record ${r}.${fieldAt(IRQ, w - irqOff(g, r))}`;
  }
  return `word ${w}`;
}
