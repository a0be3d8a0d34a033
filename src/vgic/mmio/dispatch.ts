/**
 * Entry points into the register frames: guest MMIO (on the accessing vCPU's thread, after it left
 * the guest for the access, spec §4.1) and the userspace register groups of the device API
 * (spec §7.4; the caller has taken kvm->lock, try-locked every vCPU mutex and taken config_lock,
 * so these take only irq/ap_list locks).
 *
 * Which frame: the distributor at DIST.distBase (4 KiB on v2, 64 KiB on v3) or, on v3, the
 * 128 KiB redistributor pair of the vCPU that owns the address.
 */
import { KVM_VGIC_V2_CPU_SIZE, KVM_VGIC_V2_DIST_SIZE, KVM_VGIC_V3_DIST_SIZE, KVM_VGIC_V3_REDIST_SIZE, VGIC_MODEL_V2, VGIC_MODEL_V3 } from '../../uapi/kvm.js';
import { DIST, ITS, RDIST_REGION, VCPU } from '../../shm/layouts.js';
import { itsOff, vcpuOff } from '../../shm/vm-memory.js';
import { GITS } from '../its/mmio-its.js';
import { itsByFrame } from '../its/translate.js';
import type { Host } from '../host.js';
import { readRegion, regionSize } from '../rdist.js';
import { CPU_REGS } from './cpu-regs.js';
import { traceVmcr } from '../trace.js';
import { GICD_V2 } from './gicd-v2.js';
import { GICD_V3 } from './gicd-v3.js';
import { GICR } from './gicr.js';
import { frameHas, frameRead, frameUaccess, frameWrite, makeCtx, type Frame, type MmioCtx } from './table.js';

export { levelInfoUaccess } from './level-info.js';

const MODEL = DIST.off.model;
const DIST_BASE = DIST.off.distBase;
const CPU_BASE = DIST.off.cpuBase;
const ONLINE = DIST.off.onlineVcpus;
const NR_REGIONS = DIST.off.nrRdistRegions;
const REGIONS = DIST.off.regions;
const NR_ITS = DIST.off.nrIts;

// One context per thread (module instance), reused: accesses on a thread never nest.
const ctx = makeCtx();

function bind(h: Host, vcpu: number, accessor: number): MmioCtx {
  ctx.h = h;
  ctx.vcpu = vcpu;
  ctx.accessor = accessor;
  ctx.intid = 0;
  return ctx;
}

function rdBase(h: Host, v: number): number {
  return h.f[(vcpuOff(h.g, v) + VCPU.off.rdBase) / 2]!;
}

function ownsFrame(h: Host, v: number, gpa: number): boolean {
  const b = rdBase(h, v);
  return b >= 0 && gpa >= b && gpa < b + KVM_VGIC_V3_REDIST_SIZE;
}

/**
 * The vCPU whose redistributor frame pair contains `gpa`, or -1. Called for every guest MMIO on a
 * v3 VM that misses the distributor, so it avoids scanning: regions are filled in index order and
 * vCPUs take slots in creation order, so slot s of region i usually belongs to vCPU
 * (slots used by regions before i) + s. The guess is verified; a scan covers anything else.
 */
export function vgicRedistOwner(h: Host, gpa: number): number {
  const m = h.m;
  const db = h.g.distBase;
  if (m[db + MODEL] !== 3) return -1;
  const online = m[db + ONLINE]!;
  const n = m[db + NR_REGIONS]!;
  if (n > 0) {
    let before = 0;
    let hit = false;
    for (let i = 0; i < n && !hit; i++) {
      const o = db + REGIONS + i * RDIST_REGION.size;
      const base = h.f[(o + RDIST_REGION.off.base) / 2]!;
      const used = m[o + RDIST_REGION.off.freeIndex]!;
      if (gpa >= base && gpa < base + used * KVM_VGIC_V3_REDIST_SIZE) {
        const guess = before + Math.floor((gpa - base) / KVM_VGIC_V3_REDIST_SIZE);
        if (guess < online && ownsFrame(h, guess, gpa)) return guess;
        hit = true;
      }
      before += used;
    }
    // Frames are only ever handed out inside regions: an address no region covers is nobody's.
    if (!hit) return -1;
  }
  for (let v = 0; v < online; v++) if (ownsFrame(h, v, gpa)) return v;
  return -1;
}

// Bounding box of the redistributor regions, per thread: most non-distributor accesses are device
// MMIO far from every redistributor, tested against the box before any owner lookup. Regions are
// only ever appended, so their count tells when the box must be recomputed.
let boxHost: Host | null = null;
let boxRegions = -1;
let boxLo = 0;
let boxHi = 0;

function redistBox(h: Host): void {
  const n = h.m[h.g.distBase + NR_REGIONS]!;
  if (h === boxHost && n === boxRegions) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const r = readRegion(h, i);
    lo = Math.min(lo, r.base);
    hi = Math.max(hi, r.base + regionSize(h, r));
  }
  boxHost = h;
  boxRegions = n;
  boxLo = lo;
  boxHi = hi;
}

function distFrame(h: Host): Frame | null {
  const model = h.m[h.g.distBase + MODEL];
  return model === VGIC_MODEL_V3 ? GICD_V3 : model === VGIC_MODEL_V2 ? GICD_V2 : null;
}

/** route(): the address is in no GIC frame (KVM_EXIT_MMIO), or in v2's mapped GICV frame. */
export const ROUTE_NONE = -1;
export const ROUTE_GICV = -2;

