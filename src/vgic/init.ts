/**
 * vgic initialisation stages (kernel vgic-init.c; spec §7.2, §1.6): vgic_init (explicit CTRL_INIT
 * or lazy for GICv2), the defaults it establishes, and kvm_vgic_map_resources at first run.
 */
import { accessRecycled } from '../check/lockset/index.js';
import { kvmErr } from '../uapi/errno.js';
import { KVM_REQ_VM_DEAD, KVM_VGIC_IMP_REV_LATEST, KVM_VGIC_V2_CPU_SIZE, KVM_VGIC_V2_DIST_SIZE, VGIC_MODEL_V2 } from '../uapi/kvm.js';
import { DIST, IRQ, VCPU } from '../shm/layouts.js';
import { irqOff, vcpuOff } from '../shm/vm-memory.js';
import { BUG } from './bugs.js';
import type { Host } from './host.js';
import { D, dw } from './host.js';
import { EDGE, LEVEL, resetRecord } from './irq.js';
import { assertConfigLocked, lockConfig, tryLockConfig, unlockConfig } from './locks.js';
import { vgicV3CheckBase } from './rdist.js';

export const NR_SPIS_DEFAULT = 256 - 32;

/** Set the defaults of vCPU v's 32 private records (vgic_allocate_private_irqs_locked). */
export function initPrivateIrqs(h: Host, v: number): void {
  const m = h.m;
  const v3 = m[dw(h, 'model')] === 3;
  for (let i = 0; i < 32; i++) {
    const r = v * 32 + i;
    resetRecord(h, r);
    const b = irqOff(h.g, r);
    m[b + IRQ.off.target] = v;
    if (i < 16) {
      m[b + IRQ.off.enabled] = 1; // SGIs: enabled, edge
      m[b + IRQ.off.config] = EDGE;
    } else {
      m[b + IRQ.off.config] = LEVEL; // PPIs: disabled, level (the timer relies on it)
    }
    m[b + IRQ.off.group] = v3 ? 1 : 0;
    m[b + IRQ.off.targets] = v3 ? m[vcpuOff(h.g, v) + VCPU.off.mpidr]! : 1 << v;
  }
}

/** Reset the per-vCPU CPU interface (vgic_v2_enable / vgic_v3_enable): VMCR = 0, no LRs in use. */
export function resetCpuInterface(h: Host, v: number): void {
  const m = h.m;
  const vb = vcpuOff(h.g, v);
  // vgic_init (re)initialises every vCPU's interface state under config_lock before the vgic is
  // usable (v2: lazily, on the first vCPU's first run): fresh state, as if allocated.
  accessRecycled(h, vb + VCPU.off.nrLr, VCPU.off.eoiCount + 1 - VCPU.off.nrLr);
  for (const f of ['pmr', 'bpr0', 'bpr1', 'eng0', 'eng1', 'eoiMode', 'cbpr', 'ackCtl', 'fiqEn', 'ap0r', 'ap1r', 'eoiCount', 'usedLrs', 'uie', 'npie', 'lrenpie', 'tdir'] as const) {
    m[vb + VCPU.off[f]] = 0;
  }
  m[vb + VCPU.off.nrLr] = h.g.nrLr;
}

/** vgic_init. Caller holds config_lock. */
export function vgicInit(h: Host): void {
  assertConfigLocked(h, 'vgic_init');
  const m = h.m;
  if (Atomics.load(m, dw(h, 'initialized'))) return;
  // A vCPU creation in flight (created != online): refuse rather than miss its private IRQs (§12.13).
  if (m[dw(h, 'createdVcpus')] !== m[dw(h, 'onlineVcpus')]) kvmErr('EBUSY', 'a vCPU is being created');
  if (m[dw(h, 'nrSpis')] === 0) m[dw(h, 'nrSpis')] = NR_SPIS_DEFAULT;
  const v3 = m[dw(h, 'model')] === 3;
  const nrSpis = m[dw(h, 'nrSpis')]!;
  for (let i = 0; i < nrSpis; i++) {
    const r = h.g.spiRecordBase + i;
    resetRecord(h, r);
    const b = irqOff(h.g, r);
    m[b + IRQ.off.target] = 0; // target_vcpu = vCPU 0; v2 targets = 0, v3 mpidr = 0
    m[b + IRQ.off.group] = v3 ? 1 : 0;
  }
  const online = m[dw(h, 'onlineVcpus')]!;
  for (let v = 0; v < online; v++) {
    initPrivateIrqs(h, v);
    resetCpuInterface(h, v);
  }
  if (m[dw(h, 'implRev')] === 0) m[dw(h, 'implRev')] = KVM_VGIC_IMP_REV_LATEST;
  // Publication: readers check `initialized` without config_lock.
  Atomics.store(m, dw(h, 'initialized'), 1);
}

