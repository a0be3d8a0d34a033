/**
 * The eventfd(2) contract on one thread. Blocking paths and cross-thread wakes:
 * eventfd-threads.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { KvmError, type ErrnoName } from '../../src/uapi/errno.js';
import {
  EventFd, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EVENTFD_MAX,
} from '../../src/eventfd/eventfd.js';

function errnoOf(f: () => unknown): ErrnoName | 'none' {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KvmError);
    return (e as KvmError).code;
  }
  return 'none';
}

async function errnoOfAsync(p: Promise<unknown>): Promise<ErrnoName | 'none'> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KvmError);
    return (e as KvmError).code;
  }
  return 'none';
}

describe('eventfd: flags and creation', () => {
  it('mirrors the eventfd(2) flag values', () => {
    expect(EFD_SEMAPHORE).toBe(1);
    expect(EFD_NONBLOCK).toBe(2048);
    expect(EFD_CLOEXEC).toBe(0o2000000);
  });

  it('accepts every valid flag combination; CLOEXEC is ignored', () => {
    for (const f of [0, EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC]) {
      const fd = new EventFd(0, f);
      expect(fd.flags).toBe(f & ~EFD_CLOEXEC);
    }
  });

  it('rejects unknown flags and a bad initval with EINVAL', () => {
    expect(errnoOf(() => new EventFd(0, 2))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(0, 0o200))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(0, -1))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(0, 1.5))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(-1))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(2 ** 32))).toBe('EINVAL');
    expect(errnoOf(() => new EventFd(0.5))).toBe('EINVAL');
    expect(new EventFd(2 ** 32 - 1).value).toBe(0xffff_ffffn);
  });

  it('starts at initval', () => {
    expect(new EventFd(7, EFD_NONBLOCK).read()).toBe(7n);
  });
});

describe('eventfd: read and write', () => {
  it('write adds; read returns the count and resets it', () => {
    const fd = new EventFd(0, EFD_NONBLOCK);
    fd.write(3n);
    fd.write(4n);
    expect(fd.value).toBe(7n);
    expect(fd.read()).toBe(7n);
    expect(fd.value).toBe(0n);
    expect(errnoOf(() => fd.read())).toBe('EAGAIN');
  });

  it('semaphore mode: read returns 1 and decrements', () => {
    const fd = new EventFd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    fd.write(1n);
    expect([fd.read(), fd.read(), fd.read()]).toEqual([1n, 1n, 1n]);
    expect(errnoOf(() => fd.read())).toBe('EAGAIN');
  });

  it('non-blocking read of 0 fails with EAGAIN (read and readAsync)', async () => {
    const fd = new EventFd(0, EFD_NONBLOCK);
    expect(errnoOf(() => fd.read())).toBe('EAGAIN');
    expect(await errnoOfAsync(fd.readAsync())).toBe('EAGAIN');
  });

  it('write of 0 is allowed and changes nothing', () => {
    const fd = new EventFd(0, EFD_NONBLOCK);
    fd.write(0n);
    expect(fd.value).toBe(0n);
  });

  it('the counter holds up to 2^64-2; overflow fails with EAGAIN when non-blocking', () => {
    const fd = new EventFd(0, EFD_NONBLOCK);
    fd.write(EVENTFD_MAX - 1n);
    fd.write(1n);
    expect(fd.value).toBe(0xffff_ffff_ffff_fffen);
    expect(errnoOf(() => fd.write(1n))).toBe('EAGAIN');
    fd.write(0n); // 0 always fits
    expect(fd.value).toBe(EVENTFD_MAX);
    expect(fd.read()).toBe(EVENTFD_MAX);
    fd.write(EVENTFD_MAX);
    expect(errnoOf(() => fd.write(1n))).toBe('EAGAIN');
    expect(fd.value).toBe(EVENTFD_MAX);
  });

  it('write of 2^64-1 (or anything outside u64) fails with EINVAL and changes nothing', () => {
    const fd = new EventFd(5, EFD_NONBLOCK);
    expect(errnoOf(() => fd.write(0xffff_ffff_ffff_ffffn))).toBe('EINVAL');
    expect(errnoOf(() => fd.write(1n << 64n))).toBe('EINVAL');
    expect(errnoOf(() => fd.write(-1n))).toBe('EINVAL');
    expect(errnoOf(() => fd.write(1 as unknown as bigint))).toBe('EINVAL');
    expect(fd.value).toBe(5n);
  });

  it('tryRead never blocks, even without EFD_NONBLOCK', () => {
    const fd = new EventFd(0, 0);
    expect(fd.tryRead()).toBe(0n);
    fd.write(9n);
    expect(fd.tryRead()).toBe(9n);
    const sem = new EventFd(2, EFD_SEMAPHORE);
    expect([sem.tryRead(), sem.tryRead(), sem.tryRead()]).toEqual([1n, 1n, 0n]);
  });

  it('signal adds without blocking and saturates at 2^64-2', () => {
    const fd = new EventFd(0, 0);
    expect(fd.signal()).toBe(1n);
    expect(fd.signal(EVENTFD_MAX)).toBe(EVENTFD_MAX - 1n);
    expect(fd.value).toBe(EVENTFD_MAX);
    expect(fd.signal()).toBe(0n);
  });

  it('readAsync resolves at once when the count is non-zero, and after a later write', async () => {
    const fd = new EventFd(4, 0);
    expect(await fd.readAsync()).toBe(4n);
    const p = fd.readAsync();
    fd.write(6n);
    expect(await p).toBe(6n);
  });

  it('waitReadable: true when readable, false on timeout; it consumes nothing', async () => {
    const fd = new EventFd(0, 0);
    expect(fd.waitReadable(5)).toBe(false);
    expect(await fd.waitReadableAsync(5)).toBe(false);
    fd.write(2n);
    expect(fd.waitReadable(5)).toBe(true);
    expect(await fd.waitReadableAsync(5)).toBe(true);
    expect(fd.value).toBe(2n);
  });
});

describe('eventfd: close', () => {
  it('later operations fail with EBADF; a second close too', async () => {
    const fd = new EventFd(3, 0);
    fd.close();
    expect(fd.closed).toBe(true);
    expect(errnoOf(() => fd.read())).toBe('EBADF');
    expect(errnoOf(() => fd.write(1n))).toBe('EBADF');
    expect(errnoOf(() => fd.tryRead())).toBe('EBADF');
    expect(errnoOf(() => fd.waitReadable(1))).toBe('EBADF');
    expect(await errnoOfAsync(fd.readAsync())).toBe('EBADF');
    expect(await errnoOfAsync(fd.waitReadableAsync(1))).toBe('EBADF');
    expect(errnoOf(() => fd.close())).toBe('EBADF');
    expect(fd.signal()).toBe(0n);
  });

  it('a pending readAsync and waitReadableAsync fail with EBADF on close', async () => {
    const fd = new EventFd(0, 0);
    const r = fd.readAsync();
    const w = fd.waitReadableAsync();
    expect(fd.waiters().readers).toBe(2);
    fd.close();
    expect(await errnoOfAsync(r)).toBe('EBADF');
    expect(await errnoOfAsync(w)).toBe('EBADF');
    expect(fd.waiters()).toEqual({ readers: 0, writers: 0 });
  });
});

describe('eventfd: sharing', () => {
  it('share()/from() give the same eventfd, token and flags', () => {
    const a = new EventFd(1, EFD_SEMAPHORE | EFD_NONBLOCK);
    const h = structuredClone(a.share());
    const b = EventFd.from(h);
    expect(b.token).toBe(a.token);
    expect(b.flags).toBe(a.flags);
    expect(b.read()).toBe(1n);
    b.write(2n);
    expect(a.value).toBe(2n);
    b.close();
    expect(a.closed).toBe(true);
    expect(new EventFd().token).not.toBe(a.token);
  });

  it('from() rejects something that is not an eventfd handle', () => {
    expect(errnoOf(() => EventFd.from({ kind: 'eventfd', sab: new SharedArrayBuffer(40) }))).toBe('EBADF');
    expect(errnoOf(() => EventFd.from({ kind: 'eventfd', sab: new SharedArrayBuffer(8) }))).toBe('EBADF');
    expect(errnoOf(() => EventFd.from(undefined as never))).toBe('EBADF');
  });
});
