/**
 * Recording a chaos run's interleaving (`vgic-emu stress --mode chaos --record FILE`). The threads
 * run freely; at each schedule point a thread takes a ticket (one Atomics.add on a shared counter)
 * and writes its slot at that index. The tickets give a total order of the schedule points as they
 * actually happened, consistent with each thread's own order and with every synchronisation
 * through a point (a lock released at its release point, then taken at the next thread's). The
 * controlled scheduler replays that order (strategies/order.ts).
 *
 * Layout: [0] next ticket, [1] capacity, then one slot per ticket. Past the capacity tickets are
 * still counted, not stored: the recording is truncated, and says so.
 */
const NEXT = 0;
const CAP = 1;
const BASE = 2;

/** Default capacity: 4 Mi points (16 MiB), far more than a default-size run passes. */
export const CHAOS_RECORD_CAPACITY = 1 << 22;

export function createChaosRecording(capacity = CHAOS_RECORD_CAPACITY): SharedArrayBuffer {
  const sab = new SharedArrayBuffer((BASE + capacity) * 4);
  new Int32Array(sab)[CAP] = capacity;
  return sab;
}

/** This thread passes a schedule point: take the next ticket. */
export function takeTicket(rec: Int32Array, slot: number): void {
  const k = Atomics.add(rec, NEXT, 1);
  if (k < rec[CAP]!) rec[BASE + k] = slot;
}

/** The recorded order (slot per point) and whether it was cut at the capacity. */
export function readChaosRecording(sab: SharedArrayBuffer): { order: number[]; truncated: boolean } {
  const r = new Int32Array(sab);
  const n = Math.min(Atomics.load(r, NEXT), r[CAP]!);
  return { order: Array.from(r.subarray(BASE, BASE + n)), truncated: Atomics.load(r, NEXT) > r[CAP]! };
}
