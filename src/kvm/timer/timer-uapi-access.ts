/**
 * Userspace access to a vCPU's timers: KVM_{GET,SET}_ONE_REG with the KVM_REG_ARM_[P]TIMER_* ids
 * (kernel sys_regs.c arch_timer_{get,set}_user) and the KVM_ARM_VCPU_TIMER_CTRL vCPU attributes
 * (arch_timer.c kvm_arm_timer_{set,get,has}_attr). The caller holds vcpu->mutex, as every vCPU
 * ioctl does, so the vCPU is not running.
 */
import { kvmErr } from '../../uapi/errno.js';
import type { Host } from '../../vgic/host.js';
import { D } from '../../vgic/host.js';
import { lockConfig, unlockConfig } from '../../vgic/locks.js';
import { physCounter } from './counter.js';
import { PTIMER, timerCounter, timerRearm, VTIMER } from './arch-timer.js';
import { timerReadCtl, timerReadCval, timerWriteCtl, timerWriteCval } from './timer-regs.js';
import {
  ARCH_TIMER_CTRL_IT_STAT, KVM_ARM_VCPU_TIMER_CTRL, KVM_ARM_VCPU_TIMER_IRQ_HPTIMER, KVM_ARM_VCPU_TIMER_IRQ_VTIMER,
  KVM_REG_ARM_PTIMER_CNT, KVM_REG_ARM_PTIMER_CTL, KVM_REG_ARM_PTIMER_CVAL, KVM_REG_ARM_TIMER_CNT, KVM_REG_ARM_TIMER_CTL,
  KVM_REG_ARM_TIMER_CVAL,
} from '../../uapi/timer.js';

/** The model's counters are doubles: exact up to 2^53 ticks. */
const MAX_COUNTER = 2n ** 53n;

/** The register ids this module serves (KVM_GET_REG_LIST's timer part). */
export const TIMER_REG_IDS: readonly bigint[] = [
  KVM_REG_ARM_TIMER_CTL, KVM_REG_ARM_TIMER_CNT, KVM_REG_ARM_TIMER_CVAL,
  KVM_REG_ARM_PTIMER_CTL, KVM_REG_ARM_PTIMER_CNT, KVM_REG_ARM_PTIMER_CVAL,
];

export function isTimerReg(id: bigint): boolean {
  return TIMER_REG_IDS.includes(id);
}

/** KVM_GET_ONE_REG of a timer register. CTL carries ISTATUS when the timer condition is met. */
export function timerGetReg(h: Host, v: number, id: bigint): bigint {
  switch (id) {
    case KVM_REG_ARM_TIMER_CTL: return BigInt(timerReadCtl(h, v, VTIMER));
    case KVM_REG_ARM_PTIMER_CTL: return BigInt(timerReadCtl(h, v, PTIMER));
    case KVM_REG_ARM_TIMER_CVAL: return timerReadCval(h, v, VTIMER);
    case KVM_REG_ARM_PTIMER_CVAL: return timerReadCval(h, v, PTIMER);
    case KVM_REG_ARM_TIMER_CNT: return BigInt(timerCounter(h, VTIMER));
    case KVM_REG_ARM_PTIMER_CNT: return BigInt(timerCounter(h, PTIMER));
  }
  kvmErr('ENOENT', `no register with id 0x${id.toString(16)}`);
}

/**
 * KVM_SET_ONE_REG of a timer register. ISTATUS is read-only. Writing a counter does not store
 * it: it sets the VM-wide offset so that the counter reads that value now, for every vCPU (the
 * kernel's timer_set_offset on the VM offset), which is how a VMM restores time.
 */
export function timerSetReg(h: Host, v: number, id: bigint, value: bigint): void {
  const val = BigInt.asUintN(64, value);
  switch (id) {
    case KVM_REG_ARM_TIMER_CTL: return timerWriteCtl(h, v, VTIMER, Number(val & 0xffffffffn) & ~ARCH_TIMER_CTRL_IT_STAT);
    case KVM_REG_ARM_PTIMER_CTL: return timerWriteCtl(h, v, PTIMER, Number(val & 0xffffffffn) & ~ARCH_TIMER_CTRL_IT_STAT);
    case KVM_REG_ARM_TIMER_CVAL: return timerWriteCval(h, v, VTIMER, val);
    case KVM_REG_ARM_PTIMER_CVAL: return timerWriteCval(h, v, PTIMER, val);
    case KVM_REG_ARM_TIMER_CNT:
    case KVM_REG_ARM_PTIMER_CNT: {
      if (val >= MAX_COUNTER) kvmErr('EINVAL', 'counter values from 2^53 ticks on are not representable in this model');
      const idx = id === KVM_REG_ARM_TIMER_CNT ? D.timerVoffset / 2 : D.timerPoffset / 2;
      h.f[idx] = physCounter(h) - Number(val);
      timerRearm(h, v);
      return;
    }
  }
  kvmErr('ENOENT', `no register with id 0x${id.toString(16)}`);
}

function timerAttrIndex(attr: number): number {
  if (!Number.isInteger(attr) || attr < KVM_ARM_VCPU_TIMER_IRQ_VTIMER || attr > KVM_ARM_VCPU_TIMER_IRQ_HPTIMER) {
    kvmErr('ENXIO', `no timer attribute ${attr}`);
  }
  return attr;
}

function checkGroup(group: number): void {
  // PMU (group 0) and PV time (group 2) are not modelled: no vCPU has those features.
  if (group !== KVM_ARM_VCPU_TIMER_CTRL) kvmErr('ENXIO', `vCPU attribute group ${group} is not supported`);
}

/**
 * KVM_ARM_VCPU_TIMER_CTRL set: the PPI of one timer, for the whole VM (every vCPU shares it).
 * EINVAL without an in-kernel irqchip or for a non-PPI; EBUSY once a vCPU has run (the PPIs are
 * immutable then). Distinctness is judged at the first run (kvm_timer_enable: EINVAL).
 */
export function timerSetAttr(h: Host, group: number, attr: number, value: unknown): void {
  checkGroup(group);
  if (!h.m[D.inKernel]) kvmErr('EINVAL', 'timer attributes need an in-kernel irqchip');
  if (typeof value !== 'number' || !Number.isInteger(value)) kvmErr('EFAULT', 'the timer attribute value must be an int');
  if (value < 16 || value >= 32) kvmErr('EINVAL', `IRQ ${value} is not a PPI`);
  lockConfig(h);
  try {
    if (h.m[D.timerPpisImmutable]) kvmErr('EBUSY', 'a vCPU has run: the timer PPIs are fixed');
    h.m[D.timerPpis + timerAttrIndex(attr)] = value;
  } finally {
    unlockConfig(h);
  }
}

export function timerGetAttr(h: Host, group: number, attr: number): number {
  checkGroup(group);
  return h.m[D.timerPpis + timerAttrIndex(attr)]!;
}

export function timerHasAttr(group: number, attr: number): void {
  checkGroup(group);
  timerAttrIndex(attr);
}
