/**
 * The checker against handcrafted histories: for each violation kind, one history that must be
 * reported and a near-identical correct one that must not. Every expected verdict is written by
 * hand from the rule (spec §3.4, §4.4–4.6, §5.1–5.2, §8.5); none comes from running the checker.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatViolation, type CheckOptions, type Violation } from '../../src/check/checker.js';
import { EventKind as K, formatEvent, guestIntid, guestSgiSource, type HistoryEvent } from '../../src/record/events.js';
import { toJUnitXml } from '../../src/check/report-junit.js';

type Row = [kind: K, intid: number, vcpu: number, a?: number, b?: number];

/** A history from rows; seq = row index. */
function h(...rows: Row[]): HistoryEvent[] {
  return rows.map(([kind, intid, vcpu, a = 0, b = -1], seq) => ({ seq, kind, intid, vcpu, a, b }));
}

const EDGE = 0;
const LEVEL = 1;
const NONE = 256;
const QUIESCE: Row = [K.QUIESCE, 0, -1];
const SPI = 40;

/** [kind, intid, vcpu, seq] of each violation: the shape every test compares. */
function verdict(events: HistoryEvent[], opts?: CheckOptions): [string, number, number, number][] {
  return checkHistory(events, opts).map((v: Violation) => [v.kind, v.intid, v.vcpu, v.seq]);
}

describe('lost (edge, at quiescence)', () => {
  it('coalesced edges acknowledged after the last PEND: clean', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.PEND, SPI, -1, EDGE], [K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 1, 0xa0, NONE], [K.EOI, SPI, 1, 0xa0], [K.DEACT, SPI, 1, EDGE], QUIESCE))).toEqual([]);
  });

  it('the same with the ACK before the third PEND: lost, at that PEND', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 1, 0xa0, NONE], [K.PEND, SPI, -1, EDGE], [K.EOI, SPI, 1, 0xa0], [K.DEACT, SPI, 1, EDGE], QUIESCE))).toEqual([['lost', SPI, -1, 3]]);
  });

  it('is not judged without QUIESCE (the run may still deliver it)', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 1, 0xa0, NONE], [K.PEND, SPI, -1, EDGE]))).toEqual([]);
  });

  it('an interrupt disabled at quiescence is not expected to be delivered', () => {
    const base: Row[] = [[K.PEND, SPI, -1, EDGE], QUIESCE];
    expect(verdict(h(...base, [K.LEVEL_END, SPI, -1, 0, 0]))).toEqual([]);
    expect(verdict(h(...base, [K.LEVEL_END, SPI, -1, 0, 1]))).toEqual([['lost', SPI, -1, 0]]);
  });

  it('events after QUIESCE do not count as deliveries', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], QUIESCE, [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([['lost', SPI, -1, 0]]);
  });
});

describe('duplicate (edge)', () => {
  it('two PENDs, two ACKs: clean', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, NONE], [K.DEACT, SPI, 0, EDGE], [K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([]);
  });

  it('one PEND, two ACKs: the second ACK is a duplicate', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, NONE], [K.DEACT, SPI, 0, EDGE], [K.LR, SPI, 0, 0, 1], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([['duplicate', SPI, 0, 4]]);
  });

  it('GICv2 SGIs count per source: two sources acked once each is clean', () => {
    // SGI 1 for vCPU 0 from vCPUs 1 and 2; IAR values carry the source in bits [12:10].
    expect(verdict(h([K.PEND, 1, 0, EDGE, 1], [K.PEND, 1, 0, EDGE, 2], [K.ACK, (1 << 10) | 1, 0, 0, NONE], [K.ACK, (2 << 10) | 1, 0, 0, NONE]))).toEqual([]);
  });

  it('GICv2 SGIs: the same source acked twice is a duplicate even though the totals match', () => {
    expect(verdict(h([K.PEND, 1, 0, EDGE, 1], [K.PEND, 1, 0, EDGE, 2], [K.ACK, (1 << 10) | 1, 0, 0, NONE], [K.ACK, (1 << 10) | 1, 0, 0, NONE]))).toEqual([['duplicate', 1, 0, 3]]);
  });

  it('GICv2 source 0 is a plain SGI number in IAR', () => {
    expect(verdict(h([K.PEND, 3, 1, EDGE, 0], [K.ACK, 3, 1, 0, NONE]))).toEqual([]);
    expect(verdict(h([K.PEND, 3, 1, EDGE, 0], [K.ACK, (4 << 10) | 3, 1, 0, NONE]))).toEqual([['spurious', 3, 1, 1]]);
  });
});

