/**
 * The generic timer's EL0 system registers as rows of the sysreg table (vgic/sysregs.ts). On a
 * VHE host KVM lets the guest use them without trapping (the EL1 physical timer too), so these
 * are "hardware": they act on the vCPU's timer contexts on its own thread, with no exit. A write
 * that makes a timer fire is taken at the next instruction boundary (GuestCpu).
 */
import type { SysregDesc } from '../../vgic/sysregs.js';
import { CNTFRQ_HZ } from './counter.js';
import { PTIMER, timerCounter, VTIMER } from './arch-timer.js';
import { timerReadCtl, timerReadCval, timerReadTval, timerWriteCtl, timerWriteCval, timerWriteTval } from './timer-regs.js';

export const TIMER_SYSREG_NAMES = [
  'CNTFRQ_EL0',
  'CNTPCT_EL0',
  'CNTVCT_EL0',
  'CNTP_TVAL_EL0',
  'CNTP_CTL_EL0',
  'CNTP_CVAL_EL0',
  'CNTV_TVAL_EL0',
  'CNTV_CTL_EL0',
  'CNTV_CVAL_EL0',
] as const;

type TimerSysregName = (typeof TIMER_SYSREG_NAMES)[number];
type Row = Pick<SysregDesc, 'read' | 'write'> & { name: TimerSysregName };

function row(name: TimerSysregName, crm: number, op2: number, d: Omit<Row, 'name'>): SysregDesc {
  const enc = (3 << 14) | (3 << 11) | (14 << 7) | (crm << 3) | op2;
  return { name, op0: 3, op1: 3, crn: 14, crm, op2, enc, ...d } as SysregDesc;
}

/** CTL, CVAL and TVAL of timer t at CRm = crm (2: CNTP_*, 3: CNTV_*). */
function timerRows(t: number, crm: number, names: [TimerSysregName, TimerSysregName, TimerSysregName]): SysregDesc[] {
  return [
    row(names[0], crm, 0, {
      read: (cpu) => BigInt(timerReadTval(cpu.h, cpu.v, t)),
      write: (cpu, v) => timerWriteTval(cpu.h, cpu.v, t, Number(v & 0xffffffffn)),
    }),
    row(names[1], crm, 1, {
      read: (cpu) => BigInt(timerReadCtl(cpu.h, cpu.v, t)),
      write: (cpu, v) => timerWriteCtl(cpu.h, cpu.v, t, Number(v & 0xffffffffn)),
    }),
    row(names[2], crm, 2, {
      read: (cpu) => timerReadCval(cpu.h, cpu.v, t),
      write: (cpu, v) => timerWriteCval(cpu.h, cpu.v, t, v),
    }),
  ];
}

export const TIMER_SYSREGS: readonly SysregDesc[] = [
  // CNTFRQ_EL0 is writable only at the highest EL; for the guest it reads the frequency.
  row('CNTFRQ_EL0', 0, 0, { read: () => BigInt(CNTFRQ_HZ) }),
  row('CNTPCT_EL0', 0, 1, { read: (cpu) => BigInt(timerCounter(cpu.h, PTIMER)) }),
  row('CNTVCT_EL0', 0, 2, { read: (cpu) => BigInt(timerCounter(cpu.h, VTIMER)) }),
  ...timerRows(PTIMER, 2, ['CNTP_TVAL_EL0', 'CNTP_CTL_EL0', 'CNTP_CVAL_EL0']),
  ...timerRows(VTIMER, 3, ['CNTV_TVAL_EL0', 'CNTV_CTL_EL0', 'CNTV_CVAL_EL0']),
];
