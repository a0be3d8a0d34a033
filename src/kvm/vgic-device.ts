/**
 * The vgic KVM device (kernel vgic-kvm-device.c): creation rules (spec §7.1) and the attribute
 * groups ADDR, NR_IRQS, CTRL, plus the register groups (vgic-regs-attr.ts). Attribute numbers and
 * values are `bigint` where the kernel's are u64.
 */
import { DEVICE_ATTR_IOCTLS, nameIoctls } from './ioctl-names.js';
import { checkVmUsable } from './vm-closed.js';
import { kvmErr } from '../uapi/errno.js';
import {
  KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
  KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_TYPE_ARM_VGIC_V2, KVM_VGIC_V2_ADDR_TYPE_CPU,
  KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V2_CPU_SIZE, KVM_VGIC_V2_DIST_SIZE, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
  KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, KVM_VGIC_V3_DIST_SIZE, KVM_VGIC_V3_RDIST_BASE_MASK, KVM_VGIC_V3_RDIST_COUNT_SHIFT,
  KVM_VGIC_V3_RDIST_FLAGS_MASK, KVM_VGIC_V3_RDIST_INDEX_MASK, KVM_VGIC_V3_REDIST_SIZE, VGIC_MAX_RESERVED, VGIC_V2_MAX_CPUS,
  VGIC_V3_MAX_CPUS,
} from '../uapi/kvm.js';
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from '../vgic/host.js';
import { dw } from '../vgic/host.js';
import { initPrivateIrqs, resetCpuInterface, vgicInit } from '../vgic/init.js';
import { lockConfig, lockKvm, unlockConfig, unlockKvm, withConfigLock } from '../vgic/locks.js';
import { addRegion, placeAllRedists, rdistOverlap, readRegion, regionSize, removeLastRegion } from '../vgic/rdist.js';
import { lockAllVcpus, unlockAllVcpus, withAllVcpusLocked } from './vcpu-locks.js';
import { savePendingTables } from '../vgic/lpi.js';
import { regsGetAttr, regsHasAttr, regsSetAttr } from './vgic-regs-attr.js';
import { deviceAttr, getUserU64 } from './user-copy.js';

export interface KvmDevice {
  readonly type: number;
  /** `value`: a u64 for the vgic; a struct (object) for the KVM VFIO device's attributes. */
  setAttr(group: number, attr: bigint | number, value?: bigint | number | object | null): void;
  getAttr(group: number, attr: bigint | number, value?: bigint | number | null): bigint;
  hasAttr(group: number, attr: bigint | number): void;
}

const U64_ALL_ONES = (1n << 64n) - 1n;

/** kvm_vgic_create (spec §7.1), called with kvm->lock held. */
export function vgicCreate(h: Host, type: number): void {
  const v2 = type === KVM_DEV_TYPE_ARM_VGIC_V2;
  lockAllVcpus(h);
  try {
    lockConfig(h);
    try {
      const m = h.m;
      if (m[dw(h, 'inKernel')]) kvmErr('EEXIST', 'a vgic already exists for this VM');
      const online = m[dw(h, 'onlineVcpus')]!;
      for (let v = 0; v < online; v++) if (m[vcpuOff(h.g, v) + VCPU.off.ranOnce]) kvmErr('EBUSY', `vCPU ${v} has already run`);
      const max = v2 ? VGIC_V2_MAX_CPUS : VGIC_V3_MAX_CPUS;
      if (online > max) kvmErr('E2BIG', `${online} vCPUs exceed the ${v2 ? 'GICv2' : 'GICv3'} limit of ${max}`);
      m[dw(h, 'model')] = v2 ? 2 : 3;
      h.f[dw(h, 'distBase') / 2] = -1;
      h.f[dw(h, 'cpuBase') / 2] = -1;
      m[dw(h, 'nrRdistRegions')] = 0;
      m[dw(h, 'rdistStyle')] = 0;
      for (let v = 0; v < online; v++) {
        initPrivateIrqs(h, v);
        resetCpuInterface(h, v);
      }
      Atomics.store(m, dw(h, 'inKernel'), 1);
    } finally {
      unlockConfig(h);
    }
  } finally {
    unlockAllVcpus(h);
  }
}

export function vgicMaxVcpus(h: Host): number {
  return h.m[dw(h, 'model')] === 2 ? VGIC_V2_MAX_CPUS : VGIC_V3_MAX_CPUS;
}

