/**
 * KVM_DEV_ARM_VGIC_GRP_CPU_REGS (GICv2): userspace's view of a vCPU's CPU interface state, i.e.
 * its VMCR and active priorities, laid out like GICC registers (kernel vgic-mmio-v2.c
 * vgic_v2_cpu_registers; spec §5.3). Runs with every vCPU locked out, so plain accesses.
 *
 * ABI quirk kept: PMR is exported as the 5-bit GICH_VMCR.VMPriMask in the low bits (the real
 * priority is value << 3), not as GICC_PMR.Priority. BPR/ABPR are the raw VMCR fields (the CPU
 * interface clamps them to the minimum binary point when it uses them).
 */
import { VCPU } from '../../shm/layouts.js';
import { vcpuOff } from '../../shm/vm-memory.js';
import { ctlrToVmcr, GICC_ABPR, GICC_APR0, GICC_BPR, GICC_CTLR, GICC_IIDR, GICC_IIDR_VALUE, GICC_PMR, readApr0, vmcrToCtlr, writeApr0 } from './gicc.js';
import { makeFrame, W32, wi, type MmioCtx, type RegDesc } from './table.js';

const vb = (c: MmioCtx) => vcpuOff(c.h.g, c.vcpu);

const ROWS: RegDesc[] = [
  { name: 'CTLR', offset: GICC_CTLR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => vmcrToCtlr(c.h.m, vb(c)), write: (c, _a, _l, v) => ctlrToVmcr(c.h.m, vb(c), v) },
  {
    name: 'PMR',
    offset: GICC_PMR,
    len: 4,
    bitsPerIrq: 0,
    widths: W32,
    read: (c) => (c.h.m[vb(c) + VCPU.off.pmr]! & 0xf8) >>> 3,
    write: (c, _a, _l, v) => void (c.h.m[vb(c) + VCPU.off.pmr] = (v << 3) & 0xf8),
  },
  { name: 'BPR', offset: GICC_BPR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => c.h.m[vb(c) + VCPU.off.bpr0]! & 7, write: (c, _a, _l, v) => void (c.h.m[vb(c) + VCPU.off.bpr0] = v & 7) },
  { name: 'ABPR', offset: GICC_ABPR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => c.h.m[vb(c) + VCPU.off.bpr1]! & 7, write: (c, _a, _l, v) => void (c.h.m[vb(c) + VCPU.off.bpr1] = v & 7) },
  {
    // A flat 128-level bitmap in APR0..3; with 5 priority bits only APR0's 32 levels exist, the
    // others are RAZ/WI (spec §5.3).
    name: 'APR0-3',
    offset: GICC_APR0,
    len: 16,
    bitsPerIrq: 0,
    widths: W32,
    read: (c, a) => (a === GICC_APR0 ? readApr0(c.h.m, vb(c)) : 0),
    write: (c, a, _l, v) => (a === GICC_APR0 ? writeApr0(c.h.m, vb(c), v) : undefined),
  },
  { name: 'IIDR', offset: GICC_IIDR, len: 4, bitsPerIrq: 0, widths: W32, read: () => GICC_IIDR_VALUE, write: wi },
];

export const CPU_REGS = makeFrame('CPU_REGS', 0x1000, ROWS);
