/**
 * EventFd: eventfd(2) on a SharedArrayBuffer, usable from any thread (main or worker).
 *
 * The contract (fs/eventfd.c):
 *  - write(n) adds n; n = 2^64-1 is EINVAL. A write that would take the counter above 2^64-2
 *    blocks until a read makes room, or fails with EAGAIN when EFD_NONBLOCK.
 *  - read() returns the counter and resets it to 0 or, with EFD_SEMAPHORE, returns 1 and
 *    decrements it. A read of 0 blocks, or fails with EAGAIN when EFD_NONBLOCK.
 *  - close() wakes every blocked or pending reader and writer, in every thread, with EBADF, and
 *    every later operation fails with EBADF. (The kernel keeps the ctx alive while referenced; here
 *    one close ends the object for all threads, which is what the VMM-side tests need.)
 *
 * Blocking calls use Atomics.wait (allowed on Node's main thread, but it stops its event loop);
 * readAsync/waitReadableAsync use Atomics.waitAsync and are the way to wait on the main thread.
 * Layout, wake protocol and races: layout.ts.
 *
 * Passing to a worker: `postMessage(fd.share())`, then `EventFd.from(handle)` on the other side.
 */
import { randomBytes } from 'node:crypto';
import { KvmError } from '../uapi/errno.js';
import {
  EVENTFD_SAB_BYTES, F_CLOSED, U64_COUNT, U64_TOKEN, W_ADDED, W_FLAGS, W_MAGIC, W_RD_SEQ, W_RD_WAIT, W_WR_SEQ, W_WR_WAIT, W_TAKEN, W_LOST_WAKES,
  EVENTFD_MAGIC, W_BIND_COOKIE, W_BIND_OWNER, W_WORK, park, parkAsync, wakeAll,
} from './layout.js';
import { dispatchWakeup } from './wakeup.js';

export const EFD_SEMAPHORE = 1;
export const EFD_NONBLOCK = 0o4000;
/** Accepted and ignored: there is no exec here. */
export const EFD_CLOEXEC = 0o2000000;
const EFD_VALID = EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC;

/** Largest value the counter can hold: 2^64-2 (2^64-1 is the kernel's error/overflow marker). */
export const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** What crosses a thread boundary: structured-cloneable, rebuilt with EventFd.from(). */
export interface EventFdHandle {
  readonly kind: 'eventfd';
  readonly sab: SharedArrayBuffer;
}

/**
 * Keeps the event loop alive while an Atomics.waitAsync is pending: in Node 20 a pending waitAsync
 * does not, so a worker whose only work is a pending readAsync would exit silently and a main
 * thread would end with exit code 13 (PLATFORM.md).
 */
function holdEventLoop(): () => void {
  const h = setInterval(() => {}, 0x7fff_ffff);
  return () => clearInterval(h);
}

const EVENTFD_BRAND = Symbol.for('vgic-emu.eventfd');

export class EventFd {
  /** See EventFd.is(). */
  readonly [EVENTFD_BRAND] = true;
  private readonly sab: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;
  /** Immutable after creation, so cached per instance; only F_CLOSED is re-read each time. */
  private readonly semaphore: boolean;
  private readonly nonblock: boolean;

  /**
   * eventfd(initval, flags). initval is an unsigned int, as in the syscall. `sab` is internal:
   * other threads adopt an eventfd with EventFd.from(), which validates the buffer first.
   */
  constructor(initval = 0, flags = 0, sab?: SharedArrayBuffer) {
    if (sab) {
      // EventFd.from(): adopt an existing eventfd.
      this.sab = sab;
      this.i32 = new Int32Array(sab);
      this.u64 = new BigUint64Array(sab, 0, 2);
    } else {
      if (!Number.isInteger(flags) || flags < 0 || (flags & ~EFD_VALID) !== 0 || flags > 0x7fff_ffff) {
        throw new KvmError('EINVAL', `eventfd: bad flags ${flags}`);
      }
      if (!Number.isInteger(initval) || initval < 0 || initval > 0xffff_ffff) {
        throw new KvmError('EINVAL', `eventfd: initval ${initval} is not an unsigned int`);
      }
      this.sab = new SharedArrayBuffer(EVENTFD_SAB_BYTES);
      this.i32 = new Int32Array(this.sab);
      this.u64 = new BigUint64Array(this.sab, 0, 2);
      // Plain stores: nobody else can see the buffer until it is posted, which orders them.
      this.u64[U64_COUNT] = BigInt(initval);
      this.i32[W_ADDED] = initval | 0;
      this.u64[U64_TOKEN] = randomBytes(8).readBigUInt64LE(0);
      this.i32[W_FLAGS] = flags & (EFD_SEMAPHORE | EFD_NONBLOCK);
      this.i32[W_MAGIC] = EVENTFD_MAGIC;
    }
    const f = Atomics.load(this.i32, W_FLAGS);
    this.semaphore = (f & EFD_SEMAPHORE) !== 0;
    this.nonblock = (f & EFD_NONBLOCK) !== 0;
  }

