/**
 * The GICv3 CPU interface system registers (ICC_*_EL1), as a table: name, encoding, guest read /
 * write and, for the state registers KVM exposes in KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, userspace
 * get/set (kernel vgic-sys-reg-v3.c; spec §5.1, §7.4).
 *
 * Guest accesses go to the vCPU's virtual CPU interface (VcpuCpuIf, hardware working on the list
 * registers), except SGI generation: those writes trap (`trap: true`) and run vgicV3DispatchSgi
 * on the vCPU's own thread, as KVM's sysreg trap handler does.
 *
 * Encodings are packed as KVM packs them for CPU_SYSREGS attrs:
 * op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2.
 */
import { traceVmcr } from './trace.js';
import { kvmErr } from '../uapi/errno.js';
import { VCPU } from '../shm/layouts.js';
import { vcpuOff } from '../shm/vm-memory.js';
import { MIN_BPR0, MIN_BPR1, PRI_BITS, readBpr0, readBpr1 } from './cpu-interface.js';
import type { Host } from './host.js';
import { vgicV3DispatchSgi } from './sgi-v3.js';
import type { VcpuCpuIf } from './vcpu-cpuif.js';

export { vgicV3DispatchSgi };

export const ICC_SYSREG_NAMES = [
  'ICC_PMR_EL1',
  'ICC_IAR0_EL1',
  'ICC_EOIR0_EL1',
  'ICC_HPPIR0_EL1',
  'ICC_BPR0_EL1',
  'ICC_AP0R0_EL1',
  'ICC_AP0R1_EL1',
  'ICC_AP0R2_EL1',
  'ICC_AP0R3_EL1',
  'ICC_AP1R0_EL1',
  'ICC_AP1R1_EL1',
  'ICC_AP1R2_EL1',
  'ICC_AP1R3_EL1',
  'ICC_DIR_EL1',
  'ICC_RPR_EL1',
  'ICC_SGI1R_EL1',
  'ICC_ASGI1R_EL1',
  'ICC_SGI0R_EL1',
  'ICC_IAR1_EL1',
  'ICC_EOIR1_EL1',
  'ICC_HPPIR1_EL1',
  'ICC_BPR1_EL1',
  'ICC_CTLR_EL1',
  'ICC_SRE_EL1',
  'ICC_IGRPEN0_EL1',
  'ICC_IGRPEN1_EL1',
] as const;

export type IccSysregName = (typeof ICC_SYSREG_NAMES)[number];

/** One row of a system-register table (the vgic's ICC_* here; the timer's in kvm/timer). */
export interface SysregDesc<N extends string = string> {
  readonly name: N;
  readonly op0: number;
  readonly op1: number;
  readonly crn: number;
  readonly crm: number;
  readonly op2: number;
  /** KVM CPU_SYSREGS attr encoding. */
  readonly enc: number;
  /** Guest writes trap to the host (SGI generation). */
  readonly trap?: boolean;
  read?(cpu: VcpuCpuIf): bigint;
  write?(cpu: VcpuCpuIf, value: bigint): void;
  /** Userspace get/set; only registers with these are in the CPU_SYSREGS group. */
  uget?(h: Host, v: number): bigint;
  uset?(h: Host, v: number, value: bigint): void;
}

