/**
 * copy_from_user / get_user at the API boundary: where the kernel takes a user pointer (an
 * attribute's `addr`, the struct behind an ioctl), our calls take the value itself. A value that
 * is not there (null, undefined) or not of the pointed-to type is the kernel's unreadable
 * pointer: EFAULT, never a TypeError from deep inside.
 */
import { kvmErr } from './errno.js';

/** The struct or array an ioctl reads: EFAULT when null/undefined or not an object. */
export function copyFromUser<T extends object>(v: T | null | undefined, what: string): T {
  if (v === null || v === undefined || typeof v !== 'object') kvmErr('EFAULT', `${what}: no readable value (${v === null ? 'null' : typeof v})`);
  return v;
}

/** A u64 (or smaller) read through a user pointer, as a u64: EFAULT unless a bigint or an integer. */
export function getUserU64(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt.asUintN(64, BigInt(v));
  kvmErr('EFAULT', `${what}: no readable value (${v === null ? 'null' : typeof v})`);
}
