/**
 * The vgic's register attribute groups (kernel vgic-kvm-device.c vgic_v2_attr_regs_access,
 * vgic_v3_attr_regs_access; spec §7.4): DIST_REGS and CPU_REGS (v2); DIST_REGS, REDIST_REGS,
 * CPU_SYSREGS and LEVEL_INFO (v3). Every access runs with kvm->lock, every vCPU mutex (try-lock:
 * EBUSY while a vCPU runs) and config_lock, then uses the same register tables as guest MMIO.
 */
import { kvmErr } from '../uapi/errno.js';
import {
  KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT,
  KVM_DEV_ARM_VGIC_LINE_LEVEL_INTID_MASK, KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK, VGIC_LEVEL_INFO_LINE_LEVEL,
} from '../uapi/kvm.js';
import type { Host } from '../vgic/host.js';
import { dw } from '../vgic/host.js';
import { vgicInit } from '../vgic/init.js';
import {
  cpuRegsUaccess, distUaccess, hasCpuReg, hasDistReg, hasRedistReg, levelInfoUaccess, redistUaccess,
} from '../vgic/mmio/dispatch.js';
import { hasSysreg, sysregUaccess } from '../vgic/sysregs.js';
import { withAllVcpusLocked } from './vcpu-locks.js';
import { getUserU64 } from './user-copy.js';
import { mpidrToVcpu } from '../vgic/affinity.js';
import { vcpuIdxById } from '../vgic/vcpu-id.js';
import { GICD_IIDR, GICD_TYPER2 } from '../vgic/mmio/offsets.js';

const U32 = 0xffffffffn;

function isV2(h: Host): boolean {
  return h.m[dw(h, 'model')] === 2;
}

/**
 * The vCPU an attribute names, as a vcpu_idx. v2 (vgic_v2_parse_attr): cpuid[39:32] is a vcpu_id,
 * looked up with kvm_get_vcpu_by_id. v3 (vgic_v3_parse_attr): an MPIDR-format affinity in [63:32]
 * (kvm_mpidr_to_vcpu), except DIST_REGS, which act through the first vCPU created
 * (kvm_get_vcpu(kvm, 0)). EINVAL when there is no such vCPU.
 */
function attrVcpu(h: Host, attr: bigint, group: number): number {
  if (isV2(h)) {
    const id = Number((attr >> 32n) & 0xffn);
    const v = vcpuIdxById(h, id);
    if (v < 0) kvmErr('EINVAL', `no vCPU with id ${id}`);
    return v;
  }
  if (group === KVM_DEV_ARM_VGIC_GRP_DIST_REGS) {
    if (h.m[dw(h, 'onlineVcpus')] === 0) kvmErr('EINVAL', 'DIST_REGS need at least one vCPU');
    return 0;
  }
  const aff = Number((attr >> 32n) & U32);
  // kvm_mpidr_to_vcpu compares Aff3..Aff0; no vCPU has an Aff3 here.
  const v = aff >>> 24 !== 0 ? -1 : mpidrToVcpu(h, aff & 0xffffff);
  if (v < 0) kvmErr('EINVAL', `no vCPU with affinity 0x${aff.toString(16)}`);
  return v;
}

/**
 * reg_allowed_pre_init (vgic-kvm-device.c): the GICv3 DIST_REGS registers userspace may read and
 * write before CTRL_INIT, GICD_IIDR and GICD_TYPER2. Their handlers touch only scalar distributor
 * state (implementation revision, nASSGIcap), never the SPI records vgic_init sets up.
 */
function regAllowedPreInit(group: number, off: number): boolean {
  return group === KVM_DEV_ARM_VGIC_GRP_DIST_REGS && (off === GICD_IIDR || off === GICD_TYPER2);
}

function access(h: Host, group: number, attr: bigint, isWrite: boolean, user: unknown): bigint {
  const v = attrVcpu(h, attr, group);
  // get_user after the vCPU lookup (vgic_v[23]_attr_regs_access): a bad attr is EINVAL first.
  const value = isWrite ? getUserU64(user, `vgic register attr group ${group}`) : 0n;
  return withAllVcpusLocked(h, () => {
    const off = Number(attr & U32);
    if (isV2(h)) vgicInit(h); // v2 initialises lazily on userspace register access
    else if (!Atomics.load(h.m, dw(h, 'initialized')) && !regAllowedPreInit(group, off)) kvmErr('EBUSY', 'GICv3 not initialised');
    const val = Number(value & U32);
    switch (group) {
      case KVM_DEV_ARM_VGIC_GRP_DIST_REGS:
        return BigInt(distUaccess(h, v, off, isWrite, val) >>> 0);
      case KVM_DEV_ARM_VGIC_GRP_REDIST_REGS:
        return BigInt(redistUaccess(h, v, off, isWrite, val) >>> 0);
      case KVM_DEV_ARM_VGIC_GRP_CPU_REGS:
        return BigInt(cpuRegsUaccess(h, v, off, isWrite, val) >>> 0);
      case KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS: {
        const enc = Number(attr & KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK);
        if (!hasSysreg(enc)) kvmErr('ENXIO', `unknown CPU system register encoding 0x${enc.toString(16)}`);
        return sysregUaccess(h, v, enc, isWrite, value);
      }
      case KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO: {
        const info = off >>> KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT;
        const intid = off & KVM_DEV_ARM_VGIC_LINE_LEVEL_INTID_MASK;
        if (info !== VGIC_LEVEL_INFO_LINE_LEVEL || intid % 32 !== 0) kvmErr('EINVAL', 'LEVEL_INFO needs LINE_LEVEL and a vINTID multiple of 32');
        return BigInt(levelInfoUaccess(h, v, intid, isWrite, val) >>> 0);
      }
      default:
        kvmErr('ENXIO', `unknown attribute group ${group}`);
    }
  });
}

export function regsSetAttr(h: Host, group: number, attr: bigint, value: unknown): void {
  access(h, group, attr, true, value);
}

export function regsGetAttr(h: Host, group: number, attr: bigint): bigint {
  return access(h, group, attr, false, 0n);
}

/** KVM_HAS_DEVICE_ATTR for the register groups: ENXIO for registers that do not exist. */
export function regsHasAttr(h: Host, group: number, attr: bigint): void {
  // vgic_v2_has_attr_regs / vgic_v3_has_attr_regs start with the attr's vCPU lookup
  // (vgic_v[23]_parse_attr): no such vCPU is EINVAL, before the register is looked up.
  // LEVEL_INFO is answered from the attr alone (vgic_v3_has_attr).
  if (group !== KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO) attrVcpu(h, attr, group);
  const off = Number(attr & U32);
  let ok: boolean;
  switch (group) {
    case KVM_DEV_ARM_VGIC_GRP_DIST_REGS:
      ok = off % 4 === 0 && hasDistReg(h, off);
      break;
    case KVM_DEV_ARM_VGIC_GRP_REDIST_REGS:
      ok = off % 4 === 0 && hasRedistReg(h, off);
      break;
    case KVM_DEV_ARM_VGIC_GRP_CPU_REGS:
      ok = off % 4 === 0 && hasCpuReg(h, off);
      break;
    case KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS:
      ok = hasSysreg(Number(attr & KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK));
      break;
    case KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO:
      ok = off >>> KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT === VGIC_LEVEL_INFO_LINE_LEVEL;
      break;
    default:
      ok = false;
  }
  if (!ok) kvmErr('ENXIO', `no register at group ${group} attr 0x${attr.toString(16)}`);
}