export class VgicDevice implements KvmDevice {
  readonly type: number;
  private readonly h: Host;
  private readonly ipaBits: number;

  constructor(h: Host, type: number, ipaBits: number) {
    this.h = h;
    this.type = type;
    this.ipaBits = ipaBits;
  }

  private get v2(): boolean {
    return this.type === KVM_DEV_TYPE_ARM_VGIC_V2;
  }

  private checkAlive(): void {
    checkVmUsable(this.h, 'vgic device');
  }

  /**
   * `value` is what the kernel reads through attr->addr (copy_from_user / get_user): missing
   * (null, undefined) is EFAULT for every group that reads one; CTRL reads none.
   */
  setAttr(group: number, attr: bigint | number, value?: unknown): void {
    this.checkAlive();
    const a = deviceAttr(group, attr, 'KVM_SET_DEVICE_ATTR');
    switch (group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR:
        return this.setAddr(a, getUserU64(value, 'vgic ADDR'));
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
        return this.setNrIrqs(getUserU64(value, 'vgic NR_IRQS'));
      case KVM_DEV_ARM_VGIC_GRP_CTRL:
        if (a === BigInt(KVM_DEV_ARM_VGIC_CTRL_INIT)) {
          withConfigLock(this.h, () => vgicInit(this.h));
          return;
        }
        if (!this.v2 && a === BigInt(KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES)) {
          // kvm->lock, every vCPU stopped (EBUSY otherwise), config_lock.
          withAllVcpusLocked(this.h, () => {
            if (!savePendingTables(this.h)) kvmErr('EFAULT', 'an LPI pending table is outside guest RAM');
          });
          return;
        }
        kvmErr('ENXIO', `unknown CTRL attribute ${a}`);
      // eslint-disable-next-line no-fallthrough
      default:
        if (this.isRegGroup(group)) return regsSetAttr(this.h, group, a, value);
        kvmErr('ENXIO', `unknown attribute group ${group}`);
    }
  }

  /** `value`: the in-value ADDR reads first (REDIST_REGION's index); omitted means 0, null is EFAULT. */
  getAttr(group: number, attr: bigint | number, value: bigint | number | null = 0n): bigint {
    this.checkAlive();
    const a = deviceAttr(group, attr, 'KVM_GET_DEVICE_ATTR');
    switch (group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR:
        return this.getAddr(a, getUserU64(value, 'vgic ADDR'));
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS: {
        // nr_spis + 32 (observation: 32 while neither set nor initialised).
        return BigInt(this.h.m[dw(this.h, 'nrSpis')]! + 32);
      }
      case KVM_DEV_ARM_VGIC_GRP_CTRL:
        kvmErr('ENXIO', 'CTRL attributes cannot be read');
      // eslint-disable-next-line no-fallthrough
      default:
        if (this.isRegGroup(group)) return regsGetAttr(this.h, group, a);
        kvmErr('ENXIO', `unknown attribute group ${group}`);
    }
  }

  hasAttr(group: number, attr: bigint | number): void {
    this.checkAlive();
    const a = deviceAttr(group, attr, 'KVM_HAS_DEVICE_ATTR');
    switch (group) {
      case KVM_DEV_ARM_VGIC_GRP_ADDR: {
        const ok = this.v2
          ? a === BigInt(KVM_VGIC_V2_ADDR_TYPE_DIST) || a === BigInt(KVM_VGIC_V2_ADDR_TYPE_CPU)
          : a === BigInt(KVM_VGIC_V3_ADDR_TYPE_DIST) || a === BigInt(KVM_VGIC_V3_ADDR_TYPE_REDIST) || a === BigInt(KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION);
        if (!ok) kvmErr('ENXIO', `unknown ADDR attribute ${a}`);
        return;
      }
      case KVM_DEV_ARM_VGIC_GRP_NR_IRQS:
        return;
      case KVM_DEV_ARM_VGIC_GRP_CTRL:
        if (a === BigInt(KVM_DEV_ARM_VGIC_CTRL_INIT)) return;
        if (!this.v2 && a === BigInt(KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES)) return;
        kvmErr('ENXIO', `unsupported CTRL attribute ${a}`);
      // eslint-disable-next-line no-fallthrough
      default:
        if (this.isRegGroup(group)) return regsHasAttr(this.h, group, a);
        kvmErr('ENXIO', `unknown attribute group ${group}`);
    }
  }

