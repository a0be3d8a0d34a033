/**
 * Builds a Host directly (no workers) with a distributor and, for v3, one legacy redistributor
 * region, the way the device API would leave it after CTRL_INIT. Shared by the mmio-*.test.ts files.
 */
import { DIST, IRQ, RDIST_REGION, VCPU } from '../../src/shm/layouts.js';
import { allocateBuffers, computeGeometry, irqOff, vcpuOff } from '../../src/shm/vm-memory.js';
import { dw, makeHost, type Host, type SharedVmConfig } from '../../src/vgic/host.js';
import { vgicInit } from '../../src/vgic/init.js';
import { lockConfig, unlockConfig } from '../../src/vgic/locks.js';
import { KVM_VGIC_V3_REDIST_SIZE } from '../../src/uapi/kvm.js';
import { timerInitVm, timerVcpuInit } from '../../src/kvm/timer/timer-enable.js';

export const DIST_BASE = 0x0800_0000;
export const CPU_BASE = 0x0801_0000;
export const REDIST_BASE = 0x080a_0000;

export interface VmOpts {
  model: 2 | 3;
  vcpus: number;
  nrSpis?: number;
  maxVcpus?: number;
}

export function makeVm(o: VmOpts): Host {
  const maxVcpus = o.maxVcpus ?? 4;
  const g = computeGeometry({ maxVcpus, nrLr: 4, ramBytes: 65536 });
  const cfg: SharedVmConfig = { maxVcpus, nrLr: 4, ramBytes: 65536, ipaBits: 40, locking: 'fine', lrPolicy: 'mainline', lockdep: true, lockStats: 'off', bugs: 0 };
  const h = makeHost(g, cfg, allocateBuffers(g), 0, 'main', -1);
  const m = h.m;
  m[dw(h, 'model')] = o.model;
  m[dw(h, 'inKernel')] = 1;
  m[dw(h, 'onlineVcpus')] = o.vcpus;
  m[dw(h, 'createdVcpus')] = o.vcpus;
  m[dw(h, 'nrSpis')] = o.nrSpis ?? 64;
  h.f[dw(h, 'distBase') / 2] = DIST_BASE;
  h.f[dw(h, 'cpuBase') / 2] = o.model === 2 ? CPU_BASE : -1;
  timerInitVm(h, false); // as KVM_CREATE_VM and KVM_CREATE_VCPU do
  for (let v = 0; v < o.vcpus; v++) timerVcpuInit(h, v);
  for (let v = 0; v < maxVcpus; v++) {
    const vb = vcpuOff(g, v);
    m[vb + VCPU.off.apHead] = -1;
    m[vb + VCPU.off.apTail] = -1;
    m[vb + VCPU.off.vcpuId] = v; // created in id order: vcpu_id = vcpu_idx
    m[vb + VCPU.off.mpidr] = ((v >> 4) << 8) | (v & 15);
    m[vb + VCPU.off.created] = v < o.vcpus ? 1 : 0;
    h.f[(vb + VCPU.off.rdBase) / 2] = o.model === 3 && v < o.vcpus ? REDIST_BASE + v * KVM_VGIC_V3_REDIST_SIZE : -1;
    m[vb + VCPU.off.rdRegion] = o.model === 3 && v < o.vcpus ? 0 : -1;
    m[vb + VCPU.off.rdIndex] = v;
  }
  if (o.model === 3) {
    const ro = h.g.distBase + DIST.off.regions;
    h.f[(ro + RDIST_REGION.off.base) / 2] = REDIST_BASE;
    m[ro + RDIST_REGION.off.count] = 0; // legacy: as many as vCPUs
    m[ro + RDIST_REGION.off.freeIndex] = o.vcpus;
    m[ro + RDIST_REGION.off.index] = 0;
    m[dw(h, 'nrRdistRegions')] = 1;
  }
  lockConfig(h);
  try {
    vgicInit(h);
  } finally {
    unlockConfig(h);
  }
  return h;
}

/** Record index of (vcpu, intid). */
export function rec(h: Host, v: number, intid: number): number {
  return intid < 32 ? v * 32 + intid : h.g.spiRecordBase + intid - 32;
}

/** A field of interrupt record (vcpu, intid). */
export function irqField(h: Host, v: number, intid: number, f: keyof typeof IRQ.off): number {
  return h.m[irqOff(h.g, rec(h, v, intid)) + IRQ.off[f]]!;
}
export function setIrqField(h: Host, v: number, intid: number, f: keyof typeof IRQ.off, val: number): void {
  h.m[irqOff(h.g, rec(h, v, intid)) + IRQ.off[f]] = val;
}

export function vcpuField(h: Host, v: number, f: keyof typeof VCPU.off): number {
  return h.m[vcpuOff(h.g, v) + VCPU.off[f]]!;
}
export function setVcpuField(h: Host, v: number, f: keyof typeof VCPU.off, val: number): void {
  h.m[vcpuOff(h.g, v) + VCPU.off[f]] = val;
}

/** Record indices on vCPU v's ap_list, head first. */
export function apList(h: Host, v: number): number[] {
  const out: number[] = [];
  for (let r = vcpuField(h, v, 'apHead'); r >= 0; r = h.m[irqOff(h.g, r) + IRQ.off.next]!) out.push(r);
  return out;
}

/** GICD_IIDR as spec §1.1/§6 describe it: ProductID [31:24], Revision [15:12], Implementer [11:0]. */
export function expectedIidr(rev: number): number {
  return ((0x4b << 24) | (rev << 12) | 0x43b) >>> 0;
}
