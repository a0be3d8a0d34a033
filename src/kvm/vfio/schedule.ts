/**
 * When a device raises its interrupts: a fixed rate, bursts, or seeded random gaps. A schedule is
 * plain data (it crosses to the device worker) and expands to event times in milliseconds from
 * its start, so a run with the same schedule raises the same number of events at the same offsets.
 */
import { KvmError } from '../../uapi/errno.js';
import { Prng } from '../../sched/prng.js';

export type IrqSchedule =
  /** `count` events, one every `periodMs` (0 = back to back). */
  | { kind: 'rate'; count: number; periodMs: number }
  /** `bursts` bursts of `size` back-to-back events, `gapMs` apart. */
  | { kind: 'burst'; bursts: number; size: number; gapMs: number }
  /** `count` events with exponentially distributed gaps of mean `meanGapMs`, from `seed`. */
  | { kind: 'random'; count: number; meanGapMs: number; seed: number };

const MAX_EVENTS = 10_000_000;

function check(ok: boolean, what: string): void {
  if (!ok) throw new KvmError('EINVAL', `irq schedule: ${what}`);
}
const count = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_EVENTS;
const ms = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n >= 0 && n <= 3_600_000;

/** Validate a schedule from user input; returns the number of events it raises. */
export function scheduleEvents(s: IrqSchedule): number {
  check(typeof s === 'object' && s !== null, 'expected { kind: "rate" | "burst" | "random", ... }');
  switch (s.kind) {
    case 'rate':
      check(count(s.count), `count must be an integer 0..${MAX_EVENTS}`);
      check(ms(s.periodMs), 'periodMs must be a number of milliseconds >= 0');
      return s.count;
    case 'burst':
      check(count(s.bursts) && count(s.size) && s.bursts * s.size <= MAX_EVENTS, `bursts and size must be integers >= 0, at most ${MAX_EVENTS} events`);
      check(ms(s.gapMs), 'gapMs must be a number of milliseconds >= 0');
      return s.bursts * s.size;
    case 'random':
      check(count(s.count), `count must be an integer 0..${MAX_EVENTS}`);
      check(ms(s.meanGapMs), 'meanGapMs must be a number of milliseconds >= 0');
      check(Number.isInteger(s.seed) && s.seed >= 0 && s.seed <= 0xffff_ffff, 'seed must be a 32-bit unsigned integer');
      return s.count;
    default:
      throw new KvmError('EINVAL', `irq schedule: unknown kind ${String((s as { kind?: unknown }).kind)}`);
  }
}

/** The event times (ms from start), in order. */
export function* scheduleTimes(s: IrqSchedule): Generator<number, void, void> {
  scheduleEvents(s);
  if (s.kind === 'rate') {
    for (let i = 0; i < s.count; i++) yield i * s.periodMs;
  } else if (s.kind === 'burst') {
    for (let b = 0; b < s.bursts; b++) for (let i = 0; i < s.size; i++) yield b * s.gapMs;
  } else {
    const rng = new Prng(s.seed);
    let t = 0;
    for (let i = 0; i < s.count; i++) {
      yield t;
      // Exponential gap: -mean * ln(U), U in (0, 1].
      t += -s.meanGapMs * Math.log(1 - rng.next());
    }
  }
}
