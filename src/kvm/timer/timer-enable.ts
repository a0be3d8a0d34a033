/**
 * The timer's life cycle (kernel arch_timer.c): kvm_timer_init_vm at VM creation,
 * kvm_timer_vcpu_init at vCPU creation, kvm_timer_enable at a vCPU's first run.
 */
import { kvmErr } from '../../uapi/errno.js';
import { IRQ, NR_VCPU_TIMERS, TIMER_CTX, VCPU } from '../../shm/layouts.js';
import { irqOff, vcpuOff } from '../../shm/vm-memory.js';
import type { Host } from '../../vgic/host.js';
import { D } from '../../vgic/host.js';
import { lockConfig, lockIrq, unlockConfig, unlockIrq } from '../../vgic/locks.js';
import { ctxOff, deadlineIdx, HOST_INTID, OWNER_BASE, timerPpi } from './arch-timer.js';
import { physCounter } from './counter.js';
import { DEFAULT_TIMER_PPIS } from '../../uapi/timer.js';
import { LockSite } from '../../sync/lock-sites.js';

/** kvm_timer_init_vm: the default PPIs; the counter's time base. */
export function timerInitVm(h: Host, controlledClock: boolean): void {
  for (let i = 0; i < DEFAULT_TIMER_PPIS.length; i++) h.m[D.timerPpis + i] = DEFAULT_TIMER_PPIS[i]!;
  h.m[D.timerClock] = controlledClock ? 1 : 0;
}

/**
 * kvm_timer_vcpu_init: both timers off (CTL = 0); the VM's virtual offset becomes "now", so the
 * virtual counter starts from 0 at the last vCPU's creation, and the physical offset 0.
 */
export function timerVcpuInit(h: Host, v: number): void {
  const m = h.m;
  for (let t = 0; t < NR_VCPU_TIMERS; t++) m.fill(0, ctxOff(h, v, t), ctxOff(h, v, t) + TIMER_CTX.size);
  m[vcpuOff(h.g, v) + VCPU.off.timerEnabled] = 0;
  h.f[D.timerVoffset / 2] = physCounter(h);
  h.f[D.timerPoffset / 2] = 0;
  h.f[deadlineIdx(h, v)] = Infinity;
}

/**
 * kvm_timer_enable, at vCPU v's first run (after the vgic's map_resources). With an in-kernel
 * vgic: every timer takes ownership of its PPI (kvm_vgic_set_owner: EEXIST if another owner has
 * it) and the PPIs must be distinct, else EINVAL (timer_irqs_are_valid); that makes them
 * immutable; then each PPI is HW-mapped to the host's timer PPI (kvm_vgic_map_phys_irq).
 */
export function timerEnable(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  if (m[vb + VCPU.off.timerEnabled]) return;
  if (m[D.inKernel]) {
    lockConfig(h);
    let valid: boolean;
    try {
      let ppis = 0;
      let owned = 0;
      for (let t = 0; t < NR_VCPU_TIMERS; t++) {
        const r = v * 32 + timerPpi(h, t);
        const b = irqOff(h.g, r);
        lockIrq(h, r, LockSite.Timer);
        const cur = m[b + IRQ.off.owner]!;
        const ok = cur === 0 || cur === OWNER_BASE + t;
        if (ok) m[b + IRQ.off.owner] = OWNER_BASE + t;
        unlockIrq(h, r);
        if (!ok) break;
        owned++;
        ppis |= 1 << timerPpi(h, t);
      }
      let distinct = 0;
      for (let x = ppis; x; x &= x - 1) distinct++;
      valid = owned === NR_VCPU_TIMERS && distinct === NR_VCPU_TIMERS;
      if (valid) m[D.timerPpisImmutable] = 1;
    } finally {
      unlockConfig(h);
    }
    if (!valid) kvmErr('EINVAL', 'incorrectly configured timer irqs (the PPIs must be distinct)');
    for (let t = 0; t < NR_VCPU_TIMERS; t++) {
      const r = v * 32 + timerPpi(h, t);
      const b = irqOff(h.g, r);
      lockIrq(h, r, LockSite.Timer);
      m[b + IRQ.off.hw] = 1;
      m[b + IRQ.off.hwintid] = HOST_INTID[t]!;
      unlockIrq(h, r);
    }
  }
  m[vb + VCPU.off.timerEnabled] = 1;
}
