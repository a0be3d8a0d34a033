/**
 * The vgic's accesses to guest memory (kvm_read_guest / kvm_write_guest): the ITS command queue,
 * its tables, and the LPI property and pending tables. Guest RAM is guest physical addresses
 * 0 .. ramBytes; an access outside it fails (the kernel's -EFAULT), and callers treat that as the
 * kernel does (a command is skipped, a restore fails).
 *
 * Plain (non-atomic) accesses: the guest writes these tables and then tells the vgic (CWRITER, INV),
 * an MMIO exit orders the two; concurrent guest writes are the guest's race, as on hardware.
 */
import type { Host } from './host.js';

export function gpaValid(h: Host, gpa: number, len: number): boolean {
  return Number.isSafeInteger(gpa) && gpa >= 0 && gpa + len <= h.ram.byteLength;
}

export function readGuest8(h: Host, gpa: number): number | null {
  return gpaValid(h, gpa, 1) ? h.ram[gpa]! : null;
}

export function writeGuest8(h: Host, gpa: number, v: number): boolean {
  if (!gpaValid(h, gpa, 1)) return false;
  h.ram[gpa] = v;
  return true;
}

/** Little-endian u64 at gpa, or null outside guest RAM. */
export function readGuest64(h: Host, gpa: number): bigint | null {
  return gpaValid(h, gpa, 8) ? h.ramView.getBigUint64(gpa, true) : null;
}

export function writeGuest64(h: Host, gpa: number, v: bigint): boolean {
  if (!gpaValid(h, gpa, 8)) return false;
  h.ramView.setBigUint64(gpa, BigInt.asUintN(64, v), true);
  return true;
}

/** A 64-bit register kept as two int32 words [lo, hi] in shared memory. */
export function reg64(m: Int32Array, lo: number): bigint {
  return (BigInt(Atomics.load(m, lo + 1) >>> 0) << 32n) | BigInt(Atomics.load(m, lo) >>> 0);
}

export function setReg64(m: Int32Array, lo: number, v: bigint): void {
  Atomics.store(m, lo, Number(v & 0xffffffffn) | 0);
  Atomics.store(m, lo + 1, Number((v >> 32n) & 0xffffffffn) | 0);
}
