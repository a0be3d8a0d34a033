/**
 * Chaos mode records the order in which its threads really passed their schedule points
 * (`--record`); the controlled scheduler replays that order (strategies/order.ts), and the schedule
 * of that replay replays exactly like any controlled schedule (issue 10, "a chaos recording
 * replays exactly").
 */
import { describe, expect, it } from 'vitest';
import { runStress, type StressRunOptions } from '../../src/stress/runner.js';
import { decodeOrder, encodeOrder } from '../../src/stress/schedule-file.js';

describe('chaos --record', () => {
  const base: StressRunOptions = { scenario: 'irqfd-shared', seed: 0x2c, mode: 'chaos', iterations: 30, timeoutMs: 20_000 };

  it('records every thread passing its points; the order replays to the same history every time, and its schedule exactly', async () => {
    const c = await runStress({ ...base, record: true });
    expect(c.findings).toEqual([]);
    const order = c.recording!.order;
    expect(c.recording!.truncated).toBe(false);
    // Driver (0), both vCPUs (1, 2) and the irqfd injector's slot (3) are the only slots.
    const slots = new Set(order);
    for (const t of [0, 1, 2]) expect(slots.has(t), `slot ${t} passed points`).toBe(true);
    for (const t of slots) expect(t).toBeLessThanOrEqual(3);

    const ctl: StressRunOptions = { ...base, mode: 'controlled', replayOrder: order };
    const a = await runStress(ctl);
    const b = await runStress(ctl);
    expect(a.findings).toEqual([]);
    expect(a.order!.points).toBe(order.length);
    expect(b.historyHash).toBe(a.historyHash);
    expect(b.schedule!.hash).toBe(a.schedule!.hash);

    // What --record writes: the order replay's switches, replayed with the waits' ends as points.
    const r = await runStress({ ...base, mode: 'controlled', replay: a.schedule!.switches, pollPoints: true });
    expect(r.divergedAt).toBeNull();
    expect(r.historyHash).toBe(a.historyHash);
  });

  it('the order is stored run-length encoded and decodes to itself', () => {
    const order = [0, 0, 1, 2, 2, 2, 1, 0];
    expect(encodeOrder(order)).toEqual([[0, 2], [1, 1], [2, 3], [1, 1], [0, 1]]);
    expect(decodeOrder(encodeOrder(order))).toEqual(order);
  });
});
