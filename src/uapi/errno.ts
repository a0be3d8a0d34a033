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

/**
 * The error every KVM-shaped call throws, in the shape of Node's SystemError: `code` is the errno
 * name ('EBUSY'), `errno` the negative number an ioctl returns (-16), `syscall` the ioctl (or
 * call) that failed ('KVM_IRQFD'), so `e.code === 'EAGAIN'` reads as it does for fs or net errors.
 */
export class KvmError extends Error {
  readonly code: ErrnoName;
  /** Negative errno, as the kernel returns it (and as Node's SystemError.errno is on Linux). */
  readonly errno: number;
  /**
   * The ioctl or call that failed: set by the API method that received the call (kvm/ioctl-names.ts),
   * else the one named at the start of the message, else 'ioctl'.
   */
  syscall: string;
  constructor(code: ErrnoName, message?: string, syscall?: string) {
    super(`${code} (${-ERRNO[code]})${message ? `: ${message}` : ''}`);
    this.name = 'KvmError';
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall ?? /^([A-Z][A-Z0-9_]{2,}|[a-z][A-Za-z]*(?:\.[A-Za-z]+)?)(?=: )/.exec(message ?? '')?.[1] ?? 'ioctl';
  }
}

export function kvmErr(code: ErrnoName, message?: string, syscall?: string): never {
  throw new KvmError(code, message, syscall);
}