/**
 * vgic_lazy_init (spec §3.2, §7.2): GICv2 initialises on first use; GICv3 must have had CTRL_INIT.
 * Returns false only for the seeded early-injection bug, whose caller then drops the injection.
 */
export function vgicLazyInit(h: Host): boolean {
  const m = h.m;
  // Every injection comes through here: the hot-path index (D), not the keyed dw().
  if (Atomics.load(m, D.initialized)) return true;
  if (m[dw(h, 'model')] !== 2) {
    if (h.bugs & BUG.earlyInjectDropped) return false;
    kvmErr('EBUSY', 'GICv3 must be initialised with KVM_DEV_ARM_VGIC_CTRL_INIT first');
  }
  lockConfig(h);
  try {
    vgicInit(h);
  } finally {
    unlockConfig(h);
  }
  return true;
}

function overlaps(a: number, alen: number, b: number, blen: number): boolean {
  return a < b + blen && b < a + alen;
}

/** Mark the VM dead (kvm_vm_dead): every vCPU's next request check fails with EIO. */
export function vmDead(h: Host): void {
  Atomics.store(h.m, dw(h, 'dead'), 1);
  const online = h.m[dw(h, 'onlineVcpus')]!;
  for (let v = 0; v < online; v++) Atomics.or(h.m, vcpuOff(h.g, v) + VCPU.off.requests, KVM_REQ_VM_DEAD);
}

/**
 * kvm_vgic_map_resources, at the first KVM_RUN of any vCPU (spec §7.2 step 4). On failure the VM
 * is marked dead (2024 fix: tearing the vgic down here raced with other vCPUs already using it).
 */
export function vgicMapResources(h: Host): void {
  const m = h.m;
  if (Atomics.load(m, dw(h, 'ready'))) return;
  lockConfig(h);
  try {
    if (m[dw(h, 'ready')]) return;
    const model = m[dw(h, 'model')];
    const dist = h.f[dw(h, 'distBase') / 2]!;
    if (model === VGIC_MODEL_V2) {
      const cpu = h.f[dw(h, 'cpuBase') / 2]!;
      if (dist < 0 || cpu < 0) kvmErr('ENXIO', 'VGIC v2 distributor or CPU interface base not set');
      if (overlaps(dist, KVM_VGIC_V2_DIST_SIZE, cpu, KVM_VGIC_V2_CPU_SIZE)) kvmErr('EINVAL', 'VGIC v2 distributor and CPU interface overlap');
      vgicInit(h);
    } else {
      const online = m[dw(h, 'onlineVcpus')]!;
      for (let v = 0; v < online; v++) {
        if (h.f[(vcpuOff(h.g, v) + VCPU.off.rdBase) / 2]! < 0) kvmErr('ENXIO', `vCPU ${v} has no redistributor`);
      }
      if (dist < 0) kvmErr('ENXIO', 'VGIC v3 distributor base not set');
      // vgic_v3_map_resources: every region sized by the vCPUs online now, so a legacy region's
      // frames for vCPUs created after its base was set are checked here for the first time.
      if (!vgicV3CheckBase(h)) kvmErr('EINVAL', 'VGIC v3 redistributor regions overlap the distributor or leave the IPA space');
      if (!m[dw(h, 'initialized')]) kvmErr('EBUSY', 'VGIC v3 not initialised (KVM_DEV_ARM_VGIC_CTRL_INIT)');
    }
    Atomics.store(m, dw(h, 'ready'), 1);
  } catch (e) {
    vmDead(h);
    throw e;
  } finally {
    unlockConfig(h);
  }
}

export { DIST };

/**
 * kvm_vgic_destroy's distributor part (spec §11.3), at VM teardown once the irqfds are released
 * and the vCPU threads are gone: not ready, not initialised, no SPIs. Anything still holding an
 * injection path (a device thread's stale eventfd) now fails the vgic's checks instead of touching
 * records. The records themselves stay readable for post-mortem statistics.
 */
export function vgicDestroy(h: Host): void {
  // kvm_vgic_destroy holds config_lock. Every thread that takes it (the vCPUs) is gone by now, so
  // it is free, unless a dead or deadlocked thread left it held (a stress run's ABBA): that must
  // not block the teardown, so only try it (and then the lockset check reports the writes).
  const locked = tryLockConfig(h);
  Atomics.store(h.m, dw(h, 'ready'), 0);
  Atomics.store(h.m, dw(h, 'initialized'), 0);
  Atomics.store(h.m, dw(h, 'nrSpis'), 0);
  if (locked) unlockConfig(h);
}
