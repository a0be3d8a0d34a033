/**
 * Device interrupt schedules (src/kvm/vfio/schedule.ts): event times are a pure function of the
 * schedule, so a device run is repeatable; bad schedules are EINVAL with a message.
 */
import { describe, expect, it } from 'vitest';
import { scheduleEvents, scheduleTimes, type IrqSchedule } from '../../src/kvm/vfio/schedule.js';
import { KvmError } from '../../src/uapi/errno.js';

const times = (s: IrqSchedule): number[] => [...scheduleTimes(s)];

describe('device interrupt schedules', () => {
  it('rate: count events, periodMs apart, from 0', () => {
    expect(times({ kind: 'rate', count: 4, periodMs: 2.5 })).toEqual([0, 2.5, 5, 7.5]);
    expect(times({ kind: 'rate', count: 0, periodMs: 1 })).toEqual([]);
  });

  it('burst: `size` back-to-back events per burst, bursts gapMs apart', () => {
    expect(times({ kind: 'burst', bursts: 3, size: 2, gapMs: 10 })).toEqual([0, 0, 10, 10, 20, 20]);
    expect(scheduleEvents({ kind: 'burst', bursts: 3, size: 2, gapMs: 10 })).toBe(6);
  });

  it('random: the same seed gives the same times, another seed others; non-decreasing; mean gap about meanGapMs', () => {
    const a = times({ kind: 'random', count: 2000, meanGapMs: 1, seed: 7 });
    expect(times({ kind: 'random', count: 2000, meanGapMs: 1, seed: 7 })).toEqual(a);
    expect(times({ kind: 'random', count: 2000, meanGapMs: 1, seed: 8 })).not.toEqual(a);
    expect(a).toHaveLength(2000);
    for (let i = 1; i < a.length; i++) expect(a[i]!).toBeGreaterThanOrEqual(a[i - 1]!);
    const mean = a[a.length - 1]! / (a.length - 1);
    expect(mean).toBeGreaterThan(0.85);
    expect(mean).toBeLessThan(1.15);
  });

  it.each([
    [{ kind: 'rate', count: -1, periodMs: 1 }],
    [{ kind: 'rate', count: 1.5, periodMs: 1 }],
    [{ kind: 'rate', count: 1, periodMs: -1 }],
    [{ kind: 'rate', count: 1, periodMs: Infinity }],
    [{ kind: 'burst', bursts: 2, size: -1, gapMs: 1 }],
    [{ kind: 'random', count: 1, meanGapMs: 1, seed: -1 }],
    [{ kind: 'random', count: 1, meanGapMs: 1, seed: 2 ** 32 }],
    [{ kind: 'sometimes', count: 1 }],
    [null],
  ])('rejects %j with EINVAL', (s) => {
    let e: unknown;
    try {
      scheduleEvents(s as unknown as IrqSchedule);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(KvmError);
    expect((e as KvmError).code).toBe('EINVAL');
    expect((e as KvmError).message).toMatch(/irq schedule/);
  });
});
