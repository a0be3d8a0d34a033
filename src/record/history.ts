/**
 * Per-thread history rings in SharedArrayBuffers (DESIGN §6). Each thread slot owns one ring and
 * is its only writer, so recording needs no lock: one Atomics.add on the shared seq counter for
 * the global order, plain stores of the record, then an Atomics.store of the write index, which
 * publishes the record (a reader that Atomics.loads the index sees complete records below it).
 *
 * A full ring wraps, overwriting its oldest records, and counts them as dropped: a stress run
 * must never block on its own instrumentation, and the reader reports the history as truncated.
 *
 * Limits: the seq counter and write indices are Int32, so one run records at most 2^31 - 1 events.
 */
import { defineLayout } from '../shm/layout.js';
import { EVENT, type HistoryEvent } from './events.js';

/** Ring header; records (EVENT layout) follow it. */
export const HISTORY_RING = defineLayout('history_ring', [
  { name: 'writeIndex', doc: 'records ever written; slot = writeIndex % capacity (Atomics.store publishes)' },
  { name: 'capacity', doc: 'ring size in events' },
  { name: 'dropped', doc: 'records overwritten by wrap-around' },
]);

/** The global seq counter buffer: one Int32 word. */
export const HISTORY_SEQ = defineLayout('history_seq', [
  { name: 'next', doc: 'next seq to hand out (Atomics.add)' },
]);

/** Structured-cloneable (SABs and numbers), so it can be posted to every worker. */
export interface HistoryBuffers {
  readonly rings: readonly SharedArrayBuffer[];
  readonly seq: SharedArrayBuffer;
}

export function createHistory(threads: number, capacityPerThread: number): HistoryBuffers {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`history: threads must be >= 1, got ${threads}`);
  if (!Number.isInteger(capacityPerThread) || capacityPerThread < 1 || capacityPerThread > 0x7fffffff / EVENT.size) {
    throw new RangeError(`history: capacityPerThread out of range: ${capacityPerThread}`);
  }
  const words = HISTORY_RING.size + capacityPerThread * EVENT.size;
  const rings: SharedArrayBuffer[] = [];
  for (let t = 0; t < threads; t++) {
    const sab = new SharedArrayBuffer(words * 4);
    new Int32Array(sab)[HISTORY_RING.off.capacity] = capacityPerThread;
    rings.push(sab);
  }
  return { rings, seq: new SharedArrayBuffer(HISTORY_SEQ.size * 4) };
}

const W_INDEX = HISTORY_RING.off.writeIndex;
const W_DROPPED = HISTORY_RING.off.dropped;
const R_BASE = HISTORY_RING.size;
const E_SEQ = EVENT.off.seq;
const E_KIND = EVENT.off.kind;
const E_INTID = EVENT.off.intid;
const E_VCPU = EVENT.off.vcpu;
const E_A = EVENT.off.a;
const E_B = EVENT.off.b;
const E_SIZE = EVENT.size;
const SEQ_NEXT = HISTORY_SEQ.off.next;

/** The writer for one thread slot. Create one per thread; never share a slot between threads. */
export class HistoryWriter {
  private readonly ring: Int32Array;
  private readonly seq: Int32Array;
  private readonly capacity: number;
  /** Local copy of the write index (we are the only writer) and of the next slot's word offset. */
  private written: number;
  private at: number;
  private readonly end: number;
  /** Every ring and the seq counter (a detector that reports during the run reads them). */
  readonly buffers: HistoryBuffers;

  constructor(buffers: HistoryBuffers, threadSlot: number) {
    this.buffers = buffers;
    const sab = buffers.rings[threadSlot];
    if (sab === undefined) throw new RangeError(`history: no ring for thread slot ${threadSlot}`);
    this.ring = new Int32Array(sab);
    this.seq = new Int32Array(buffers.seq);
    this.capacity = this.ring[HISTORY_RING.off.capacity]!;
    this.written = Atomics.load(this.ring, W_INDEX);
    this.at = R_BASE + (this.written % this.capacity) * E_SIZE;
    this.end = R_BASE + this.capacity * E_SIZE;
  }

  /** The seq the next event (of any thread) will get: "everything recorded so far is below it". */
  nextSeq(): number {
    return Atomics.load(this.seq, SEQ_NEXT);
  }

  /** Hot path: allocation-free. */
  record(kind: number, intid: number, vcpu: number, a: number, b: number): void {
    const r = this.ring;
    const at = this.at;
    r[at + E_SEQ] = Atomics.add(this.seq, SEQ_NEXT, 1);
    r[at + E_KIND] = kind;
    r[at + E_INTID] = intid;
    r[at + E_VCPU] = vcpu;
    r[at + E_A] = a;
    r[at + E_B] = b;
    const w = ++this.written;
    if (w > this.capacity) r[W_DROPPED]!++;
    this.at = at + E_SIZE === this.end ? R_BASE : at + E_SIZE;
    Atomics.store(r, W_INDEX, w);
  }
}

export interface HistoryRead {
  /** Retained events of all threads, sorted by seq. */
  events: HistoryEvent[];
  /** Some ring wrapped (or was overwritten while being read): the history has gaps. */
  truncated: boolean;
  /** Events recorded but not returned (overwritten by wrap-around), over all rings. */
  dropped: number;
}

/**
 * Read every ring. Meant for after the run (offline), when it is exact. While writers run it still
 * returns only published records and discards those whose slot was being reused during the copy,
 * reporting them as truncation (see the caveat below).
 */
export function readHistory(buffers: HistoryBuffers): HistoryRead {
  const events: HistoryEvent[] = [];
  let truncated = false;
  let dropped = 0;
  for (const sab of buffers.rings) {
    const r = new Int32Array(sab);
    const cap = r[HISTORY_RING.off.capacity]!;
    const before = Atomics.load(r, W_INDEX);
    const first = Math.max(0, before - cap);
    const copied: HistoryEvent[] = [];
    for (let i = first; i < before; i++) {
      const at = R_BASE + (i % cap) * E_SIZE;
      copied.push({ seq: r[at + E_SEQ]!, kind: r[at + E_KIND]!, intid: r[at + E_INTID]!, vcpu: r[at + E_VCPU]!, a: r[at + E_A]!, b: r[at + E_B]! });
    }
    // If the writer moved on during the copy it may already be filling position `after`, whose
    // slot is position after - cap's: only positions above that are certainly intact. (A read
    // racing a writer that has not yet published anything new cannot be detected: read offline.)
    const after = Atomics.load(r, W_INDEX);
    const valid = after > before ? Math.max(first, after - cap + 1) : first;
    for (let i = valid - first; i < copied.length; i++) events.push(copied[i]!);
    if (valid > 0 || Atomics.load(r, W_DROPPED) > 0) truncated = true;
    dropped += valid;
  }
  events.sort((x, y) => x.seq - y.seq);
  return { events, truncated, dropped };
}
