/**
 * KVM uapi constants for arm64, with the kernel's numbers
 * (include/uapi/linux/kvm.h, arch/arm64/include/uapi/asm/kvm.h).
 */

// KVM_CREATE_DEVICE types (enum kvm_device_type).
export const KVM_DEV_TYPE_FSL_MPIC_20 = 1;
export const KVM_DEV_TYPE_FSL_MPIC_42 = 2;
export const KVM_DEV_TYPE_XICS = 3;
export const KVM_DEV_TYPE_VFIO = 4;
export const KVM_DEV_TYPE_ARM_VGIC_V2 = 5;
export const KVM_DEV_TYPE_FLIC = 6;
export const KVM_DEV_TYPE_ARM_VGIC_V3 = 7;
export const KVM_DEV_TYPE_ARM_VGIC_ITS = 8;
export const KVM_CREATE_DEVICE_TEST = 1;

// Device attribute groups.
export const KVM_DEV_ARM_VGIC_GRP_ADDR = 0;
export const KVM_DEV_ARM_VGIC_GRP_DIST_REGS = 1;
export const KVM_DEV_ARM_VGIC_GRP_CPU_REGS = 2;
export const KVM_DEV_ARM_VGIC_GRP_NR_IRQS = 3;
export const KVM_DEV_ARM_VGIC_GRP_CTRL = 4;
export const KVM_DEV_ARM_VGIC_GRP_REDIST_REGS = 5;
export const KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS = 6;
export const KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO = 7;
export const KVM_DEV_ARM_VGIC_GRP_ITS_REGS = 8;

// CTRL attributes.
export const KVM_DEV_ARM_VGIC_CTRL_INIT = 0;
export const KVM_DEV_ARM_ITS_SAVE_TABLES = 1;
export const KVM_DEV_ARM_ITS_RESTORE_TABLES = 2;
export const KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES = 3;
export const KVM_DEV_ARM_ITS_CTRL_RESET = 4;

// ADDR attributes.
export const KVM_VGIC_V2_ADDR_TYPE_DIST = 0;
export const KVM_VGIC_V2_ADDR_TYPE_CPU = 1;
export const KVM_VGIC_V3_ADDR_TYPE_DIST = 2;
export const KVM_VGIC_V3_ADDR_TYPE_REDIST = 3;
export const KVM_VGIC_ITS_ADDR_TYPE = 4;
export const KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION = 5;

// Frame sizes.
export const KVM_VGIC_V2_DIST_SIZE = 0x1000;
export const KVM_VGIC_V2_CPU_SIZE = 0x2000;
export const KVM_VGIC_V3_DIST_SIZE = 0x10000;
export const KVM_VGIC_V3_REDIST_SIZE = 0x20000;
export const KVM_VGIC_V3_ITS_SIZE = 0x20000;

// REDIST_REGION encoding: count[63:52] | base[51:16] | flags[15:12] | index[11:0].
export const KVM_VGIC_V3_RDIST_INDEX_MASK = 0xfffn;
export const KVM_VGIC_V3_RDIST_FLAGS_SHIFT = 12n;
export const KVM_VGIC_V3_RDIST_FLAGS_MASK = 0xfn << 12n;
export const KVM_VGIC_V3_RDIST_BASE_MASK = ((1n << 52n) - 1n) & ~0xffffn;
export const KVM_VGIC_V3_RDIST_COUNT_SHIFT = 52n;

// DIST_REGS / CPU_REGS attr encoding (v2): cpuid[39:32] | offset[31:0].
export const KVM_DEV_ARM_VGIC_CPUID_SHIFT = 32n;
export const KVM_DEV_ARM_VGIC_CPUID_MASK = 0xffn << 32n;
export const KVM_DEV_ARM_VGIC_OFFSET_MASK = 0xffffffffn;
// v3: mpidr (Aff3.Aff2.Aff1.Aff0) in bits [63:32].
export const KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT = 32n;
export const KVM_DEV_ARM_VGIC_V3_MPIDR_MASK = 0xffffffffn << 32n;
export const KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK = 0xffffn;
// LEVEL_INFO: info[31:10] | vINTID[9:0].
export const KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT = 10;
export const KVM_DEV_ARM_VGIC_LINE_LEVEL_INTID_MASK = 0x3ff;
export const VGIC_LEVEL_INFO_LINE_LEVEL = 0;

// KVM_IRQ_LINE encoding: vcpu2_index[31:28] | type[27:24] | vcpu_index[23:16] | number[15:0].
export const KVM_ARM_IRQ_VCPU2_SHIFT = 28;
export const KVM_ARM_IRQ_VCPU2_MASK = 0xf;
export const KVM_ARM_IRQ_TYPE_SHIFT = 24;
export const KVM_ARM_IRQ_TYPE_MASK = 0xf;
export const KVM_ARM_IRQ_VCPU_SHIFT = 16;
export const KVM_ARM_IRQ_VCPU_MASK = 0xff;
export const KVM_ARM_IRQ_NUM_SHIFT = 0;
export const KVM_ARM_IRQ_NUM_MASK = 0xffff;
export const KVM_ARM_IRQ_TYPE_CPU = 0;
export const KVM_ARM_IRQ_TYPE_SPI = 1;
export const KVM_ARM_IRQ_TYPE_PPI = 2;
export const KVM_ARM_IRQ_CPU_IRQ = 0;
export const KVM_ARM_IRQ_CPU_FIQ = 1;