// What the last route() on this thread found: the frame, the vCPU whose frame it is, the ITS.
let routed: Frame | null = null;
let routedVcpu = -1;
let routedIts = 0;

/**
 * The one address decoder of a guest access by vCPU v (-1: none) at `gpa`, run once per access.
 * GICV (v2's CPU interface) is mapped into the guest, not trapped. The distributor, a
 * redistributor (inside the regions' bounding box only; the accessor's own frame checked first)
 * or an ITS frame traps: the offset within the frame is returned and the frame recorded for
 * routedRead/routedWrite. Anything else exits to userspace (KVM_EXIT_MMIO): ROUTE_NONE.
 * A guest access routes before it leaves the guest and completes after; exit() folds LRs and
 * never dispatches MMIO, so nothing routes in between.
 */
export function route(h: Host, v: number, gpa: number): number {
  const m = h.m;
  const model = m[h.g.distBase + MODEL];
  const db = h.f[(h.g.distBase + DIST_BASE) / 2]!;
  if (model === VGIC_MODEL_V2) {
    const cb = h.f[(h.g.distBase + CPU_BASE) / 2]!;
    if (cb >= 0 && gpa >= cb && gpa < cb + KVM_VGIC_V2_CPU_SIZE) return ROUTE_GICV;
    if (!(db >= 0 && gpa >= db && gpa < db + KVM_VGIC_V2_DIST_SIZE)) return ROUTE_NONE;
    routed = GICD_V2;
    routedVcpu = v;
    return gpa - db;
  }
  if (model !== VGIC_MODEL_V3) return ROUTE_NONE;
  if (db >= 0 && gpa >= db && gpa < db + KVM_VGIC_V3_DIST_SIZE) {
    routed = GICD_V3;
    routedVcpu = v;
    return gpa - db;
  }
  redistBox(h);
  if (gpa >= boxLo && gpa < boxHi) {
    const owner = v >= 0 && ownsFrame(h, v, gpa) ? v : vgicRedistOwner(h, gpa);
    if (owner >= 0) {
      routed = GICR;
      routedVcpu = owner;
      return gpa - rdBase(h, owner);
    }
  }
  const its = m[h.g.distBase + NR_ITS]! > 0 ? itsByFrame(h, gpa) : -1;
  if (its < 0) return ROUTE_NONE;
  routed = GITS;
  routedVcpu = v;
  routedIts = its;
  return gpa - h.f[(itsOff(h.g, its) + ITS.off.base) / 2]!;
}

/** Complete the access the last route() decoded (offset `off` >= 0): a read by vCPU v. */
export function routedRead(h: Host, v: number, off: number, len: number): number {
  bind(h, routedVcpu, v).its = routedIts;
  return frameRead(routed!, ctx, off, len);
}

export function routedWrite(h: Host, v: number, off: number, len: number, value: number): void {
  bind(h, routedVcpu, v).its = routedIts;
  frameWrite(routed!, ctx, off, len, value);
}

/** ITS_REGS: a 32-bit word at `offset` of ITS `its`'s frame, as userspace sees it. */
export function itsUaccess(h: Host, its: number, offset: number, isWrite: boolean, value: number): number {
  const c = bind(h, -1, -1);
  c.its = its;
  return frameUaccess(GITS, c, offset, isWrite, value);
}

export function hasItsReg(h: Host, offset: number): boolean {
  return frameHas(GITS, bind(h, -1, -1), offset);
}

/** Guest read of `len` bytes (1, 2, 4, 8) at `gpa` by vCPU v. Outside every trapped frame: 0. */
export function vgicMmioRead(h: Host, v: number, gpa: number, len: number): number {
  const off = route(h, v, gpa);
  return off < 0 ? 0 : routedRead(h, v, off, len);
}

/** Guest write; `value` is a uint32, or for 8-byte accesses an integer below 2^53. */
export function vgicMmioWrite(h: Host, v: number, gpa: number, len: number, value: number): void {
  const off = route(h, v, gpa);
  if (off >= 0) routedWrite(h, v, off, len, value);
}

// ---- userspace register groups -----------------------------------------------------------------

/** DIST_REGS: one 32-bit register at `offset`, private INTIDs being vCPU v's. */
export function distUaccess(h: Host, v: number, offset: number, isWrite: boolean, value: number): number {
  const f = distFrame(h);
  return f ? frameUaccess(f, bind(h, v, -1), offset, isWrite, value) : 0;
}

/** REDIST_REGS (v3): `offset` within vCPU v's 128 KiB redistributor (SGI frame at +64 KiB). */
export function redistUaccess(h: Host, v: number, offset: number, isWrite: boolean, value: number): number {
  return frameUaccess(GICR, bind(h, v, -1), offset, isWrite, value);
}

/** CPU_REGS (v2): vCPU v's VMCR/APR view. */
export function cpuRegsUaccess(h: Host, v: number, offset: number, isWrite: boolean, value: number): number {
  const r = frameUaccess(CPU_REGS, bind(h, v, -1), offset, isWrite, value);
  if (isWrite && h.hist) traceVmcr(h, v);
  return r;
}

export function hasDistReg(h: Host, offset: number): boolean {
  const f = distFrame(h);
  return f !== null && frameHas(f, bind(h, 0, -1), offset);
}

export function hasRedistReg(h: Host, offset: number): boolean {
  return frameHas(GICR, bind(h, 0, -1), offset);
}

export function hasCpuReg(h: Host, offset: number): boolean {
  return frameHas(CPU_REGS, bind(h, 0, -1), offset);
}
