/**
 * Linux errno numbers (include/uapi/asm-generic/errno-base.h, errno.h) and the error type every
 * KVM-shaped call throws. `code` is negative, as an ioctl returns it.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof ERRNO;

export class KvmError extends Error {
  readonly errno: ErrnoName;
  /** Negative errno, as the kernel returns it. */
  readonly code: number;
  constructor(errno: ErrnoName, message?: string) {
    super(`${errno} (${-ERRNO[errno]})${message ? `: ${message}` : ''}`);
    this.name = 'KvmError';
    this.errno = errno;
    this.code = -ERRNO[errno];
  }
}

export function kvmErr(errno: ErrnoName, message?: string): never {
  throw new KvmError(errno, message);
}

