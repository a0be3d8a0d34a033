/**
 * The swimlane window: for a few milliseconds, every thread of a timed-mode VM appends its lock
 * events (contend, acquired, released) to its own ring in the stats buffer (sync/lock.ts trace()).
 * Opening clears the rings; closing reads them back as per-thread intervals of waiting and
 * holding, on the VM's shared clock (ms since the window opened).
 */
import { lockClassName, type LockClass } from '../sync/lock-classes.js';
import { STATS_TRACE_ON, statsBaseOf, TRACE_OFF, TraceKind, type LockStatsMode } from '../sync/thread.js';

export interface TraceSpan {
  /** 'wait' from the failed first try to the acquisition, 'hold' from there to the release. */
  kind: 'wait' | 'hold';
  lock: string;
  instance: number;
  /** ms since the window opened. */
  start: number;
  end: number;
}

export interface TraceLane {
  thread: string;
  spans: TraceSpan[];
}

export interface LockTrace {
  /** Window length, ms. */
  ms: number;
  lanes: TraceLane[];
}

export class TraceWindow {
  private t0 = 0;
  private readonly st: Float64Array;

  constructor(
    stats: SharedArrayBuffer,
    private readonly threadSlots: number,
    private readonly mode: LockStatsMode,
    private readonly slotName: (slot: number) => string,
  ) {
    this.st = new Float64Array(stats);
  }

  open(): void {
    for (let s = 0; s < this.threadSlots; s++) this.st[statsBaseOf(s, this.mode) + TRACE_OFF] = 0;
    this.t0 = performance.now();
    this.st[STATS_TRACE_ON] = 1;
  }

  /** Events recorded so far in this window, all threads. */
  recorded(): number {
    let n = 0;
    for (let s = 0; s < this.threadSlots; s++) n += this.st[statsBaseOf(s, this.mode) + TRACE_OFF]!;
    return n;
  }

  close(): LockTrace {
    this.st[STATS_TRACE_ON] = 0;
    const end = performance.now();
    const lanes: TraceLane[] = [];
    for (let s = 0; s < this.threadSlots; s++) {
      const b = statsBaseOf(s, this.mode) + TRACE_OFF;
      const n = this.st[b]!;
      if (n === 0) continue;
      const spans: TraceSpan[] = [];
      // Open intervals by (class, instance): a thread holds several locks at once (nesting).
      const open = new Map<number, { kind: 'wait' | 'hold'; start: number }>();
      for (let i = 0; i < n; i++) {
        const t = this.st[b + 1 + 2 * i]! - this.t0;
        const code = this.st[b + 2 + 2 * i]!;
        const kind = code % 4;
        const key = Math.floor(code / 4);
        const cls = key % 16;
        const sub = Math.floor(key / 16) - 1;
        const o = open.get(key);
        const close = (k: 'wait' | 'hold'): void => {
          if (o && o.kind === k) spans.push({ kind: k, lock: lockClassName(cls as LockClass), instance: sub, start: Math.max(0, o.start), end: t });
        };
        if (kind === TraceKind.Contend) open.set(key, { kind: 'wait', start: t });
        else if (kind === TraceKind.Acquired) {
          close('wait');
          open.set(key, { kind: 'hold', start: t });
        } else {
          close('hold');
          open.delete(key);
        }
      }
      lanes.push({ thread: this.slotName(s), spans });
    }
    return { ms: end - this.t0, lanes };
  }
}