  private isRegGroup(group: number): boolean {
    if (this.v2) return group === KVM_DEV_ARM_VGIC_GRP_DIST_REGS || group === KVM_DEV_ARM_VGIC_GRP_CPU_REGS;
    return (
      group === KVM_DEV_ARM_VGIC_GRP_DIST_REGS ||
      group === KVM_DEV_ARM_VGIC_GRP_REDIST_REGS ||
      group === KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS ||
      group === KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO
    );
  }

  /** NR_IRQS (spec §7.5): 64..1023, a multiple of 32, only while nr_spis is unset. */
  private setNrIrqs(val: bigint): void {
    const n = Number(BigInt.asUintN(32, val));
    if (n < 64 || n > VGIC_MAX_RESERVED || n % 32 !== 0) kvmErr('EINVAL', `NR_IRQS ${n}: must be 64..1023 and a multiple of 32`);
    withConfigLock(this.h, () => {
      if (Atomics.load(this.h.m, dw(this.h, 'ready')) || this.h.m[dw(this.h, 'nrSpis')] !== 0) {
        kvmErr('EBUSY', 'the number of IRQs is already fixed');
      }
      this.h.m[dw(this.h, 'nrSpis')] = n - 32;
    });
  }

  // ---- ADDR (kvm_vgic_addr; spec §7.4, §7.6) ---------------------------------------------------

  /** vgic_check_iorange. */
  private checkIorange(current: number, addr: bigint, alignment: bigint, size: bigint): void {
    if (current >= 0) kvmErr('EEXIST', 'address already set');
    if (addr % alignment !== 0n || size % alignment !== 0n) kvmErr('EINVAL', `address 0x${addr.toString(16)} not ${alignment}-aligned`);
    if (addr + size > U64_ALL_ONES) kvmErr('EINVAL', 'address range wraps');
    const ipa = 1n << BigInt(this.ipaBits);
    if (addr >= ipa || addr + size > ipa) kvmErr('E2BIG', `address 0x${addr.toString(16)} beyond the ${this.ipaBits}-bit IPA space`);
  }

  private modelCheck(a: bigint): void {
    const v2types = [KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V2_ADDR_TYPE_CPU].map(BigInt);
    const v3types = [KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST, KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION].map(BigInt);
    // An attribute of the other model is internally ENODEV, reported as ENXIO.
    if (!(this.v2 ? v2types : v3types).includes(a)) kvmErr('ENXIO', `ADDR attribute ${a} not valid for this vgic`);
  }

  private setAddr(a: bigint, val: bigint): void {
    this.modelCheck(a);
    const h = this.h;
    lockKvm(h);
    try {
      withConfigLock(h, () => {
        switch (Number(a)) {
          case KVM_VGIC_V2_ADDR_TYPE_DIST:
            this.checkIorange(h.f[dw(h, 'distBase') / 2]!, val, 0x1000n, BigInt(KVM_VGIC_V2_DIST_SIZE));
            h.f[dw(h, 'distBase') / 2] = Number(val);
            return;
          case KVM_VGIC_V2_ADDR_TYPE_CPU:
            this.checkIorange(h.f[dw(h, 'cpuBase') / 2]!, val, 0x1000n, BigInt(KVM_VGIC_V2_CPU_SIZE));
            h.f[dw(h, 'cpuBase') / 2] = Number(val);
            return;
          case KVM_VGIC_V3_ADDR_TYPE_DIST:
            this.checkIorange(h.f[dw(h, 'distBase') / 2]!, val, 0x10000n, BigInt(KVM_VGIC_V3_DIST_SIZE));
            h.f[dw(h, 'distBase') / 2] = Number(val);
            return;
          case KVM_VGIC_V3_ADDR_TYPE_REDIST:
            return this.setLegacyRedist(val);
          case KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION:
            return this.setRedistRegion(val);
        }
      });
    } finally {
      unlockKvm(h);
    }
  }

  private setLegacyRedist(base: bigint): void {
    const h = this.h;
    if (h.m[dw(h, 'rdistStyle')] === 2) kvmErr('EINVAL', 'REDIST_REGION regions exist: cannot mix with legacy REDIST');
    if (h.m[dw(h, 'rdistStyle')] === 1) kvmErr('EEXIST', 'legacy REDIST base already set');
    this.checkIorange(-1, base, 0x10000n, BigInt(KVM_VGIC_V3_REDIST_SIZE));
    // The legacy region grows with the vCPUs; check what it covers now (the online vCPUs' frames,
    // vgic_v3_alloc_redist_region) against the distributor. Frames of vCPUs created later are
    // checked at the first KVM_RUN (vgic_v3_check_base).
    const size = h.m[dw(h, 'onlineVcpus')]! * KVM_VGIC_V3_REDIST_SIZE;
    if (rdistOverlap(h, Number(base), size, true)) kvmErr('EINVAL', 'redistributor region overlaps');
    this.commitRegion(Number(base), 0, 0, 1);
  }