export function sysregEncoding(op0: number, op1: number, crn: number, crm: number, op2: number): number {
  return (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2;
}

// ICC_CTLR_EL1 fields.
export const ICC_CTLR_CBPR = 1 << 0;
export const ICC_CTLR_EOIMODE = 1 << 1;
export const ICC_CTLR_PRIBITS_SHIFT = 8;
export const ICC_CTLR_IDBITS_SHIFT = 11;
export const ICC_CTLR_SEIS = 1 << 14;
export const ICC_CTLR_A3V = 1 << 15;
/** PRIbits holds the number of priority bits minus one. */
const CTLR_PRIBITS = PRI_BITS - 1;
/** IDbits 0 = 16-bit INTIDs (LPIs up to 65535, VGIC_LPI_MAX_INTID). */
const CTLR_IDBITS = 0;
/** The virtual CPU interface accepts Aff3 in SGI generation; no SEI support. */
const CTLR_A3V = 1;
/** ICC_SRE_EL1 as a GICv3 guest sees it: SRE | DFB | DIB (spec §1.6). */
export const ICC_SRE_VALUE = 7n;

const vbOf = (cpu: VcpuCpuIf) => vcpuOff(cpu.h.g, cpu.v);
const lo32 = (v: bigint) => Number(v & 0xffffffffn);

/** ICC_CTLR_EL1 from VMCR and the implementation's fixed fields. */
function ctlrValue(m: Int32Array, vb: number): bigint {
  const v =
    (CTLR_PRIBITS << ICC_CTLR_PRIBITS_SHIFT) |
    (CTLR_IDBITS << ICC_CTLR_IDBITS_SHIFT) |
    (CTLR_A3V ? ICC_CTLR_A3V : 0) |
    (m[vb + VCPU.off.eoiMode] ? ICC_CTLR_EOIMODE : 0) |
    (m[vb + VCPU.off.cbpr] ? ICC_CTLR_CBPR : 0);
  return BigInt(v >>> 0);
}

/**
 * Userspace ICC_CTLR_EL1 restore (set_gic_ctlr): refuse state this implementation cannot provide
 * (more priority or ID bits, a different SEIS/A3V), then take CBPR and EOImode. Fewer priority/ID
 * bits are accepted; the model keeps its fixed 5 bits, so a later get reports 5 again.
 */
function setCtlr(m: Int32Array, vb: number, value: bigint): void {
  const v = lo32(value);
  if (((v >>> ICC_CTLR_PRIBITS_SHIFT) & 7) > CTLR_PRIBITS) kvmErr('EINVAL', 'ICC_CTLR_EL1: more priority bits than implemented');
  if (((v >>> ICC_CTLR_IDBITS_SHIFT) & 7) > CTLR_IDBITS) kvmErr('EINVAL', 'ICC_CTLR_EL1: more ID bits than implemented');
  if ((v & ICC_CTLR_SEIS) !== 0) kvmErr('EINVAL', 'ICC_CTLR_EL1: SEIS not supported');
  if (((v & ICC_CTLR_A3V) !== 0) !== (CTLR_A3V === 1)) kvmErr('EINVAL', 'ICC_CTLR_EL1: A3V differs');
  m[vb + VCPU.off.cbpr] = v & ICC_CTLR_CBPR ? 1 : 0;
  m[vb + VCPU.off.eoiMode] = v & ICC_CTLR_EOIMODE ? 1 : 0;
}

type Partial_ = Omit<SysregDesc, 'name' | 'op0' | 'op1' | 'crn' | 'crm' | 'op2' | 'enc'>;

function reg(name: IccSysregName, op0: number, op1: number, crn: number, crm: number, op2: number, d: Partial_): SysregDesc {
  return { name, op0, op1, crn, crm, op2, enc: sysregEncoding(op0, op1, crn, crm, op2), ...d };
}

/**
 * ICC_AP{0,1}R<n>_EL1. With 5 priority bits only AP<g>R0 exists (32 preemption levels, one bit
 * each, the layout the model's ap0r/ap1r words already use); the others are RAZ/WI for the guest
 * and -EINVAL for userspace (vgic_v3_max_apr_idx).
 */
function apr(group: 0 | 1, n: number): SysregDesc {
  const field = group ? VCPU.off.ap1r : VCPU.off.ap0r;
  const name = `ICC_AP${group}R${n}_EL1` as IccSysregName;
  const check = () => {
    if (n > 0) kvmErr('EINVAL', `${name}: not implemented with ${PRI_BITS} priority bits`);
  };
  return reg(name, 3, 0, 12, group ? 9 : 8, group ? n : 4 + n, {
    read: (cpu) => (n === 0 ? BigInt(cpu.h.m[vbOf(cpu) + field]! >>> 0) : 0n),
    write: (cpu, v) => {
      if (n === 0) cpu.h.m[vbOf(cpu) + field] = lo32(v);
    },
    uget: (h, v) => {
      check();
      return BigInt(h.m[vcpuOff(h.g, v) + field]! >>> 0);
    },
    uset: (h, v, val) => {
      check();
      h.m[vcpuOff(h.g, v) + field] = lo32(val);
    },
  });
}

function sgi(name: IccSysregName, op1: number, op2: number, allowGroup1: boolean): SysregDesc {
  return reg(name, 3, op1, 12, 11, op2, {
    trap: true,
    write: (cpu, v) => vgicV3DispatchSgi(cpu.h, cpu.v, v, allowGroup1),
  });
}

function grpen(group: 0 | 1): SysregDesc {
  const field = group ? VCPU.off.eng1 : VCPU.off.eng0;
  return reg(group ? 'ICC_IGRPEN1_EL1' : 'ICC_IGRPEN0_EL1', 3, 0, 12, 12, 6 + group, {
    read: (cpu) => BigInt(cpu.h.m[vbOf(cpu) + field]! & 1),
    write: (cpu, v) => cpu.enableGroup(group, (v & 1n) !== 0n),
    uget: (h, v) => BigInt(h.m[vcpuOff(h.g, v) + field]! & 1),
    uset: (h, v, val) => void (h.m[vcpuOff(h.g, v) + field] = Number(val & 1n)),
  });
}

/** The vgic's GICv3 CPU interface registers (vgic-sys-reg-v3.c). */
export const ICC_SYSREGS: readonly SysregDesc[] = [
  reg('ICC_PMR_EL1', 3, 0, 4, 6, 0, {
    read: (cpu) => BigInt(cpu.pmr),
    write: (cpu, v) => void (cpu.pmr = Number(v & 0xffn)),
    uget: (h, v) => BigInt(h.m[vcpuOff(h.g, v) + VCPU.off.pmr]! & 0xff),
    uset: (h, v, val) => void (h.m[vcpuOff(h.g, v) + VCPU.off.pmr] = Number(val & 0xf8n)),
  }),
  reg('ICC_IAR0_EL1', 3, 0, 12, 8, 0, { read: (cpu) => BigInt(cpu.iar(0)) }),
  reg('ICC_EOIR0_EL1', 3, 0, 12, 8, 1, { write: (cpu, v) => cpu.eoi(Number(v & 0xffffffn), 0) }),
  reg('ICC_HPPIR0_EL1', 3, 0, 12, 8, 2, { read: (cpu) => BigInt(cpu.hppir(0)) }),
  reg('ICC_BPR0_EL1', 3, 0, 12, 8, 3, {
    read: (cpu) => BigInt(cpu.bpr0),
    write: (cpu, v) => void (cpu.bpr0 = Number(v & 7n)),
    uget: (h, v) => BigInt(readBpr0(h.m, vcpuOff(h.g, v))),
    uset: (h, v, val) => void (h.m[vcpuOff(h.g, v) + VCPU.off.bpr0] = Math.max(Number(val & 7n), MIN_BPR0)),
  }),
  apr(0, 0),
  apr(0, 1),
  apr(0, 2),
  apr(0, 3),
  apr(1, 0),
  apr(1, 1),
  apr(1, 2),
  apr(1, 3),
  reg('ICC_DIR_EL1', 3, 0, 12, 11, 1, { write: (cpu, v) => cpu.dir(Number(v & 0xffffffn)) }),
  reg('ICC_RPR_EL1', 3, 0, 12, 11, 3, { read: (cpu) => BigInt(cpu.rpr()) }),
  // Group rule (kernel access_gic_sgi): SGI1R may raise either group; SGI0R only group 0; and
  // with DS=1 there is no "alternative" group, so ASGI1R behaves as SGI0R.
  sgi('ICC_SGI1R_EL1', 0, 5, true),
  sgi('ICC_ASGI1R_EL1', 1, 6, false),
  sgi('ICC_SGI0R_EL1', 2, 7, false),
  reg('ICC_IAR1_EL1', 3, 0, 12, 12, 0, { read: (cpu) => BigInt(cpu.iar(1)) }),
  reg('ICC_EOIR1_EL1', 3, 0, 12, 12, 1, { write: (cpu, v) => cpu.eoi(Number(v & 0xffffffn), 1) }),
  reg('ICC_HPPIR1_EL1', 3, 0, 12, 12, 2, { read: (cpu) => BigInt(cpu.hppir(1)) }),
  reg('ICC_BPR1_EL1', 3, 0, 12, 12, 3, {
    read: (cpu) => BigInt(cpu.bpr1),
    write: (cpu, v) => void (cpu.bpr1 = Number(v & 7n)),
    uget: (h, v) => BigInt(readBpr1(h.m, vcpuOff(h.g, v))),
    // While CBPR=1, BPR1 is an alias of BPR0 + 1 and writes are ignored (spec §5.1).
    uset: (h, v, val) => {
      const vb = vcpuOff(h.g, v);
      if (!h.m[vb + VCPU.off.cbpr]) h.m[vb + VCPU.off.bpr1] = Math.max(Number(val & 7n), MIN_BPR1);
    },
  }),
  reg('ICC_CTLR_EL1', 3, 0, 12, 12, 4, {
    read: (cpu) => ctlrValue(cpu.h.m, vbOf(cpu)),
    // A guest write changes only CBPR and EOImode.
    // (setEoiMode records the VMCR for the history, CBPR included.)
    write: (cpu, v) => {
      cpu.h.m[vbOf(cpu) + VCPU.off.cbpr] = (v & BigInt(ICC_CTLR_CBPR)) !== 0n ? 1 : 0;
      cpu.setEoiMode((v & BigInt(ICC_CTLR_EOIMODE)) !== 0n);
    },
    uget: (h, v) => ctlrValue(h.m, vcpuOff(h.g, v)),
    uset: (h, v, val) => setCtlr(h.m, vcpuOff(h.g, v), val),
  }),
  reg('ICC_SRE_EL1', 3, 0, 12, 12, 5, {
    read: () => ICC_SRE_VALUE,
    write: () => {}, // SRE is fixed at 1 by the hypervisor; DFB/DIB are RAO/WI
    uget: () => ICC_SRE_VALUE,
    uset: (_h, _v, val) => {
      if (val !== ICC_SRE_VALUE) kvmErr('EINVAL', 'ICC_SRE_EL1 must be SRE|DFB|DIB');
    },
  }),
  grpen(0),
  grpen(1),
];

/** By encoding: the CPU_SYSREGS attribute group is the vgic's registers only. */
const ICC_SYSREGS_BY_ENC: ReadonlyMap<number, SysregDesc> = new Map(ICC_SYSREGS.map((r) => [r.enc, r]));

/** HAS_DEVICE_ATTR for CPU_SYSREGS: an AArch64 encoding of a register userspace may save/restore. */
export function hasSysreg(enc: number): boolean {
  return ICC_SYSREGS_BY_ENC.get(enc)?.uget !== undefined;
}

/**
 * CPU_SYSREGS get/set of vCPU v's register `enc` (caller holds the device-API locks). Registers
 * outside the group (including every AArch32 encoding, whose op0 field is 0) are -ENXIO.
 * Returns the value read, or 0n for a write.
 */
export function sysregUaccess(h: Host, v: number, enc: number, isWrite: boolean, value: bigint): bigint {
  const r = ICC_SYSREGS_BY_ENC.get(enc);
  if (!r?.uget || !r.uset) kvmErr('ENXIO', `no GICv3 CPU system register with encoding 0x${enc.toString(16)}`);
  if (isWrite) {
    r.uset(h, v, BigInt.asUintN(64, value));
    if (h.hist) traceVmcr(h, v);
    return 0n;
  }
  return r.uget(h, v);
}
