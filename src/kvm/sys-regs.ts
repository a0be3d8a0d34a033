/**
 * The system registers a guest reaches (the kernel's sys_regs.c table, for what vgic-emu models):
 * the vgic's GICv3 CPU interface (vgic/sysregs.ts) and the generic timer (kvm/timer). The vgic
 * does not know the timer; this table is where the two meet.
 */
import { ICC_SYSREG_NAMES, ICC_SYSREGS, type SysregDesc } from '../vgic/sysregs.js';
import { TIMER_SYSREG_NAMES, TIMER_SYSREGS } from './timer/timer-sysregs.js';

export const SYSREG_NAMES = [...ICC_SYSREG_NAMES, ...TIMER_SYSREG_NAMES] as const;
export type SysregName = (typeof SYSREG_NAMES)[number];

export const SYSREGS: readonly SysregDesc[] = [...ICC_SYSREGS, ...TIMER_SYSREGS];
export const SYSREGS_BY_NAME: ReadonlyMap<string, SysregDesc> = new Map(SYSREGS.map((r) => [r.name, r]));
