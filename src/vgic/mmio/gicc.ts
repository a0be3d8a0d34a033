/**
 * The GICv2 CPU interface frame as the guest sees it (spec §5.3). In KVM this is the hardware
 * GICV frame mapped into the guest: accesses do not trap, the virtual CPU interface works directly
 * on the list registers. Here every row calls the vCPU's CPU interface (VcpuCpuIf), the same
 * object GuestCpu and the GICv3 system registers use, on the vCPU's own thread, so it takes no
 * locks; the aliased group-1 registers (AIAR/AEOIR/AHPPIR) are its group-1 operations. (Mainline
 * leaves the page holding GICC_DIR unmapped: VcpuCpuIf.dir traps it.)
 */
import { traceVmcr } from '../trace.js';
import { IMPLEMENTER_ARM, PRODUCT_ID_KVM } from '../../uapi/kvm.js';
import { VCPU } from '../../shm/layouts.js';
import { vcpuOff } from '../../shm/vm-memory.js';
import type { VcpuCpuIf } from '../vcpu-cpuif.js';
import { makeCtx, frameRead, frameWrite, makeFrame, raz, W32, wi, type MmioCtx, type RegDesc, type RegRead, type RegWrite } from './table.js';

export const GICC_CTLR = 0x0000;
export const GICC_PMR = 0x0004;
export const GICC_BPR = 0x0008;
export const GICC_IAR = 0x000c;
export const GICC_EOIR = 0x0010;
export const GICC_RPR = 0x0014;
export const GICC_HPPIR = 0x0018;
export const GICC_ABPR = 0x001c;
export const GICC_AIAR = 0x0020;
export const GICC_AEOIR = 0x0024;
export const GICC_AHPPIR = 0x0028;
export const GICC_APR0 = 0x00d0;
export const GICC_NSAPR0 = 0x00e0;
export const GICC_IIDR = 0x00fc;
export const GICC_DIR = 0x1000;
export const GICC_FRAME_SIZE = 0x2000;

/** GICC_CTLR bit positions (GICv2 virtual CPU interface, GICV_CTLR). */
export const CTLR_ENABLE_GRP0 = 0;
export const CTLR_ENABLE_GRP1 = 1;
export const CTLR_ACKCTL = 2;
export const CTLR_FIQEN = 3;
export const CTLR_CBPR = 4;
export const CTLR_EOIMODE = 9;

/** GICC_IIDR: ProductID 'K' [31:20], architecture version 2 [19:16], ARM implementer [11:0]. */
export const GICC_IIDR_VALUE = ((PRODUCT_ID_KVM << 20) | (2 << 16) | IMPLEMENTER_ARM) >>> 0;

/** GICC_CTLR from the VMCR fields of the vCPU whose record starts at `vb`. */
export function vmcrToCtlr(m: Int32Array, vb: number): number {
  return (
    ((m[vb + VCPU.off.eng0]! & 1) << CTLR_ENABLE_GRP0) |
    ((m[vb + VCPU.off.eng1]! & 1) << CTLR_ENABLE_GRP1) |
    ((m[vb + VCPU.off.ackCtl]! & 1) << CTLR_ACKCTL) |
    ((m[vb + VCPU.off.fiqEn]! & 1) << CTLR_FIQEN) |
    ((m[vb + VCPU.off.cbpr]! & 1) << CTLR_CBPR) |
    ((m[vb + VCPU.off.eoiMode]! & 1) << CTLR_EOIMODE)
  );
}

/** The writable GICC_CTLR bits into VMCR (enables, AckCtl, FIQEn, CBPR, EOImode). */
export function ctlrToVmcr(m: Int32Array, vb: number, val: number): void {
  m[vb + VCPU.off.eng0] = (val >>> CTLR_ENABLE_GRP0) & 1;
  m[vb + VCPU.off.eng1] = (val >>> CTLR_ENABLE_GRP1) & 1;
  m[vb + VCPU.off.ackCtl] = (val >>> CTLR_ACKCTL) & 1;
  m[vb + VCPU.off.fiqEn] = (val >>> CTLR_FIQEN) & 1;
  m[vb + VCPU.off.cbpr] = (val >>> CTLR_CBPR) & 1;
  m[vb + VCPU.off.eoiMode] = (val >>> CTLR_EOIMODE) & 1;
}

/**
 * GICv2 hardware has one active-priority register for both groups (GICH_APR); with 5 priority
 * bits only APR0 exists (one bit per preemption level). The model keeps the groups apart, so a
 * read merges them and a write keeps a level in group 1 only if it already was there.
 */
