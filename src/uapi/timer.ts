/**
 * Arch timer uapi numbers (arch/arm64/include/uapi/asm/kvm.h) and architectural constants
 * (CNTx_CTL_EL0 bits, the host's timer PPIs).
 */

/** vCPU device-attribute groups (KVM_SET_DEVICE_ATTR on a vCPU fd). */
export const KVM_ARM_VCPU_PMU_V3_CTRL = 0;
export const KVM_ARM_VCPU_TIMER_CTRL = 1;
export const KVM_ARM_VCPU_PVTIME_CTRL = 2;
/** KVM_ARM_VCPU_TIMER_CTRL attributes: the PPI of each timer (an int). */
export const KVM_ARM_VCPU_TIMER_IRQ_VTIMER = 0;
export const KVM_ARM_VCPU_TIMER_IRQ_PTIMER = 1;
export const KVM_ARM_VCPU_TIMER_IRQ_HVTIMER = 2;
export const KVM_ARM_VCPU_TIMER_IRQ_HPTIMER = 3;

/** Default PPIs (kernel default_ppi[]), by attribute number: vtimer 27, ptimer 30, hvtimer 28, hptimer 26. */
export const DEFAULT_TIMER_PPIS: readonly number[] = [27, 30, 28, 26];

/** ONE_REG ids: KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | encoding. */
export const KVM_REG_ARM64 = 0x6000000000000000n;
export const KVM_REG_SIZE_U64 = 0x0030000000000000n;
export const KVM_REG_ARM64_SYSREG = 0x0013n << 16n;

export function arm64SysReg(op0: number, op1: number, crn: number, crm: number, op2: number): bigint {
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG | BigInt((op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2);
}

export const KVM_REG_ARM_PTIMER_CTL = arm64SysReg(3, 3, 14, 2, 1);
export const KVM_REG_ARM_PTIMER_CVAL = arm64SysReg(3, 3, 14, 2, 2);
export const KVM_REG_ARM_PTIMER_CNT = arm64SysReg(3, 3, 14, 0, 1);
/**
 * The uapi swapped these two by accident and keeps them swapped (it is ABI): TIMER_CVAL carries
 * CNTVCT_EL0's encoding and TIMER_CNT CNTV_CVAL_EL0's. The ids below are the uapi's.
 */
export const KVM_REG_ARM_TIMER_CTL = arm64SysReg(3, 3, 14, 3, 1);
export const KVM_REG_ARM_TIMER_CVAL = arm64SysReg(3, 3, 14, 0, 2);
export const KVM_REG_ARM_TIMER_CNT = arm64SysReg(3, 3, 14, 3, 2);

/** CNTx_CTL_EL0 bits. */
export const ARCH_TIMER_CTRL_ENABLE = 1;
export const ARCH_TIMER_CTRL_IT_MASK = 2;
export const ARCH_TIMER_CTRL_IT_STAT = 4;

/**
 * The host's own timer PPIs (its device tree's): the physical INTIDs a HW-mapped timer LR
 * carries, whatever PPI the guest was given. Host PPIs are per CPU; here a vCPU's thread is
 * its CPU.
 */
export const HOST_VTIMER_INTID = 27;
export const HOST_PTIMER_INTID = 30;
