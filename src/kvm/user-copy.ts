/**
 * copy_from_user / get_user at the API boundary: where the kernel takes a user pointer (an
 * attribute's `addr`, the struct behind an ioctl), our calls take the value itself. A value that
 * is not there (null, undefined) or not of the pointed-to type is the kernel's unreadable
 * pointer: EFAULT, never a TypeError from deep inside.
 */
import { kvmErr } from '../uapi/errno.js';
import { describe } from './vm-options.js';

/** The struct or array an ioctl reads: EFAULT when null/undefined or not an object. */
export function copyFromUser<T extends object>(v: T | null | undefined, what: string): T {
  if (v === null || v === undefined || typeof v !== 'object') kvmErr('EFAULT', `${what}: no readable value (${v === null ? 'null' : typeof v})`);
  return v;
}

/**
 * A u64 (or smaller) read through a user pointer, as a u64. Missing (null, undefined): EFAULT, the
 * unreadable pointer. Present but no integer (1.5, NaN, a string, an object): EINVAL naming the
 * value, a caller bug that has no kernel counterpart and must not surface as a RangeError.
 */
export function getUserU64(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt.asUintN(64, BigInt(v));
  if (v === null || v === undefined) kvmErr('EFAULT', `${what}: no readable value (${v === null ? 'null' : 'undefined'})`);
  kvmErr('EINVAL', `${what}: value must be a u64 (a bigint or an integer number), got ${describe(v)}`);
}

/**
 * kvm_device_attr's group (u32) and attr (u64) as a device ioctl receives them. Numbers that are
 * not integers, and other types, are EINVAL naming the argument (never a RangeError).
 */
export function deviceAttr(group: unknown, attr: unknown, ioctl: string): bigint {
  if (typeof group !== 'number' || !Number.isInteger(group) || group < 0 || group > 0xffff_ffff) kvmErr('EINVAL', `${ioctl}: group must be a u32, got ${describe(group)}`, ioctl);
  if (typeof attr === 'bigint') {
    if (attr < 0n || attr > 0xffff_ffff_ffff_ffffn) kvmErr('EINVAL', `${ioctl}: attr must be a u64, got ${attr}n`, ioctl);
    return attr;
  }
  if (typeof attr !== 'number' || !Number.isInteger(attr) || attr < 0) kvmErr('EINVAL', `${ioctl}: attr must be a u64 (a bigint or an integer number), got ${describe(attr)}`, ioctl);
  return BigInt(attr);
}