/** Build a KVM_IRQ_LINE `irq` field. */
export function kvmIrqLineField(type: number, vcpuId: number, num: number): number {
  const vcpu2 = (vcpuId >> 8) & KVM_ARM_IRQ_VCPU2_MASK;
  return (
    ((vcpu2 << KVM_ARM_IRQ_VCPU2_SHIFT) |
      ((type & KVM_ARM_IRQ_TYPE_MASK) << KVM_ARM_IRQ_TYPE_SHIFT) |
      ((vcpuId & KVM_ARM_IRQ_VCPU_MASK) << KVM_ARM_IRQ_VCPU_SHIFT) |
      (num & KVM_ARM_IRQ_NUM_MASK)) >>> 0
  );
}

// KVM_EXIT reasons (include/uapi/linux/kvm.h).
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;

// vCPU requests (arm64 kvm_host.h; KVM_REQUEST_ARCH_BASE = 8, generic ones below it).
export const KVM_REQ_VM_DEAD = 1 << 1;
export const KVM_REQ_UNBLOCK = 1 << 2;
export const KVM_REQ_SLEEP = 1 << 8;
export const KVM_REQ_IRQ_PENDING = 1 << 9;
export const KVM_REQ_VCPU_RESET = 1 << 10;
/** KVM_ARCH_REQ(11): an ap_list entry was deactivated through a DIR trap; prune it. */
export const KVM_REQ_VGIC_PROCESS_UPDATE = 1 << 19;
/**
 * vgic-emu's own request bit (not a kernel number): the VM is being torn down. Carried with the
 * requests so that the guest-entry path needs no extra load to notice it.
 */
export const VGIC_EMU_REQ_STOP = 1 << 30;
/**
 * vgic-emu's own request bit, not a KVM_REQ_*: a signal is pending for the vCPU thread (the
 * kernel checks signal_pending() on guest entry and in kvm_vcpu_block; the bit makes our entry
 * path look, and the VCPU `signal` word holds the state, see vcpu-runner.ts).
 */
export const VGIC_EMU_REQ_SIGNAL = 1 << 29;

// vcpu->mode.
export const OUTSIDE_GUEST_MODE = 0;
export const IN_GUEST_MODE = 1;
export const EXITING_GUEST_MODE = 2;

// vgic constants (include/kvm/arm_vgic.h).
/** The vgic model a VM has (the DIST `model` word): 0 none, 2 GICv2, 3 GICv3 (dist->vgic_model). */
export const VGIC_MODEL_V2 = 2;
export const VGIC_MODEL_V3 = 3;
export const VGIC_NR_SGIS = 16;
export const VGIC_NR_PPIS = 16;
export const VGIC_NR_PRIVATE_IRQS = 32;
export const VGIC_MAX_SPI = 1019;
export const VGIC_MAX_RESERVED = 1023;
export const VGIC_MIN_LPI = 8192;
export const VGIC_NR_IRQS_LEGACY = 256;
export const VGIC_V2_MAX_CPUS = 8;
export const VGIC_V3_MAX_CPUS = 512;
export const VGIC_V3_MAX_LRS = 16;
export const KVM_IRQCHIP_NUM_PINS = 1020 - 32;
export const KVM_VGIC_IMP_REV_2 = 2;
export const KVM_VGIC_IMP_REV_3 = 3;
export const KVM_VGIC_IMP_REV_LATEST = KVM_VGIC_IMP_REV_3;
export const PRODUCT_ID_KVM = 0x4b;
export const IMPLEMENTER_ARM = 0x43b;
export const ICC_IAR_SPURIOUS = 1023;
export const VGIC_ADDR_UNDEF = -1;
/** KVM's default IPA size (KVM_PHYS_SHIFT). */
export const KVM_PHYS_SHIFT_DEFAULT = 40;

// KVM_IRQFD (include/uapi/linux/kvm.h).
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;
/** KVM_IRQFD refuses a gsi at or above this (virt/kvm/eventfd.c, 2025). */
export const KVM_MAX_IRQ_ROUTES = 4096;

// KVM VFIO device (virt/kvm/vfio.c): group FILE (ADD/DEL), and the 2015 forwarding proposal's
// DEVICE group with FORWARD_IRQ / UNFORWARD_IRQ (never merged upstream; numbers from the series).
export const KVM_DEV_VFIO_FILE = 1;
export const KVM_DEV_VFIO_FILE_ADD = 1;
export const KVM_DEV_VFIO_FILE_DEL = 2;
export const KVM_DEV_VFIO_DEVICE = 2;
export const KVM_DEV_VFIO_DEVICE_FORWARD_IRQ = 1;
export const KVM_DEV_VFIO_DEVICE_UNFORWARD_IRQ = 2;

// KVM_SIGNAL_MSI / GSI routing (include/uapi/linux/kvm.h).
export const KVM_MSI_VALID_DEVID = 1 << 0;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
