/**
 * IRQ bypass manager: a model of the kernel's virt/lib/irqbypass.c.
 *
 * Interrupt producers (e.g. a VFIO device's MSI vector) and consumers (e.g. a KVM irqfd) are set
 * up by unrelated subsystems, in any order, and neither knows about the other. Each registers here
 * independently under a token; when both sides of a token are present the manager connects them
 * 1:1, so the consumer can take a faster delivery path than "producer signals eventfd, consumer
 * wakes up and injects". KVM uses the irqfd's eventfd as the token, as VFIO does for its trigger.
 *
 * Connecting or disconnecting is always: stop both, add (or del) on both, start both. The stop/
 * start bracket lets each side quiesce its interrupt path while the routing changes under it.
 *
 * Here the token is the EventFd's 64-bit identity string (EventFd.token), not the object: an
 * eventfd is shared between threads as a SharedArrayBuffer, and each thread gets its own wrapper
 * object, so object identity cannot match a producer in one thread with a consumer in another.
 *
 * The kernel has a single global registry. Ours is per thread (module state is per thread); that
 * is enough because the VMM's main thread is where both VFIO and KVM register.
 */
import { KvmError, kvmErr } from '../uapi/errno.js';

export interface IrqBypassProducer {
  readonly token: string;
  /** May throw to refuse the consumer; the connection then does not happen. */
  addConsumer?(c: IrqBypassConsumer): void;
  delConsumer?(c: IrqBypassConsumer): void;
  stop?(): void;
  start?(): void;
}

export interface IrqBypassConsumer {
  readonly token: string;
  /** Required: a consumer exists to take over delivery, so it must accept a producer. May throw. */
  addProducer(p: IrqBypassProducer): void;
  delProducer(p: IrqBypassProducer): void;
  stop?(): void;
  start?(): void;
}

export interface IrqBypassConnection {
  token: string;
  producer: IrqBypassProducer;
  consumer: IrqBypassConsumer;
}

function checkToken(token: unknown): asserts token is string {
  if (typeof token !== 'string' || token === '') kvmErr('EINVAL', 'irq bypass token must be a non-empty string');
}

/** stop both, add on both (undoing the producer's add if the consumer refuses), start both. */
function connect(p: IrqBypassProducer, c: IrqBypassConsumer): void {
  p.stop?.();
  c.stop?.();
  try {
    p.addConsumer?.(c);
    try {
      c.addProducer(p);
    } catch (e) {
      // The producer already accepted; take that back so it is left as it was before.
      p.delConsumer?.(c);
      throw e;
    }
  } finally {
    // Whatever happened, neither side may be left stopped: the fallback (eventfd) path must work.
    c.start?.();
    p.start?.();
  }
}

function disconnect(p: IrqBypassProducer, c: IrqBypassConsumer): void {
  p.stop?.();
  c.stop?.();
  c.delProducer(p);
  p.delConsumer?.(c);
  c.start?.();
  p.start?.();
}

export class IrqBypassManager {
  // A connect failure leaves the newcomer unregistered, so a token present on both sides is
  // always a live connection; no separate connection table is needed.
  readonly #producers = new Map<string, IrqBypassProducer>();
  readonly #consumers = new Map<string, IrqBypassConsumer>();

  registerProducer(p: IrqBypassProducer): void {
    checkToken(p.token);
    if (this.#producers.has(p.token)) {
      kvmErr('EBUSY', this.#producers.get(p.token) === p
        ? 'producer already registered' : `another producer has token ${p.token}`);
    }
    const c = this.#consumers.get(p.token);
    if (c) connect(p, c); // throws before we record p: a refused producer is not registered
    this.#producers.set(p.token, p);
  }

  unregisterProducer(p: IrqBypassProducer): void {
    // By object, not token: a stale handle with the same token must not tear down someone else.
    if (typeof p.token !== 'string' || this.#producers.get(p.token) !== p) return;
    const c = this.#consumers.get(p.token);
    if (c) disconnect(p, c);
    this.#producers.delete(p.token);
  }

  registerConsumer(c: IrqBypassConsumer): void {
    checkToken(c.token);
    if (typeof c.addProducer !== 'function' || typeof c.delProducer !== 'function') {
      throw new KvmError('EINVAL', 'irq bypass consumer needs addProducer and delProducer');
    }
    if (this.#consumers.has(c.token)) {
      kvmErr('EBUSY', this.#consumers.get(c.token) === c
        ? 'consumer already registered' : `another consumer has token ${c.token}`);
    }
    const p = this.#producers.get(c.token);
    if (p) connect(p, c);
    this.#consumers.set(c.token, c);
  }

  unregisterConsumer(c: IrqBypassConsumer): void {
    if (typeof c.token !== 'string' || this.#consumers.get(c.token) !== c) return;
    const p = this.#producers.get(c.token);
    if (p) disconnect(p, c);
    this.#consumers.delete(c.token);
  }

  peerOfProducer(p: IrqBypassProducer): IrqBypassConsumer | null {
    if (this.#producers.get(p.token) !== p) return null;
    return this.#consumers.get(p.token) ?? null;
  }

  peerOfConsumer(c: IrqBypassConsumer): IrqBypassProducer | null {
    if (this.#consumers.get(c.token) !== c) return null;
    return this.#producers.get(c.token) ?? null;
  }

  connections(): IrqBypassConnection[] {
    const out: IrqBypassConnection[] = [];
    for (const [token, producer] of this.#producers) {
      const consumer = this.#consumers.get(token);
      if (consumer) out.push({ token, producer, consumer });
    }
    return out;
  }

  get size(): { producers: number; consumers: number } {
    return { producers: this.#producers.size, consumers: this.#consumers.size };
  }
}

/** The default registry for this thread (the kernel has one global one). */
export const irqBypass = new IrqBypassManager();
