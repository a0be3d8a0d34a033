/**
 * The vgic's register attribute groups (kernel vgic-kvm-device.c vgic_v2_attr_regs_access,
 * vgic_v3_attr_regs_access; spec §7.4): DIST_REGS and CPU_REGS (v2); DIST_REGS, REDIST_REGS,
 * CPU_SYSREGS and LEVEL_INFO (v3). Every access runs with kvm->lock, every vCPU mutex (try-lock:
 * EBUSY while a vCPU runs) and config_lock, then uses the same register tables as guest MMIO.
 */
import { kvmErr } from './errno.js';
import {
  KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
  KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT,
  KVM_DEV_ARM_VGIC_LINE_LEVEL_INTID_MASK, KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK, VGIC_LEVEL_INFO_LINE_LEVEL,
} from './uapi.js';
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { dw } from '../vgic/host.js';
import { vgicInit } from '../vgic/init.js';
import {
  cpuRegsUaccess, distUaccess, hasCpuReg, hasDistReg, hasRedistReg, levelInfoUaccess, redistUaccess,
} from '../vgic/mmio/dispatch.js';
import { hasSysreg, sysregUaccess } from '../vgic/sysregs.js';
import { withAllVcpusLocked } from './vcpu-locks.js';

const U32 = 0xffffffffn;

function isV2(h: Host): boolean {
  return h.m[dw(h, 'model')] === 2;
}

/** v2: cpuid[39:32]; v3: MPIDR-format affinity in [63:32] naming a vCPU. Returns the vCPU id. */
function attrVcpu(h: Host, attr: bigint, group: number): number {
  const online = h.m[dw(h, 'onlineVcpus')]!;
  if (isV2(h)) {
    const id = Number((attr >> 32n) & 0xffn);
    if (id >= online) kvmErr('EINVAL', `no vCPU ${id}`);
    return id;
  }
  // GICv3 DIST_REGS always act through vCPU 0, which must exist.
  if (group === KVM_DEV_ARM_VGIC_GRP_DIST_REGS) {
    if (online === 0) kvmErr('EINVAL', 'DIST_REGS need at least one vCPU');
    return 0;
  }
  const aff = Number((attr >> 32n) & U32);
  const want = aff & 0xffffff;
  if (aff >>> 24 !== 0) kvmErr('EINVAL', `no vCPU with affinity 0x${aff.toString(16)}`);
  for (let v = 0; v < online; v++) if (h.m[vcpuOff(h.g, v) + VCPU.off.mpidr] === want) return v;
  kvmErr('EINVAL', `no vCPU with affinity 0x${aff.toString(16)}`);
}

function access(h: Host, group: number, attr: bigint, isWrite: boolean, value: bigint): bigint {
  const v = attrVcpu(h, attr, group);
  return withAllVcpusLocked(h, () => {
    if (isV2(h)) vgicInit(h); // v2 initialises lazily on userspace register access
    else if (!Atomics.load(h.m, dw(h, 'initialized'))) kvmErr('EBUSY', 'GICv3 not initialised');
    const off = Number(attr & U32);
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

export function regsSetAttr(h: Host, group: number, attr: bigint, value: bigint): void {
  access(h, group, attr, true, value);
}

export function regsGetAttr(h: Host, group: number, attr: bigint): bigint {
  return access(h, group, attr, false, 0n);
}

/** KVM_HAS_DEVICE_ATTR for the register groups: ENXIO for registers that do not exist. */
export function regsHasAttr(h: Host, group: number, attr: bigint): void {
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
