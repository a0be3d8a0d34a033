/**
 * GICv3 redistributor regions and the placement of each vCPU's redistributor frame
 * (kernel vgic-mmio-v3.c vgic_v3_alloc_redist_region / vgic_register_redist_iodev; spec §7.6).
 * Regions are filled in index order; a vCPU gets the next free slot when it is created, or when a
 * region appears later. Caller holds config_lock.
 */
import { kvmErr } from '../uapi/errno.js';
import { KVM_VGIC_V3_DIST_SIZE, KVM_VGIC_V3_REDIST_SIZE } from '../uapi/kvm.js';
import { DIST, RDIST_REGION, VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import type { Host } from './host.js';
import { dw } from './host.js';

export function regionOff(h: Host, i: number): number {
  return h.g.distBase + DIST.off.regions + i * RDIST_REGION.size;
}

export interface RdistRegion {
  base: number;
  count: number;
  freeIndex: number;
  index: number;
}

export function readRegion(h: Host, i: number): RdistRegion {
  const o = regionOff(h, i);
  return {
    base: h.f[(o + RDIST_REGION.off.base) / 2]!,
    count: h.m[o + RDIST_REGION.off.count]!,
    freeIndex: h.m[o + RDIST_REGION.off.freeIndex]!,
    index: h.m[o + RDIST_REGION.off.index]!,
  };
}

/** Size in bytes a region covers (legacy regions grow with the number of vCPUs). */
export function regionSize(h: Host, r: RdistRegion): number {
  const n = r.count === 0 ? h.m[dw(h, 'onlineVcpus')]! : r.count;
  return n * KVM_VGIC_V3_REDIST_SIZE;
}

function overlaps(a: number, alen: number, b: number, blen: number): boolean {
  return a < b + blen && b < a + alen;
}

/** Would [base, base+size) overlap an existing region or the distributor? */
export function rdistOverlap(h: Host, base: number, size: number, checkDist: boolean): boolean {
  const n = h.m[dw(h, 'nrRdistRegions')]!;
  for (let i = 0; i < n; i++) {
    const r = readRegion(h, i);
    if (overlaps(base, size, r.base, regionSize(h, r))) return true;
  }
  const dist = h.f[dw(h, 'distBase') / 2]!;
  return checkDist && dist >= 0 && overlaps(base, size, dist, KVM_VGIC_V3_DIST_SIZE);
}

export function addRegion(h: Host, base: number, count: number, index: number): void {
  const i = h.m[dw(h, 'nrRdistRegions')]!;
  const o = regionOff(h, i);
  h.f[(o + RDIST_REGION.off.base) / 2] = base;
  h.m[o + RDIST_REGION.off.count] = count;
  h.m[o + RDIST_REGION.off.freeIndex] = 0;
  h.m[o + RDIST_REGION.off.index] = index;
  h.m[dw(h, 'nrRdistRegions')] = i + 1;
}

export function removeLastRegion(h: Host): void {
  h.m[dw(h, 'nrRdistRegions')] = h.m[dw(h, 'nrRdistRegions')]! - 1;
}

/**
 * vgic_v3_check_base (vgic-v3.c): every region, sized as it is now (a legacy region by the vCPUs
 * online at the time of the call), must lie inside the IPA space (vgic_check_iorange), and none
 * may overlap the distributor. Region-against-region overlap is refused when a region is added
 * (rdistOverlap), not here.
 */
export function vgicV3CheckBase(h: Host): boolean {
  const ipa = 2 ** h.cfg.ipaBits;
  const n = h.m[dw(h, 'nrRdistRegions')]!;
  for (let i = 0; i < n; i++) {
    const r = readRegion(h, i);
    if (r.base + regionSize(h, r) > ipa) return false;
  }
  const dist = h.f[dw(h, 'distBase') / 2]!;
  return dist < 0 || !rdistOverlap(h, dist, KVM_VGIC_V3_DIST_SIZE, false);
}

/**
 * vgic_register_redist_iodev: give vCPU v (a vcpu_idx) the next free redistributor slot, if any
 * region has one; placement follows creation order, whatever the vCPU's id. Throws EINVAL when
 * vgic_v3_check_base fails. At KVM_CREATE_VCPU this runs before the new vCPU is online, so a
 * legacy region is checked without the new frame (the first KVM_RUN checks it).
 */
export function placeRedist(h: Host, v: number): void {
  const vb = vcpuOff(h.g, v);
  if (h.f[(vb + VCPU.off.rdBase) / 2]! >= 0) return;
  const n = h.m[dw(h, 'nrRdistRegions')]!;
  for (let i = 0; i < n; i++) {
    const o = regionOff(h, i);
    const r = readRegion(h, i);
    if (r.count !== 0 && r.freeIndex >= r.count) continue;
    if (!vgicV3CheckBase(h)) kvmErr('EINVAL', `redistributor regions overlap the distributor or leave the IPA space (placing vCPU ${v})`);
    h.f[(vb + VCPU.off.rdBase) / 2] = r.base + r.freeIndex * KVM_VGIC_V3_REDIST_SIZE;
    h.m[vb + VCPU.off.rdRegion] = i;
    h.m[vb + VCPU.off.rdIndex] = r.freeIndex;
    h.m[o + RDIST_REGION.off.freeIndex] = r.freeIndex + 1;
    return;
  }
}

/** vgic_register_all_redist_iodevs: place every online vCPU that has no frame yet. */
export function placeAllRedists(h: Host): void {
  const online = h.m[dw(h, 'onlineVcpus')]!;
  for (let v = 0; v < online; v++) placeRedist(h, v);
}