describe('spurious', () => {
  it('edge: PEND then ACK is clean', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 2, 0xa0, NONE]))).toEqual([]);
  });

  it('edge: ACK before any PEND is spurious', () => {
    expect(verdict(h([K.ACK, SPI, 2, 0xa0, NONE], [K.PEND, SPI, -1, EDGE]))).toEqual([['spurious', SPI, 2, 0]]);
  });

  it('private INTIDs are per vCPU: a PPI pending on vCPU 0 does not justify an ACK on vCPU 1', () => {
    expect(verdict(h([K.PEND, 27, 0, EDGE], [K.ACK, 27, 0, 0xa0, NONE]))).toEqual([]);
    expect(verdict(h([K.PEND, 27, 0, EDGE], [K.ACK, 27, 1, 0xa0, NONE]))).toEqual([['spurious', 27, 1, 1]]);
  });

  it('level: line high after the deactivation justifies the next ACK (LR may predate the drop)', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], [K.ACK, SPI, 0, 0xa0, NONE], [K.DEACT, SPI, 0, LEVEL], [K.LINE, SPI, -1, 0], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([]);
  });

  it('level: line dropped before the deactivation and never raised again: spurious', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], [K.ACK, SPI, 0, 0xa0, NONE], [K.LINE, SPI, -1, 0], [K.DEACT, SPI, 0, LEVEL], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([['spurious', SPI, 0, 4]]);
  });

  it('level: a soft PEND (ISPENDR) after the deactivation justifies it', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], [K.ACK, SPI, 0, 0xa0, NONE], [K.LINE, SPI, -1, 0], [K.DEACT, SPI, 0, LEVEL], [K.PEND, SPI, -1, LEVEL], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([]);
  });

  it('level: acking a populated LR after the line dropped is the legal race, not spurious', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], [K.QUEUE, SPI, 0], [K.LR, SPI, 0, 0, 1], [K.LINE, SPI, -1, 0], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([]);
  });

  it('level: an ACK with no line ever raised is spurious', () => {
    expect(verdict(h([K.LINE, SPI, -1, 0], [K.ACK, SPI, 0, 0xa0, NONE]))).toEqual([['spurious', SPI, 0, 1]]);
  });
});

describe('priority', () => {
  it('ACK at the best priority (ties allowed) or with no competitor: clean', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0x80, 0x80]))).toEqual([]);
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xf0, NONE]))).toEqual([]);
  });

  it('ACK while a higher-priority deliverable LR was present', () => {
    expect(verdict(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, 0x80]))).toEqual([['priority', SPI, 0, 1]]);
  });
});

describe('level-not-represented (at quiescence)', () => {
  const start: Row[] = [[K.LINE, SPI, -1, 1], [K.ACK, SPI, 0, 0xa0, NONE], [K.EOI, SPI, 0, 0xa0], [K.DEACT, SPI, 0, LEVEL]];

  it('deactivated with the line still high and re-presented: clean', () => {
    expect(verdict(h(...start, [K.LR, SPI, 0, 0, 1], [K.ACK, SPI, 0, 0xa0, NONE], QUIESCE, [K.LEVEL_END, SPI, -1, 1, 1]))).toEqual([]);
  });

  it('deactivated with the line still high and never presented again: reported at the DEACT', () => {
    expect(verdict(h(...start, QUIESCE, [K.LEVEL_END, SPI, -1, 1, 1]))).toEqual([['level-not-represented', SPI, 0, 3]]);
  });

  it('line lowered before quiescence, or interrupt disabled: clean', () => {
    expect(verdict(h(...start, [K.LINE, SPI, -1, 0], QUIESCE, [K.LEVEL_END, SPI, -1, 0, 1]))).toEqual([]);
    expect(verdict(h(...start, QUIESCE, [K.LEVEL_END, SPI, -1, 1, 0]))).toEqual([]);
  });

  it('a private level interrupt is matched with its own LEVEL_END', () => {
    const ppi: Row[] = [[K.LINE, 23, 1, 1], [K.ACK, 23, 1, 0xa0, NONE], [K.DEACT, 23, 1, LEVEL], QUIESCE];
    expect(verdict(h(...ppi, [K.LEVEL_END, 23, 0, 1, 1]))).toEqual([]);
    expect(verdict(h(...ppi, [K.LEVEL_END, 23, 1, 1, 1]))).toEqual([['level-not-represented', 23, 1, 2]]);
  });
});

