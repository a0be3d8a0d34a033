/**
 * Save and restore of the vgic's register attribute groups while the vCPUs are paused with
 * interrupts in flight (what QEMU's kvm_arm_gicv3_get/put and kvm_arm_gic_get/put do around a
 * migration): read every register of DIST_REGS, REDIST_REGS, CPU_SYSREGS / CPU_REGS and
 * LEVEL_INFO that KVM_HAS_DEVICE_ATTR reports, write each back, read again.
 *
 * The write-back must not change the state it restores: a set-register gets the saved bits
 * (setting what is set already), a clear-register gets 0 (QEMU writes ~0 to the clear half, then
 * the saved set half; with injections still landing meanwhile from the irqfd paths, that would
 * drop an edge that arrived between the save and the restore, a VMM-side loss this scenario
 * does not model). Registers whose writes are actions (GICD_SGIR, SETSPI/CLRSPI, SETLPIR,
 * INVLPIR...) are not written. After the restore every register except the pending and active
 * state (which injections may still change) must read what was saved.
 */
import type { VgicDevice } from '../../kvm/vgic-device.js';
import {
  KVM_DEV_ARM_VGIC_GRP_CPU_REGS, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
  KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT, VGIC_LEVEL_INFO_LINE_LEVEL,
} from '../../uapi/kvm.js';
import { KvmError } from '../../uapi/errno.js';
import { sysregEncoding } from '../../vgic/sysregs.js';
import { mpidrAffOf, vcpuIdOf } from '../../vgic/vcpu-id.js';
import type { Host } from '../../vgic/host.js';

/** What the restore writes: the saved value, zero (a clear-register), or nothing (an action). */
type Restore = 'same' | 'zero' | 'none';

/** One register of a group: where, how it is restored, and whether it must read back unchanged. */
interface Reg {
  group: number;
  attr: bigint;
  restore: Restore;
  stable: boolean;
}

/** Distributor (and GICR SGI frame) offsets whose bits are pending or active state. */
const VOLATILE = [0x200, 0x280, 0x300, 0x380, 0xf10, 0xf20];
const CLEARS = [0x180, 0x280, 0x380, 0xf10];

/** Per-IRQ register banks (offset, bits per INTID): only the words of INTIDs below `nrIrqs`. */
const BANKS: readonly (readonly [number, number])[] = [
  [0x080, 1], [0x100, 1], [0x180, 1], [0x200, 1], [0x280, 1], [0x300, 1], [0x380, 1],
  [0x400, 8], [0x800, 8], [0xc00, 2], [0xd00, 1], [0xe00, 2],
];

function distOffsets(v2: boolean, nrIrqs: number): number[] {
  const out = [0x0, 0x4, 0x8, 0xc, 0x10];
  for (const [base, bits] of BANKS) for (let w = 0; w < Math.ceil((nrIrqs * bits) / 32); w++) out.push(base + 4 * w);
  if (v2) for (let w = 0; w < 4; w++) out.push(0xf10 + 4 * w, 0xf20 + 4 * w);
  else for (let i = 32; i < nrIrqs; i++) out.push(0x6000 + 8 * i, 0x6004 + 8 * i);
  for (let o = 0xffd0; o < 0x10000; o += 4) out.push(o);
  return out;
}

function distRestore(off: number, v2: boolean): Restore {
  if (off === 0x10 || (v2 && off === 0xf00)) return 'none';
  const bank = off >= 0xf10 && off < 0xf30 ? off & ~0xf : off >= 0x80 && off < 0x400 ? off & ~0x7f : -1;
  return CLEARS.includes(bank) ? 'zero' : 'same';
}

function distStable(off: number): boolean {
  const bank = off >= 0xf10 && off < 0xf30 ? off & ~0xf : off >= 0x80 && off < 0x400 ? off & ~0x7f : -1;
  return !VOLATILE.includes(bank);
}

/** ICC_CTLR_EL1's CPU_SYSREGS encoding. */
const ICC_CTLR_EL1 = sysregEncoding(3, 0, 12, 12, 4);

/**
 * The active-priority registers a GICv3 vCPU implements: ICC_AP{0,1}R<n>_EL1 for n below
 * 2^(PRIbits - 4) / 2 (QEMU reads ICC_CTLR_EL1.PRIbits for this: the others are EINVAL although
 * KVM_HAS_DEVICE_ATTR knows their encodings).
 */
