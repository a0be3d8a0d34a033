/**
 * Wake-up callbacks on an eventfd: the kernel's custom wait-queue entries (irqfd_wakeup in
 * virt/kvm/eventfd.c, virqfd_wakeup in drivers/vfio/virqfd.c). A callback runs in the thread that
 * signalled the eventfd, right after the count was added, which is what makes the irqfd "atomic
 * fast path" run in the writer's own thread.
 *
 * Functions cannot cross threads, so the binding is split in two:
 *  - in the eventfd's shared memory, (owner, cookie): who registered and for what (layout.ts);
 *  - per thread, a handler per owner, registered by every thread that can act for that owner
 *    (a VM's vCPU, device and injector workers, and the VMM's main thread).
 * A thread with no handler for the owner does nothing: the owner's own poller (the irqfd injector
 * worker, a device's loop) sees the count and takes the slow path.
 */
import type { EventFd } from './eventfd.js';

/**
 * `hup`: the eventfd was closed (POLLHUP), not written. Returns true when the wake-up is done in
 * this thread (including "nothing to do"), false when it must go to the owner's worker (the
 * kernel's irqfd_wakeup scheduling its inject work).
 */
export type WakeupHandler = (cookie: number, efd: EventFd, hup: boolean) => boolean;

const handlers = new Map<number, WakeupHandler>();
// A thread almost always serves one VM: remember the last lookup so that a signal on the
// interrupt path costs a compare, not a Map lookup.
let lastOwner = 0;
let lastHandler: WakeupHandler | undefined;

/** Register (or with null, remove) this thread's handler for eventfds bound by `owner`. */
export function setWakeupHandler(owner: number, fn: WakeupHandler | null): void {
  if (fn) handlers.set(owner, fn);
  else handlers.delete(owner);
  lastOwner = 0;
  lastHandler = undefined;
}

/**
 * @internal called by EventFd after a write, signal or close of a bound eventfd. False when this
 * thread has no handler for `owner` or its handler declined: the caller hands the work on.
 */
export function dispatchWakeup(owner: number, cookie: number, efd: EventFd, hup: boolean): boolean {
  if (owner !== lastOwner) {
    lastOwner = owner;
    lastHandler = handlers.get(owner);
  }
  return lastHandler !== undefined && lastHandler(cookie, efd, hup);
}
