/**
 * History rings: record layout, merge order across writers (interleaved on one thread and two real
 * worker_threads writing concurrently), wrap-around accounting.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { EVENT, EventKind, type HistoryEvent } from '../../src/record/events.js';
import { HISTORY_RING, HISTORY_SEQ, HistoryWriter, createHistory, readHistory } from '../../src/record/history.js';

describe('layout', () => {
  it('puts a 6-word record after the header, fields in declaration order', () => {
    expect(EVENT.size).toBe(6);
    expect(EVENT.off).toEqual({ seq: 0, kind: 1, intid: 2, vcpu: 3, a: 4, b: 5 });
    expect(HISTORY_RING.off).toEqual({ writeIndex: 0, capacity: 1, dropped: 2 });

    const h = createHistory(2, 4);
    expect(h.rings).toHaveLength(2);
    expect(h.rings[0]!.byteLength).toBe((HISTORY_RING.size + 4 * 6) * 4);
    const w = new HistoryWriter(h, 1);
    w.record(EventKind.ACK, 40, 3, 0xa0, 256);
    w.record(EventKind.EOI, 40, 3, 0xa0, -1);

    const raw = new Int32Array(h.rings[1]!);
    const base = HISTORY_RING.size;
    expect(raw[HISTORY_RING.off.writeIndex]).toBe(2);
    expect(raw[HISTORY_RING.off.capacity]).toBe(4);
    expect(raw[HISTORY_RING.off.dropped]).toBe(0);
    expect(Array.from(raw.subarray(base, base + 12))).toEqual([0, EventKind.ACK, 40, 3, 0xa0, 256, 1, EventKind.EOI, 40, 3, 0xa0, -1]);
    expect(new Int32Array(h.seq)[HISTORY_SEQ.off.next]).toBe(2);
    // Ring 0 untouched.
    expect(new Int32Array(h.rings[0]!)[HISTORY_RING.off.writeIndex]).toBe(0);
  });

  it('rejects bad sizes and slots', () => {
    expect(() => createHistory(0, 4)).toThrow(RangeError);
    expect(() => createHistory(1, 0)).toThrow(RangeError);
    expect(() => new HistoryWriter(createHistory(2, 4), 2)).toThrow(/slot 2/);
  });
});

describe('readHistory', () => {
  it('merges interleaved writers by seq', () => {
    const h = createHistory(3, 16);
    const w = [0, 1, 2].map((t) => new HistoryWriter(h, t));
    const order = [2, 0, 0, 1, 2, 1, 0, 2];
    order.forEach((t, i) => w[t]!.record(EventKind.PEND, 32 + i, -1, 0, t));
    const { events, truncated, dropped } = readHistory(h);
    expect(truncated).toBe(false);
    expect(dropped).toBe(0);
    expect(events).toEqual(
      order.map((t, i): HistoryEvent => ({ seq: i, kind: EventKind.PEND, intid: 32 + i, vcpu: -1, a: 0, b: t })),
    );
  });

  it('an exactly full ring is not truncated', () => {
    const h = createHistory(1, 3);
    const w = new HistoryWriter(h, 0);
    for (let i = 0; i < 3; i++) w.record(EventKind.KICK, 0, i, 0, 0);
    const r = readHistory(h);
    expect(r.truncated).toBe(false);
    expect(r.events.map((e) => e.vcpu)).toEqual([0, 1, 2]);
  });

  it('wraps around, keeps the newest records, reports truncation and the dropped count', () => {
    const h = createHistory(2, 4);
    const a = new HistoryWriter(h, 0);
    const b = new HistoryWriter(h, 1);
    b.record(EventKind.WAKE, 0, 7, 0, 0); // seq 0
    for (let i = 0; i < 10; i++) a.record(EventKind.KICK, 0, i, 0, 0); // seq 1..10
    b.record(EventKind.WAKE, 0, 8, 0, 0); // seq 11
    const raw = new Int32Array(h.rings[0]!);
    expect(raw[HISTORY_RING.off.writeIndex]).toBe(10);
    expect(raw[HISTORY_RING.off.dropped]).toBe(6);
    const r = readHistory(h);
    expect(r.truncated).toBe(true);
    expect(r.dropped).toBe(6);
    expect(r.events.map((e) => [e.seq, e.vcpu])).toEqual([[0, 7], [7, 6], [8, 7], [9, 8], [10, 9], [11, 8]]);
  });

  it('a second writer on a slot continues where the ring stands', () => {
    const h = createHistory(1, 2);
    new HistoryWriter(h, 0).record(EventKind.KICK, 0, 1, 0, 0);
    const w = new HistoryWriter(h, 0);
    w.record(EventKind.KICK, 0, 2, 0, 0);
    w.record(EventKind.KICK, 0, 3, 0, 0);
    const r = readHistory(h);
    expect(r.events.map((e) => e.vcpu)).toEqual([2, 3]);
    expect(r.dropped).toBe(1);
  });
});

/**
 * Plain-JS writer with the same protocol as HistoryWriter (offsets passed in, not repeated here):
 * seq by Atomics.add, plain stores, Atomics.store of the write index. Both workers spin on a start
 * flag so that they really write at the same time.
 */
const WORKER = `
const { workerData: d } = require('node:worker_threads');
const ring = new Int32Array(d.ring);
const seq = new Int32Array(d.seq);
const go = new Int32Array(d.go);
const cap = ring[d.capOff];
Atomics.add(go, 1, 1);
while (Atomics.load(go, 0) === 0) {}
for (let i = 0; i < d.n; i++) {
  const s = Atomics.add(seq, d.seqOff, 1);
  const at = d.base + (i % cap) * d.size;
  ring[at + d.off.seq] = s;
  ring[at + d.off.kind] = d.kind;
  ring[at + d.off.intid] = 32 + d.slot;
  ring[at + d.off.vcpu] = d.slot;
  ring[at + d.off.a] = i;
  ring[at + d.off.b] = ~i;
  Atomics.store(ring, d.idxOff, i + 1);
}
`;

function runWriter(h: ReturnType<typeof createHistory>, slot: number, n: number, go: SharedArrayBuffer): Promise<void> {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      ring: h.rings[slot], seq: h.seq, go, slot, n, kind: EventKind.PEND,
      base: HISTORY_RING.size, size: EVENT.size, off: EVENT.off,
      capOff: HISTORY_RING.off.capacity, idxOff: HISTORY_RING.off.writeIndex, seqOff: HISTORY_SEQ.off.next,
    },
  });
  return new Promise((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exit ${code}`))));
  });
}

describe('concurrent writers', () => {
  it('two worker_threads: every seq exactly once, per-thread order preserved, records intact', async () => {
    const N = 50_000;
    const h = createHistory(2, N);
    const go = new SharedArrayBuffer(8);
    const goWords = new Int32Array(go);
    const done = Promise.all([runWriter(h, 0, N, go), runWriter(h, 1, N, go)]);
    const t0 = Date.now();
    while (Atomics.load(goWords, 1) < 2 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 1));
    Atomics.store(goWords, 0, 1);
    await done;

    const { events, truncated } = readHistory(h);
    expect(truncated).toBe(false);
    expect(events).toHaveLength(2 * N);
    expect(events.every((e, i) => e.seq === i)).toBe(true);
    for (const slot of [0, 1]) {
      const mine = events.filter((e) => e.vcpu === slot);
      expect(mine).toHaveLength(N);
      expect(mine.every((e, i) => e.a === i && e.b === ~i && e.intid === 32 + slot && e.kind === EventKind.PEND)).toBe(true);
    }
  });
});