  /**
   * Is `x` an EventFd? A brand, not instanceof: a program can load this module twice (a test
   * importing the sources and a worker the compiled build), and both copies' objects are eventfds.
   */
  static is(x: unknown): x is EventFd {
    return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[EVENTFD_BRAND] === true;
  }

  /** Rebuild an eventfd from share()'s handle, in any thread. */
  static from(h: EventFdHandle): EventFd {
    const sab = h?.sab;
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength !== EVENTFD_SAB_BYTES
      || new Int32Array(sab)[W_MAGIC] !== EVENTFD_MAGIC) {
      throw new KvmError('EBADF', 'not an eventfd handle');
    }
    return new EventFd(0, 0, sab);
  }

  share(): EventFdHandle {
    return { kind: 'eventfd', sab: this.sab };
  }

  /** The same in every thread for the same eventfd (the kernel's eventfd_ctx pointer). */
  get token(): string {
    return this.u64[U64_TOKEN]!.toString(16).padStart(16, '0');
  }

  get flags(): number {
    return Atomics.load(this.i32, W_FLAGS) & (EFD_SEMAPHORE | EFD_NONBLOCK);
  }

  get closed(): boolean {
    return (Atomics.load(this.i32, W_FLAGS) & F_CLOSED) !== 0;
  }

  /** Current counter, without consuming it (for tests and reports). */
  get value(): bigint {
    return Atomics.load(this.u64, U64_COUNT);
  }

  /**
   * Running totals of what was added to and taken from the count, modulo 2^32 (for audits).
   * `balanced` says whether added - taken equals the count: true whenever no write or read is in
   * flight (check/audits.ts asserts it at quiescence). `lostWakes`: waits that found their
   * condition true when their slice ran out and were not woken even after a grace period
   * (layout.ts park()); 0 unless a waker forgot to wake.
   */
  totals(): { added: number; taken: number; balanced: boolean; lostWakes: number } {
    const added = Atomics.load(this.i32, W_ADDED);
    const taken = Atomics.load(this.i32, W_TAKEN);
    return { added: added >>> 0, taken: taken >>> 0, balanced: ((added - taken) | 0) === low32(this.value), lostWakes: Atomics.load(this.i32, W_LOST_WAKES) };
  }

  /** Threads (or pending async waits) currently registered to park, for tests and reports. */
  waiters(): { readers: number; writers: number } {
    return { readers: Atomics.load(this.i32, W_RD_WAIT), writers: Atomics.load(this.i32, W_WR_WAIT) };
  }

  // ---- write side ----

  /** write(2) of a u64. Blocks at the overflow limit unless EFD_NONBLOCK (then EAGAIN). */
  write(n: bigint): void {
    const v = checkWriteValue(n);
    for (;;) {
      this.checkOpen();
      if (this.tryAdd(v)) {
        if (v !== 0n) this.wakeAfterAdd();
        return;
      }
      if (this.nonblock) throw new KvmError('EAGAIN', 'eventfd: write would overflow');
      park(this.i32, W_WR_SEQ, W_WR_WAIT, () => this.closed || this.hasRoom(v), Infinity);
    }
  }

  /**
   * The kernel's eventfd_signal(): used by producers that must not block (device interrupt
   * handlers). Adds n, saturating at EVENTFD_MAX, whatever EFD_NONBLOCK says; returns how much
   * was added. On a closed eventfd it does nothing and returns 0n: the producer (a device) does
   * not own the fd and must not fail because userspace closed it.
   */
  signal(n = 1n): bigint {
    const v = checkWriteValue(n);
    let c = Atomics.load(this.u64, U64_COUNT);
    for (;;) {
      if (this.closed) return 0n;
      const add = EVENTFD_MAX - c < v ? EVENTFD_MAX - c : v;
      if (add === 0n) return 0n;
      const p = Atomics.compareExchange(this.u64, U64_COUNT, c, c + add);
      if (p === c) {
        Atomics.add(this.i32, W_ADDED, low32(add));
        this.wakeAfterAdd();
        return add;
      }
      c = p;
    }
  }

  private hasRoom(v: bigint): boolean {
    return EVENTFD_MAX - Atomics.load(this.u64, U64_COUNT) >= v;
  }

  /** One lock-free attempt: CAS loop until added, or false if it would exceed EVENTFD_MAX. */
  private tryAdd(v: bigint): boolean {
    let c = Atomics.load(this.u64, U64_COUNT);
    for (;;) {
      if (EVENTFD_MAX - c < v) return false;
      // A write of 0 changes nothing and wakes nobody (no reader can proceed on it).
      if (v === 0n) return true;
      const p = Atomics.compareExchange(this.u64, U64_COUNT, c, c + v);
      if (p === c) break;
      c = p; // Lost to a concurrent read/write: retry on the value it left.
    }
    Atomics.add(this.i32, W_ADDED, low32(v));
    return true;
  }

  /**
   * After a successful add (per the wake protocol, layout.ts park()): the bound callback first,
   * as the kernel runs wait-queue callbacks, so that an irqfd's fast path in this thread takes the
   * count in the writer's own thread. A callback that cannot finish here (no handler in this
   * thread, or it declined) hands the wake-up to the owner's worker through the work word. If the
   * callback consumed everything, no reader could proceed, so the 8-12 µs notify is skipped; a
   * count left over (or a concurrent add, which wakes on its own) still wakes them.
   */
  private wakeAfterAdd(): void {
    const owner = Atomics.load(this.i32, W_BIND_OWNER);
    if (owner > 0 && !dispatchWakeup(owner, Atomics.load(this.i32, W_BIND_COOKIE), this, false)) this.scheduleWork();
    else if (owner <= 0 || Atomics.load(this.u64, U64_COUNT) !== 0n) wakeAll(this.i32, W_RD_SEQ, W_RD_WAIT);
  }

  /**
   * @internal schedule_work for the bound owner: `n` more units of work (signals its callback
   * could not complete) for the owner's worker, which waits with waitWorkAsync and takes them with
   * takeWork. Units, not a flag: in semaphore mode each unit is one count to take.
   */
  scheduleWork(n = 1): void {
    Atomics.add(this.i32, W_WORK, n);
    wakeAll(this.i32, W_RD_SEQ, W_RD_WAIT);
  }

  /** @internal Take every scheduled unit of work (0 when none). */
  takeWork(): number {
    return Atomics.load(this.i32, W_WORK) === 0 ? 0 : Atomics.exchange(this.i32, W_WORK, 0);
  }

  /**
   * @internal Wait until work is scheduled (true) or the timeout passes (false); EBADF once
   * closed. Keeps the process alive while pending.
   */
  async waitWorkAsync(timeoutMs = Infinity): Promise<boolean> {
    return this.waitAsyncUntil(() => Atomics.load(this.i32, W_WORK) !== 0, timeoutMs);
  }

  // ---- read side ----

  /** read(2): blocks on 0 unless EFD_NONBLOCK (then EAGAIN). */
  read(): bigint {
    for (;;) {
      this.checkOpen();
      const v = this.take();
      if (v !== 0n) return v;
      if (this.nonblock) throw new KvmError('EAGAIN', 'eventfd: counter is 0');
      park(this.i32, W_RD_SEQ, W_RD_WAIT, () => this.closed || this.value !== 0n, Infinity);
    }
  }

  /**
   * Consume without ever blocking, whatever EFD_NONBLOCK says: the count (or 1 in semaphore
   * mode), or 0n if there was nothing (the kernel's eventfd_ctx_do_read, used to drain at
   * irqfd shutdown). EBADF once closed.
   */
  tryRead(): bigint {
    this.checkOpen();
    return this.take();
  }

  /** read() for the event loop. Pending, it keeps the process (or worker) alive. */
  async readAsync(): Promise<bigint> {
    let release: (() => void) | undefined;
    try {
      for (;;) {
        this.checkOpen();
        const v = this.take();
        if (v !== 0n) return v;
        if (this.nonblock) throw new KvmError('EAGAIN', 'eventfd: counter is 0');
        release ??= holdEventLoop();
        await parkAsync(this.i32, W_RD_SEQ, W_RD_WAIT, () => this.closed || this.value !== 0n, Infinity);
      }
    } finally {
      release?.();
    }
  }

  /** poll(POLLIN) with a timeout: true when readable, false on timeout, EBADF if closed. */
  waitReadable(timeoutMs = Infinity): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.checkOpen();
      if (this.value !== 0n) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      park(this.i32, W_RD_SEQ, W_RD_WAIT, () => this.closed || this.value !== 0n, left);
    }
  }

  /** waitReadable() for the event loop; keeps the process alive while pending. */
  async waitReadableAsync(timeoutMs = Infinity): Promise<boolean> {
    return this.waitAsyncUntil(() => this.value !== 0n, timeoutMs);
  }

  /** Park on the read side (event loop) until `cond` holds (true) or the timeout (false); EBADF once closed. */
  private async waitAsyncUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    let release: (() => void) | undefined;
    try {
      for (;;) {
        this.checkOpen();
        if (cond()) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        release ??= holdEventLoop();
        await parkAsync(this.i32, W_RD_SEQ, W_RD_WAIT, () => this.closed || cond(), left);
      }
    } finally {
      release?.();
    }
  }

  /** Take the count (or 1 in semaphore mode); 0n if empty. Wakes writers when it made room. */
  private take(): bigint {
    let v: bigint;
    if (this.semaphore) {
      let c = Atomics.load(this.u64, U64_COUNT);
      for (;;) {
        if (c === 0n) return 0n;
        const p = Atomics.compareExchange(this.u64, U64_COUNT, c, c - 1n);
        if (p === c) break;
        c = p;
      }
      v = 1n;
    } else {
      // Load first: an empty poll then costs no write to the shared line.
      if (Atomics.load(this.u64, U64_COUNT) === 0n) return 0n;
      v = Atomics.exchange(this.u64, U64_COUNT, 0n);
      if (v === 0n) return 0n; // Another reader took it between the load and the exchange.
    }
    Atomics.add(this.i32, W_TAKEN, low32(v));
    wakeAll(this.i32, W_WR_SEQ, W_WR_WAIT);
    return v;
  }

  // ---- lifetime ----

  /**
   * close(2). Every reader and writer blocked or pending on this eventfd, in any thread, wakes and
   * fails with EBADF; so does every later call. A second close is EBADF, as for an fd.
   */
  close(): void {
    const old = Atomics.or(this.i32, W_FLAGS, F_CLOSED);
    if (old & F_CLOSED) throw new KvmError('EBADF', 'eventfd already closed');
    // Publish-then-wake, as for a write (layout.ts park()): a waiter either sees F_CLOSED in its
    // re-check or is counted in the waiter word we read here.
    wakeAll(this.i32, W_RD_SEQ, W_RD_WAIT);
    wakeAll(this.i32, W_WR_SEQ, W_WR_WAIT);
    this.hangupCallback();
  }

  // ---- wake-up callback binding (wakeup.ts) ----

  /**
   * @internal Register `owner`'s callback on this eventfd. One binding per eventfd: false if
   * another is bound (the caller reports EBUSY, as KVM does for an eventfd already used by an
   * irqfd). owner must be a positive int32.
   */
  bindWakeup(owner: number, cookie: number): boolean {
    // Reserve with -1 first so that a concurrent writer never pairs our owner with a stale cookie.
    if (Atomics.compareExchange(this.i32, W_BIND_OWNER, 0, -1) !== 0) return false;
    Atomics.store(this.i32, W_BIND_COOKIE, cookie);
    Atomics.store(this.i32, W_BIND_OWNER, owner);
    return true;
  }

  /** @internal Remove owner's binding if it is still the one bound. */
  unbindWakeup(owner: number): void {
    Atomics.compareExchange(this.i32, W_BIND_OWNER, owner, 0);
  }

  /** @internal (owner, cookie) of the current binding, or null. */
  wakeBinding(): { owner: number; cookie: number } | null {
    const owner = Atomics.load(this.i32, W_BIND_OWNER);
    return owner > 0 ? { owner, cookie: Atomics.load(this.i32, W_BIND_COOKIE) } : null;
  }

  /**
   * Run the bound callback for a close (POLLHUP) in this thread, after the closed flag was
   * published; hand it to the owner's worker when it cannot run here. The owner re-validates the
   * cookie itself: a binding replaced between our two loads only makes the new owner look at an
   * eventfd that was indeed just closed.
   */
  private hangupCallback(): void {
    const owner = Atomics.load(this.i32, W_BIND_OWNER);
    if (owner > 0 && !dispatchWakeup(owner, Atomics.load(this.i32, W_BIND_COOKIE), this, true)) this.scheduleWork();
  }

  private checkOpen(): void {
    if (Atomics.load(this.i32, W_FLAGS) & F_CLOSED) throw new KvmError('EBADF', 'eventfd is closed');
  }
}

/** The low 32 bits of a count, as an Int32 word holds them (the running totals wrap). */
function low32(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

/** The syscall takes a u64: anything else cannot be written, and 2^64-1 is reserved. */
function checkWriteValue(n: bigint): bigint {
  // eventfd_write copies the u64 from the user buffer first: no buffer is EFAULT.
  if (n === null || n === undefined) throw new KvmError('EFAULT', 'eventfd: write of no value');
  if (typeof n !== 'bigint' || n < 0n || n >= U64_MAX) {
    throw new KvmError('EINVAL', `eventfd: cannot write ${String(n)}`);
  }
  return n;
}