  private setRedistRegion(val: bigint): void {
    const h = this.h;
    const index = Number(val & KVM_VGIC_V3_RDIST_INDEX_MASK);
    const flags = val & KVM_VGIC_V3_RDIST_FLAGS_MASK;
    const base = val & KVM_VGIC_V3_RDIST_BASE_MASK;
    const count = Number(val >> KVM_VGIC_V3_RDIST_COUNT_SHIFT);
    if (h.m[dw(h, 'rdistStyle')] === 1) kvmErr('EINVAL', 'a legacy REDIST base is set: cannot mix with REDIST_REGION');
    if (count === 0 || flags !== 0n) kvmErr('EINVAL', 'REDIST_REGION needs count > 0 and flags 0');
    const n = h.m[dw(h, 'nrRdistRegions')]!;
    if (index !== n) kvmErr('EINVAL', `REDIST_REGION index ${index}: the next index must be ${n}`);
    this.checkIorange(-1, base, 0x10000n, BigInt(count) * BigInt(KVM_VGIC_V3_REDIST_SIZE));
    if (rdistOverlap(h, Number(base), count * KVM_VGIC_V3_REDIST_SIZE, false)) kvmErr('EINVAL', 'redistributor region overlaps another');
    this.commitRegion(Number(base), count, index, 2);
  }

  /** Add the region, then place every vCPU still without a redistributor; undo on failure. */
  private commitRegion(base: number, count: number, index: number, style: number): void {
    const h = this.h;
    addRegion(h, base, count, index);
    const prevStyle = h.m[dw(h, 'rdistStyle')]!;
    h.m[dw(h, 'rdistStyle')] = style;
    try {
      placeAllRedists(h);
    } catch (e) {
      // Unplace vCPUs put into the region we are about to remove.
      const online = h.m[dw(h, 'onlineVcpus')]!;
      const ri = h.m[dw(h, 'nrRdistRegions')]! - 1;
      for (let v = 0; v < online; v++) {
        const vb = vcpuOff(h.g, v);
        if (h.m[vb + VCPU.off.rdRegion] === ri) {
          h.f[(vb + VCPU.off.rdBase) / 2] = -1;
          h.m[vb + VCPU.off.rdRegion] = -1;
        }
      }
      removeLastRegion(h);
      h.m[dw(h, 'rdistStyle')] = prevStyle;
      throw e;
    }
  }

  private getAddr(a: bigint, inVal: bigint): bigint {
    this.modelCheck(a);
    const h = this.h;
    const asU64 = (x: number): bigint => (x < 0 ? U64_ALL_ONES : BigInt(x));
    return withConfigLock(h, () => {
      switch (Number(a)) {
        case KVM_VGIC_V2_ADDR_TYPE_DIST:
        case KVM_VGIC_V3_ADDR_TYPE_DIST:
          return asU64(h.f[dw(h, 'distBase') / 2]!);
        case KVM_VGIC_V2_ADDR_TYPE_CPU:
          return asU64(h.f[dw(h, 'cpuBase') / 2]!);
        case KVM_VGIC_V3_ADDR_TYPE_REDIST: {
          if (h.m[dw(h, 'rdistStyle')] !== 1) return U64_ALL_ONES;
          return asU64(readRegion(h, 0).base);
        }
        default: {
          // REDIST_REGION: the value names the index to read (in/out).
          const index = Number(inVal & KVM_VGIC_V3_RDIST_INDEX_MASK);
          if (h.m[dw(h, 'rdistStyle')] !== 2 || index >= h.m[dw(h, 'nrRdistRegions')]!) kvmErr('ENOENT', `no redistributor region ${index}`);
          const r = readRegion(h, index);
          void regionSize;
          return (BigInt(r.count) << KVM_VGIC_V3_RDIST_COUNT_SHIFT) | BigInt(r.base) | BigInt(index);
        }
      }
    });
  }
}

nameIoctls(VgicDevice.prototype, DEVICE_ATTR_IOCTLS);