describe('resample (resamplefd SPIs)', () => {
  const opts = { resampleSpis: [SPI] };
  const ack: Row = [K.ACK, SPI, 0, 0xa0, NONE];
  const deact: Row = [K.DEACT, SPI, 0, LEVEL];
  const resample: Row = [K.RESAMPLE, SPI, -1];

  it('one RESAMPLE per deactivation: clean', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], ack, deact, resample, [K.LINE, SPI, -1, 0], [K.LINE, SPI, -1, 1], ack, deact, resample, QUIESCE), opts)).toEqual([]);
  });

  it('no RESAMPLE before the next ACK: missing, reported at that ACK', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], ack, deact, [K.LINE, SPI, -1, 0], [K.LINE, SPI, -1, 1], ack), opts)).toEqual([['resample-missing', SPI, 0, 5]]);
  });

  it('no RESAMPLE before quiescence: missing, reported at the DEACT', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], ack, deact, [K.LINE, SPI, -1, 0], QUIESCE), opts)).toEqual([['resample-missing', SPI, 0, 2]]);
  });

  it('two RESAMPLEs for one deactivation: doubled', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], ack, deact, resample, resample, [K.LINE, SPI, -1, 0], QUIESCE), opts)).toEqual([['resample-doubled', SPI, -1, 4]]);
  });

  it('only SPIs named in resampleSpis are held to it', () => {
    expect(verdict(h([K.LINE, SPI, -1, 1], ack, deact, [K.LINE, SPI, -1, 0], QUIESCE))).toEqual([]);
  });
});

describe('plumbing', () => {
  it('sorts an unsorted input by seq', () => {
    const ev = h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, NONE], [K.PEND, SPI, -1, EDGE], QUIESCE);
    expect(verdict([...ev].reverse())).toEqual([['lost', SPI, -1, 2]]);
  });

  it('decodes GICv2 SGI IAR values and leaves other INTIDs alone', () => {
    expect([guestIntid((5 << 10) | 7), guestSgiSource((5 << 10) | 7)]).toEqual([7, 5]);
    expect([guestIntid(40), guestSgiSource(40)]).toEqual([40, -1]);
    expect([guestIntid(8192 + 3), guestSgiSource(8192 + 3)]).toEqual([8195, -1]);
    expect(guestSgiSource(7, true)).toBe(0);
  });

  it('formatViolation names the kind, the interrupt and the events', () => {
    const [v] = checkHistory(h([K.PEND, SPI, -1, EDGE], [K.ACK, SPI, 0, 0xa0, NONE], [K.ACK, SPI, 0, 0xa0, NONE]));
    const text = formatViolation(v!);
    expect(text.split('\n')[0]).toMatch(/^\[duplicate\] SPI 40 \(vCPU 0\) at #2: /);
    expect(text).toContain('    #0 PEND intid=40 vcpu=-1 edge src=-1');
    expect(text).toContain('  > #2 ACK intid=40 vcpu=0 prio=0xa0 best=256');
    expect(formatEvent({ seq: 9, kind: K.QUIESCE, intid: 0, vcpu: -1, a: 0, b: 0 })).toBe('#9 QUIESCE');
  });
});

describe('toJUnitXml', () => {
  it('writes a suite with passing and failing cases, escaped', () => {
    const xml = toJUnitXml('stress <v3>', [
      { name: 'seed 0x00000001', timeSec: 1.5 },
      { name: 'seed "2" & more', timeSec: 0.25, failure: { message: "lost: SPI 40\n'x'", details: '[lost] a < b && c > d\n  #1 PEND\u0001' } },
    ]);
    expect(xml).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="stress &lt;v3&gt;" tests="2" failures="1" errors="0" skipped="0" time="1.750">',
        '  <testsuite name="stress &lt;v3&gt;" tests="2" failures="1" errors="0" skipped="0" time="1.750">',
        '    <testcase name="seed 0x00000001" classname="stress &lt;v3&gt;" time="1.500"/>',
        '    <testcase name="seed &quot;2&quot; &amp; more" classname="stress &lt;v3&gt;" time="0.250">',
        '      <failure message="lost: SPI 40&#10;&apos;x&apos;" type="failure">[lost] a &lt; b &amp;&amp; c &gt; d\n  #1 PEND\uFFFD</failure>',
        '    </testcase>',
        '  </testsuite>',
        '</testsuites>',
        '',
      ].join('\n'),
    );
  });

  it('handles an empty suite and bad times', () => {
    const xml = toJUnitXml('empty', [{ name: 'x', timeSec: NaN }]);
    expect(xml).toContain('tests="1" failures="0" errors="0" skipped="0" time="0.000"');
    expect(toJUnitXml('none', [])).toContain('<testsuite name="none" tests="0" failures="0"');
  });
});