function nrAprs(dev: VgicDevice, aff: bigint): number {
  const pribits = Number((dev.getAttr(KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, aff | BigInt(ICC_CTLR_EL1)) >> 8n) & 7n) + 1;
  return 1 << Math.max(0, pribits - 5);
}

/** ICC_AP0R<n>_EL1 (crm 8, op2 4..7) and ICC_AP1R<n>_EL1 (crm 9, op2 0..3): n, else -1. */
function aprIndex(crm: number, op2: number): number {
  if (crm === 8 && op2 >= 4) return op2 - 4;
  if (crm === 9 && op2 < 4) return op2;
  return -1;
}

/**
 * The registers of one save, filtered by KVM_HAS_DEVICE_ATTR (the vCPUs must be paused: the
 * number of APRs is read from ICC_CTLR_EL1).
 */
export function registerList(dev: VgicDevice, h: Host, v2: boolean, nrVcpus: number, nrIrqs: number): Reg[] {
  const out: Reg[] = [];
  const add = (group: number, attr: bigint, restore: Restore, stable: boolean): void => {
    try {
      dev.hasAttr(group, attr);
    } catch (e) {
      if (e instanceof KvmError && e.code === 'ENXIO') return;
      throw e;
    }
    out.push({ group, attr, restore, stable });
  };
  for (const off of distOffsets(v2, nrIrqs)) add(KVM_DEV_ARM_VGIC_GRP_DIST_REGS, BigInt(off), distRestore(off, v2), distStable(off));
  for (let v = 0; v < nrVcpus; v++) {
    const id = vcpuIdOf(h, v);
    if (v2) {
      const cpu = BigInt(id) << 32n;
      for (let o = 0; o < 0x100; o += 4) add(KVM_DEV_ARM_VGIC_GRP_CPU_REGS, cpu | BigInt(o), 'same', true);
      continue;
    }
    const aff = BigInt(mpidrAffOf(id)) << 32n;
    // RD frame: CTLR, IIDR, TYPER, WAKER, PROPBASER, PENDBASER, the ID registers (STATUSR and the
    // LPI action registers are not restored).
    for (const o of [0x0, 0x4, 0x8, 0xc, 0x14, 0x70, 0x74, 0x78, 0x7c]) add(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, aff | BigInt(o), 'same', true);
    for (const o of [0x10, 0x40, 0x48, 0xa0, 0xb0, 0xc0]) add(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, aff | BigInt(o), 'none', false);
    for (let o = 0xffd0; o < 0x10000; o += 4) add(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, aff | BigInt(o), 'same', true);
    // SGI frame: the private INTIDs' banked registers.
    for (const [base, bits] of BANKS) {
      if (base === 0x800) continue;
      for (let w = 0; w < bits; w++) {
        const o = 0x10000 + base + 4 * w;
        add(KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, aff | BigInt(o), distRestore(base + 4 * w, false), distStable(base + 4 * w));
      }
    }
    const aprs = nrAprs(dev, aff);
    for (let crm = 0; crm < 16; crm++) {
      for (let op2 = 0; op2 < 8; op2++) if (aprIndex(crm, op2) < aprs) add(KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, aff | BigInt(sysregEncoding(3, 0, 12, crm, op2)), 'same', true);
    }
    for (let i = 32; i < nrIrqs; i += 32) {
      add(KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, aff | BigInt((VGIC_LEVEL_INFO_LINE_LEVEL << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT) | i), 'same', true);
    }
  }
  return out;
}

/**
 * Save, restore and re-read `regs` (the vCPUs must be paused: every access locks all vCPUs, EBUSY
 * otherwise). Returns the registers that did not read back what was saved, as "group/attr".
 */
export function roundTrip(dev: VgicDevice, regs: readonly Reg[], saved: bigint[]): string[] {
  regs.forEach((r, i) => (saved[i] = dev.getAttr(r.group, r.attr)));
  regs.forEach((r, i) => {
    if (r.restore !== 'none') dev.setAttr(r.group, r.attr, r.restore === 'same' ? saved[i]! : 0n);
  });
  const bad: string[] = [];
  regs.forEach((r, i) => {
    const now = dev.getAttr(r.group, r.attr);
    if (r.stable && now !== saved[i]) bad.push(`group ${r.group} attr 0x${r.attr.toString(16)}: saved 0x${saved[i]!.toString(16)}, read 0x${now.toString(16)} after the restore`);
  });
  return bad;
}
