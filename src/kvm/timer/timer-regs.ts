/**
 * CNTx_CTL/CVAL/TVAL of a vCPU's timers: read and written by the guest (its own thread, no trap)
 * and by userspace (ONE_REG, under vcpu->mutex). Every write re-arms the deadline.
 */
import { TIMER_CTX } from '../../shm/layouts.js';
import type { Host } from '../../vgic/host.js';
import { ctxOff, cvalOf, EN_MASK, timerCounter, timerRearm, TWO32 } from './arch-timer.js';
import { ARCH_TIMER_CTRL_ENABLE, ARCH_TIMER_CTRL_IT_STAT } from '../../uapi/timer.js';

/** CNTx_CTL_EL0: ENABLE and IMASK as written, ISTATUS when enabled and the condition is met. */
export function timerReadCtl(h: Host, v: number, t: number): number {
  const c = ctxOff(h, v, t);
  const ctl = h.m[c + TIMER_CTX.off.ctl]!;
  const met = (ctl & ARCH_TIMER_CTRL_ENABLE) !== 0 && timerCounter(h, t) >= cvalOf(h.m, c);
  return met ? ctl | ARCH_TIMER_CTRL_IT_STAT : ctl;
}

/** ISTATUS is read-only; RES0 bits are dropped. */
export function timerWriteCtl(h: Host, v: number, t: number, value: number): void {
  h.m[ctxOff(h, v, t) + TIMER_CTX.off.ctl] = value & EN_MASK;
  timerRearm(h, v);
}

export function timerReadCval(h: Host, v: number, t: number): bigint {
  const c = ctxOff(h, v, t);
  return (BigInt(h.m[c + TIMER_CTX.off.cvalHi]! >>> 0) << 32n) | BigInt(h.m[c + TIMER_CTX.off.cvalLo]! >>> 0);
}

export function timerWriteCval(h: Host, v: number, t: number, value: bigint): void {
  const c = ctxOff(h, v, t);
  const x = BigInt.asUintN(64, value);
  h.m[c + TIMER_CTX.off.cvalLo] = Number(x & 0xffffffffn) | 0;
  h.m[c + TIMER_CTX.off.cvalHi] = Number(x >> 32n) | 0;
  timerRearm(h, v);
}

/** CNTx_TVAL_EL0: (CVAL - counter)[31:0], a signed 32-bit count-down (bits [63:32] RES0). */
export function timerReadTval(h: Host, v: number, t: number): number {
  const now = timerCounter(h, t);
  const nowLo = ((now % TWO32) + TWO32) % TWO32;
  return (h.m[ctxOff(h, v, t) + TIMER_CTX.off.cvalLo]! - nowLo) >>> 0;
}

/** Writing TVAL sets CVAL = counter + SignExtend(TVAL[31:0]) (modulo 2^64). */
export function timerWriteTval(h: Host, v: number, t: number, value: number): void {
  const x = timerCounter(h, t) + (value | 0);
  const hi = Math.floor(x / TWO32);
  const c = ctxOff(h, v, t);
  h.m[c + TIMER_CTX.off.cvalLo] = (x - hi * TWO32) | 0;
  h.m[c + TIMER_CTX.off.cvalHi] = hi | 0;
  timerRearm(h, v);
}