export function readApr0(m: Int32Array, vb: number): number {
  return (m[vb + VCPU.off.ap0r]! | m[vb + VCPU.off.ap1r]!) >>> 0;
}
export function writeApr0(m: Int32Array, vb: number, val: number): void {
  const g1 = m[vb + VCPU.off.ap1r]! & val;
  m[vb + VCPU.off.ap1r] = g1;
  m[vb + VCPU.off.ap0r] = val & ~g1;
}

interface GiccCtx extends MmioCtx {
  cpu: VcpuCpuIf;
}
const ctx = makeCtx() as GiccCtx;

function cpuOf(c: MmioCtx): VcpuCpuIf {
  return (c as GiccCtx).cpu;
}
function vbOf(c: MmioCtx): number {
  return vcpuOff(c.h.g, c.vcpu);
}

const readCtlr: RegRead = (c) => vmcrToCtlr(c.h.m, vbOf(c));
const writeCtlr: RegWrite = (c, _a, _l, val) => {
  ctlrToVmcr(c.h.m, vbOf(c), val);
  if (c.h.hist) traceVmcr(c.h, c.vcpu);
};

const ROWS: RegDesc[] = [
  { name: 'CTLR', offset: GICC_CTLR, len: 4, bitsPerIrq: 0, widths: W32, read: readCtlr, write: writeCtlr },
  { name: 'PMR', offset: GICC_PMR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).pmr, write: (c, _a, _l, v) => void (cpuOf(c).pmr = v & 0xff) },
  { name: 'BPR', offset: GICC_BPR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).bpr0, write: (c, _a, _l, v) => void (cpuOf(c).bpr0 = v) },
  { name: 'IAR', offset: GICC_IAR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).iar(-1), write: wi },
  { name: 'EOIR', offset: GICC_EOIR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: (c, _a, _l, v) => cpuOf(c).eoi(v, -1) },
  { name: 'RPR', offset: GICC_RPR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).rpr(), write: wi },
  { name: 'HPPIR', offset: GICC_HPPIR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).hppir(-1), write: wi },
  { name: 'ABPR', offset: GICC_ABPR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).bpr1, write: (c, _a, _l, v) => void (cpuOf(c).bpr1 = v) },
  { name: 'AIAR', offset: GICC_AIAR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).iar(1), write: wi },
  { name: 'AEOIR', offset: GICC_AEOIR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: (c, _a, _l, v) => cpuOf(c).eoi(v, 1) },
  { name: 'AHPPIR', offset: GICC_AHPPIR, len: 4, bitsPerIrq: 0, widths: W32, read: (c) => cpuOf(c).hppir(1), write: wi },
  {
    name: 'APR0-3',
    offset: GICC_APR0,
    len: 16,
    bitsPerIrq: 0,
    widths: W32,
    read: (c, a) => (a === GICC_APR0 ? readApr0(c.h.m, vbOf(c)) : 0),
    write: (c, a, _l, v) => (a === GICC_APR0 ? writeApr0(c.h.m, vbOf(c), v) : undefined),
  },
  // Non-secure APRs: only present with the Security Extensions, which a GICV frame does not have.
  { name: 'NSAPR0-3', offset: GICC_NSAPR0, len: 16, bitsPerIrq: 0, widths: W32, read: raz, write: wi },
  { name: 'IIDR', offset: GICC_IIDR, len: 4, bitsPerIrq: 0, widths: W32, read: () => GICC_IIDR_VALUE, write: wi },
  { name: 'DIR', offset: GICC_DIR, len: 4, bitsPerIrq: 0, widths: W32, read: raz, write: (c, _a, _l, v) => cpuOf(c).dir(v) },
];

export const GICC = makeFrame('GICC', GICC_FRAME_SIZE, ROWS);

function bind(cpu: VcpuCpuIf): GiccCtx {
  ctx.h = cpu.h;
  ctx.cpu = cpu;
  ctx.vcpu = cpu.v;
  ctx.accessor = cpu.v;
  return ctx;
}

/** Guest read of `len` bytes at offset `off` of the GICC frame (32-bit accesses only). */
export function giccRead(cpu: VcpuCpuIf, off: number, len: number): number {
  return frameRead(GICC, bind(cpu), off, len);
}

export function giccWrite(cpu: VcpuCpuIf, off: number, len: number, value: number): void {
  frameWrite(GICC, bind(cpu), off, len, value);
}
