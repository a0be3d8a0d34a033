/**
 * The wake-up callback and its work hand-off (the kernel's irqfd_wakeup: inject in the writer's
 * context, or -EWOULDBLOCK and schedule_work). The owner's worker may take only what was handed
 * to it, so a count consumed by a writer's callback is never also seen as work.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EFD_SEMAPHORE, EventFd } from '../../src/eventfd/eventfd.js';
import { setWakeupHandler } from '../../src/eventfd/wakeup.js';

const OWNER = 0x5eed;
afterEach(() => setWakeupHandler(OWNER, null));

describe('eventfd wake-up work hand-off', () => {
  it('a callback that completes in the writer thread schedules no work', () => {
    const fd = new EventFd();
    const seen: number[] = [];
    setWakeupHandler(OWNER, (cookie, efd) => {
      seen.push(cookie);
      efd.tryRead();
      return true;
    });
    expect(fd.bindWakeup(OWNER, 7)).toBe(true);
    for (let i = 0; i < 5; i++) fd.signal(1n);
    fd.write(3n);
    expect(seen).toEqual([7, 7, 7, 7, 7, 7]);
    expect(fd.value).toBe(0n);
    expect(fd.takeWork()).toBe(0);
  });

  it('a callback that declines hands one unit of work per signal, and leaves the count', () => {
    const fd = new EventFd(0, EFD_SEMAPHORE);
    setWakeupHandler(OWNER, () => false);
    fd.bindWakeup(OWNER, 1);
    fd.signal(1n);
    fd.signal(1n);
    fd.write(1n);
    expect(fd.value).toBe(3n);
    expect(fd.takeWork()).toBe(3);
    expect(fd.takeWork()).toBe(0);
  });

  it('a thread with no handler for the owner hands the work on; an unbound eventfd schedules none', () => {
    const bound = new EventFd();
    bound.bindWakeup(OWNER, 1); // no handler registered in this thread
    bound.signal(2n);
    expect(bound.takeWork()).toBe(1);
    const plain = new EventFd();
    plain.signal(1n);
    expect(plain.takeWork()).toBe(0);
  });

  it('a close that its thread cannot handle is handed on, and the waiter sees EBADF', async () => {
    const fd = new EventFd();
    fd.bindWakeup(OWNER, 1);
    const wait = fd.waitWorkAsync(5_000);
    fd.close();
    await expect(wait).rejects.toMatchObject({ name: 'KvmError' });
  });

  it('waitWorkAsync resolves on scheduled work, not on a count the callback consumed', async () => {
    const fd = new EventFd();
    setWakeupHandler(OWNER, (_c, efd) => {
      efd.tryRead();
      return true;
    });
    fd.bindWakeup(OWNER, 1);
    fd.signal(1n);
    await expect(fd.waitWorkAsync(20)).resolves.toBe(false);
    setWakeupHandler(OWNER, () => false);
    const w = fd.waitWorkAsync(5_000);
    fd.signal(1n);
    await expect(w).resolves.toBe(true);
    expect(fd.takeWork()).toBe(1);
  });
});
