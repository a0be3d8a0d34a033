/**
 * Getting eventfds to threads that are busy. A vCPU thread runs its guest synchronously, so its
 * event loop never turns while it could need a resamplefd; it drains a MessagePort of its own with
 * receiveMessageOnPort instead, synchronously, when it meets an irqfd it has not seen yet.
 *
 * Ordering: the VMM thread posts an irqfd's eventfds to every port *before* it publishes the irqfd
 * as active in shared memory, and postMessage has queued the message when it returns, so a thread
 * that sees the active irqfd finds its message on the port (the pattern synckit relies on).
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { EventFd, type EventFdHandle } from '../eventfd/eventfd.js';

export interface FdMessage {
  slot: number;
  gen: number;
  fd: EventFdHandle;
  resamplefd: EventFdHandle | null;
}

export interface IrqfdFds {
  gen: number;
  fd: EventFd;
  resamplefd: EventFd | null;
}

/** The VMM side: one port per worker that may need eventfds. */
export class FdChannel {
  private readonly ports: MessagePort[] = [];
  private readonly backlog: FdMessage[] = [];

  /** A new port for a worker, pre-filled with every irqfd published so far (transfer it). */
  newPort(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    for (const msg of this.backlog) port1.postMessage(msg);
    this.ports.push(port1);
    port1.unref();
    return port2;
  }

  publish(msg: FdMessage): void {
    const i = this.backlog.findIndex((b) => b.slot === msg.slot);
    if (i >= 0) this.backlog[i] = msg;
    else this.backlog.push(msg);
    for (const p of this.ports) p.postMessage(msg);
  }

  close(): void {
    for (const p of this.ports) p.close();
    this.ports.length = 0;
  }
}

/** The worker side: irqfd slot -> its eventfds, filled from the port on demand. */
export class FdCache {
  private readonly bySlot = new Map<number, IrqfdFds>();
  constructor(private readonly port: MessagePort) {}

  get(slot: number, gen: number): IrqfdFds | null {
    let c = this.bySlot.get(slot);
    if (c?.gen === gen) return c;
    for (let r = receiveMessageOnPort(this.port); r; r = receiveMessageOnPort(this.port)) {
      const msg = r.message as FdMessage;
      this.bySlot.set(msg.slot, {
        gen: msg.gen,
        fd: EventFd.from(msg.fd),
        resamplefd: msg.resamplefd ? EventFd.from(msg.resamplefd) : null,
      });
    }
    c = this.bySlot.get(slot);
    return c?.gen === gen ? c : null;
  }
}
