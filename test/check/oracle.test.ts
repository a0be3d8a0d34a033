/**
 * The reference-model oracle (src/check/oracle/) against handcrafted histories: for each rejection
 * one history that violates it, and for each latitude the architecture and KVM allow a legal but
 * tricky history that must pass. Every verdict is written by hand from the architecture (GICv3
 * §4.1-4.8, spec §3.4-3.8, §4.4-4.8, §5.1-5.4); none comes from running the oracle.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatViolation, type CheckOptions } from '../../src/check/checker.js';
import { DEACT_BY_DIR, DEACT_BY_EOI, DEACT_BY_EOICOUNT, EventKind as K, FOLD_DROPPED, packVmcr, type HistoryEvent } from '../../src/record/events.js';

type Row = [kind: K, intid: number, vcpu: number, a?: number, b?: number];

/** A history from rows; seq = row index. */
function h(...rows: Row[]): HistoryEvent[] {
  return rows.map(([kind, intid, vcpu, a = 0, b = -1], seq) => ({ seq, kind, intid, vcpu, a, b }));
}

function verdict(rows: Row[], opts?: CheckOptions): [string, number, number, number][] {
  return checkHistory(h(...rows), opts).map((v) => [v.kind, v.intid, v.vcpu, v.seq]);
}

const EDGE = 0;
const LEVEL = 1;
const NONE = 256;
const P = 1; // LR state: pending
const A = 2; // LR state: active
const SPI = 40;
const LPI = 8192;

/** VMCR of vCPU v: group 1 enabled (and group 0), BPR at their minimum unless given. */
function vmcr(v: number, { pmr = 0xff, eoiMode = 0, eng0 = 1, eng1 = 1, bpr0 = 2, bpr1 = 3 } = {}): Row {
  return [K.VMCR, -1, v, packVmcr(pmr, bpr0, bpr1, 0, eoiMode, eng0, eng1), 0];
}
const pend = (intid = SPI, vcpu = -1, src = -1): Row => [K.PEND, intid, vcpu, EDGE, src];
const lr = (v: number, i: number, state: number, intid = SPI): Row => [K.LR, intid, v, i, state];
const fold = (v: number, i: number, state: number, intid = SPI): Row => [K.FOLD, intid, v, i, state];
const ack = (v: number, prio = 0xa0, intid = SPI): Row => [K.ACK, intid, v, prio, NONE];
const eoi = (v: number, intid = SPI): Row => [K.EOI, intid, v, 0, 0];
const deact = (v: number, by = DEACT_BY_EOI, intid = SPI, trigger = EDGE): Row => [K.DEACT, intid, v, trigger, by];
/** A configured SPI: enabled, group 1, targeting vCPU 0. */
const setup: Row[] = [vmcr(0), vmcr(1), [K.ENABLE, SPI, -1, 1], [K.GROUP, SPI, -1, 1], [K.TARGET, SPI, -1, 0]];

describe('the oracle rejects', () => {
  it('an ACK of an interrupt the model has not pending: the LR took a pending state already consumed', () => {
    const rows: Row[] = [...setup, pend(), lr(0, 0, P), ack(0), eoi(0), deact(0), fold(0, 0, 0), lr(0, 0, P), ack(0)];
    expect(verdict(rows)).toEqual([['duplicate', SPI, 0, 12]]);
    const [v] = checkHistory(h(...rows));
    expect(v!.message).toBe('vcpu0 acked SPI 40 from LR #11 on vcpu0 (LR 0), but the model has it not pending: its last PEND #5 was consumed by LR #6 on vcpu0 when it was populated');
    expect(v!.events.map((e) => e.seq)).toContain(5);
  });

  it('an ACK of an interrupt never made pending, or whose latch ICPENDR cleared: spurious', () => {
    expect(verdict([...setup, lr(0, 0, P), ack(0)])).toEqual([['spurious', SPI, 0, 6]]);
    expect(verdict([...setup, pend(), [K.UNPEND, SPI, -1, 0, -1], lr(0, 0, P), ack(0)])).toEqual([['spurious', SPI, 0, 8]]);
  });

  it('a duplicate delivery: one PEND presented in the LRs of two vCPUs', () => {
    const rows: Row[] = [...setup, pend(), lr(0, 0, P), lr(1, 0, P), ack(0), ack(1)];
    expect(verdict(rows)).toEqual([['duplicate', SPI, 1, 9]]);
    expect(checkHistory(h(...rows))[0]!.message).toContain('consumed by LR #6 on vcpu0');
  });

  it('an ACK whose priority is not above the PMR', () => {
    expect(verdict([...setup, vmcr(0, { pmr: 0x80 }), pend(), lr(0, 0, P), ack(0, 0xa0)])).toEqual([['ack-masked', SPI, 0, 8]]);
    expect(verdict([...setup, vmcr(0, { pmr: 0x80 }), pend(), lr(0, 0, P), ack(0, 0x78)])).toEqual([]);
  });

  it('an ACK that does not preempt the running priority (with the binary point deciding)', () => {
    const nested = (bpr1: number, prio: number): Row[] => [
      ...setup, vmcr(0, { bpr1 }), [K.ENABLE, 41, -1, 1], pend(), pend(41), lr(0, 0, P), lr(0, 1, P, 41), ack(0, 0x50), ack(0, prio, 41),
    ];
    expect(verdict(nested(3, 0x50))).toEqual([['ack-running-priority', 41, 0, 12]]);
    expect(verdict(nested(3, 0x40))).toEqual([]);
    // BPR1 = 5: group priorities are bits [7:6], so 0x40 and 0x50 are the same level.
    expect(verdict(nested(5, 0x40))).toEqual([['ack-running-priority', 41, 0, 12]]);
    // After the EOI of the first, the running priority is idle again.
    expect(verdict([...nested(3, 0x40).slice(0, -1), eoi(0), deact(0), ack(0, 0x50, 41)])).toEqual([]);
  });

  it("an ACK of a group the vCPU has disabled", () => {
    expect(verdict([...setup, vmcr(0, { eng1: 0 }), pend(), lr(0, 0, P), ack(0)])).toEqual([['ack-group-disabled', SPI, 0, 8]]);
  });

  it('an ACK on a vCPU that is not the target', () => {
    const rows: Row[] = [...setup, [K.TARGET, SPI, -1, 1], pend(), lr(0, 0, P), ack(0)];
    expect(verdict(rows)).toEqual([['ack-not-target', SPI, 0, 8]]);
    expect(checkHistory(h(...rows))[0]!.message).toContain('the model targets vcpu1 since TARGET #5');
  });

  it('an ACK of an interrupt populated while disabled', () => {
    expect(verdict([...setup, [K.ENABLE, SPI, -1, 0], pend(), lr(0, 0, P), ack(0)])).toEqual([['ack-disabled', SPI, 0, 8]]);
  });

  it('an ACK of an interrupt still active (acked, never deactivated)', () => {
    expect(verdict([...setup, pend(), lr(0, 0, P), ack(0), eoi(0), fold(0, 0, A), pend(), lr(0, 0, P), ack(0)])).toEqual([['ack-active', SPI, 0, 12]]);
  });

  it('an EOI of a non-active interrupt in EOImode 0', () => {
    const rows: Row[] = [...setup, pend(), lr(0, 0, P), ack(0), eoi(0), deact(0), eoi(0)];
    expect(verdict(rows)).toEqual([['eoi-not-active', SPI, 0, 10]]);
    expect(checkHistory(h(...rows))[0]!.message).toBe('vcpu0 wrote EOIR for SPI 40 (EOImode 0) with no acknowledgement of it awaiting a priority drop and the model has it inactive: it was last deactivated by DEACT #9 on vcpu0: its last EOI was EOI #8 on vcpu0');
  });

  it('a DIR with nothing active', () => {
    const split: Row[] = [...setup, vmcr(0, { eoiMode: 1 }), pend(), lr(0, 0, P), ack(0), eoi(0), deact(0, DEACT_BY_DIR)];
    expect(verdict(split)).toEqual([]);
    expect(verdict([...split, deact(0, DEACT_BY_DIR)])).toEqual([['deactivate-inactive', SPI, 0, 11]]);
  });

  it('an ICACTIVER while the interrupt sits in a running LR (the guest was not halted)', () => {
    expect(verdict([...setup, pend(), lr(0, 0, P), ack(0), [K.ACTIVE, SPI, -1, 0]])).toEqual([['active-changed-in-lr', SPI, -1, 8]]);
  });

  it('a RESAMPLE without a deactivation (and a deactivation without one)', () => {
    const opts = { resampleSpis: [SPI] };
    const lvl: Row[] = [[K.LINE, SPI, -1, 1], lr(0, 0, P), ack(0), eoi(0), deact(0, DEACT_BY_EOI, SPI, LEVEL)];
    expect(verdict([...lvl, [K.RESAMPLE, SPI, -1], [K.RESAMPLE, SPI, -1]], opts)).toEqual([['resample-doubled', SPI, -1, 6]]);
    expect(verdict([...lvl, [K.RESAMPLE, SPI, -1], [K.LINE, SPI, -1, 0], [K.QUIESCE, 0, -1]], opts)).toEqual([]);
  });

  it('formats its violations with the slice', () => {
    const [v] = checkHistory(h(...setup, pend(), lr(0, 0, P), lr(1, 0, P), ack(0), ack(1)));
    const text = formatViolation(v!);
    expect(text.split('\n')[0]).toMatch(/^\[duplicate\] SPI 40 \(vCPU 1\) at #9: vcpu1 acked SPI 40 from LR #7 on vcpu1/);
    expect(text).toContain('  > #9 ACK intid=40 vcpu=1');
  });
});

describe('the oracle allows', () => {
  it('an ACK after the interrupt was disabled, retargeted or reprioritised: the LR is a snapshot', () => {
    expect(verdict([...setup, pend(), lr(0, 0, P), [K.ENABLE, SPI, -1, 0], ack(0)])).toEqual([]);
    expect(verdict([...setup, pend(), lr(0, 0, P), [K.TARGET, SPI, -1, 1], ack(0)])).toEqual([]);
    // The LR keeps priority 0xa0; the distributor's new 0xf0 would be masked by the PMR of 0xc0.
    expect(verdict([...setup, vmcr(0, { pmr: 0xc0 }), [K.PRIO, SPI, -1, 0xa0], pend(), lr(0, 0, P), [K.PRIO, SPI, -1, 0xf0], ack(0, 0xa0)])).toEqual([]);
  });

  it('an ACK of a level interrupt whose line fell after LR population', () => {
    expect(verdict([...setup, [K.LINE, SPI, -1, 1], lr(0, 0, P), [K.LINE, SPI, -1, 0], ack(0), eoi(0), deact(0, DEACT_BY_EOI, SPI, LEVEL)])).toEqual([]);
  });

  it('coalesced edges, and an unacknowledged LR folded back and presented again', () => {
    expect(verdict([...setup, pend(), pend(), pend(), lr(0, 0, P), ack(0), eoi(0), deact(0)])).toEqual([]);
    expect(verdict([...setup, pend(), lr(0, 0, P), fold(0, 0, P), [K.TARGET, SPI, -1, 1], lr(1, 0, P), ack(1)])).toEqual([]);
  });

  it('retargeted while active, then re-pended: the P+A LR stays with the active holder, and its pending part is acked there (SPI and LPI)', () => {
    // vgic_target_oracle keeps an active interrupt with its vCPU; the flush populates it pending+
    // active there whatever the target says now (its-cmds, MOVI of an active LPI).
    for (const intid of [SPI, LPI]) {
      const base: Row[] = [vmcr(0), vmcr(1), [K.ENABLE, intid, -1, 1], [K.GROUP, intid, -1, 1], [K.TARGET, intid, -1, 1]];
      const rows: Row[] = [...base, pend(intid), lr(1, 0, P, intid), ack(1, 0xa0, intid), [K.TARGET, intid, -1, 0], fold(1, 0, A, intid), pend(intid), lr(1, 0, P | A, intid), eoi(1, intid), deact(1, DEACT_BY_EOI, intid), ack(1, 0xa0, intid)];
      expect(verdict(rows), `INTID ${intid}`).toEqual([]);
    }
  });

  it('an edge re-pended while active: pending+active in the LR, acked after its deactivation in the LR', () => {
    expect(verdict([...setup, pend(), lr(0, 0, P), ack(0), fold(0, 0, A), pend(), lr(0, 0, P | A), eoi(0), deact(0), ack(0)])).toEqual([]);
  });

  it("mainline LR overflow: an EOI outside the LRs deactivated by the host's EOIcount walk at fold", () => {
    expect(verdict([...setup, pend(), lr(0, 0, P), ack(0), fold(0, 0, A), eoi(0), deact(0, DEACT_BY_EOICOUNT)])).toEqual([]);
  });

  it('EOImode 1: a trapped DIR on another vCPU, and the ICACTIVER fallback after every vCPU folded', () => {
    const split: Row[] = [...setup, vmcr(0, { eoiMode: 1 }), pend(), lr(0, 0, P), ack(0), eoi(0)];
    expect(verdict([...split, deact(1, DEACT_BY_DIR)])).toEqual([]);
    expect(verdict([...split, fold(0, 0, A), [K.ACTIVE, SPI, -1, 0]])).toEqual([]);
  });

  it('GICv2 SGIs: one pending bit per source, the source in the IAR value', () => {
    const v2 = { gicVersion: 2 as const };
    const sgi = (src: number): number => (src << 10) | 1;
    const rows: Row[] = [vmcr(0), pend(1, 0, 1), pend(1, 0, 2), lr(0, 0, P | (1 << 8), 1), lr(0, 1, P | (2 << 8), 1),
      [K.ACK, sgi(1), 0, 0xa0, NONE], [K.EOI, sgi(1), 0], [K.DEACT, sgi(1), 0, EDGE, 0], [K.ACK, sgi(2), 0, 0xa0, NONE]];
    expect(verdict(rows, v2)).toEqual([]);
    // The same source presented twice for one SGIR write is a duplicate.
    expect(verdict([vmcr(0), pend(1, 0, 1), lr(0, 0, P | (1 << 8), 1), lr(0, 1, P | (1 << 8), 1), [K.ACK, sgi(1), 0, 0xa0, NONE], [K.ACK, sgi(1), 0, 0x80, NONE]], v2))
      .toEqual([['duplicate', 1, 0, 5]]);
  });

  it('ITS: a DISCARDed pending LPI may still be delivered; a fresh MAP starts disabled and not pending', () => {
    const lpi: Row[] = [vmcr(0), [K.MAP, LPI, -1, 0], [K.ENABLE, LPI, -1, 1], pend(LPI)];
    expect(verdict([...lpi, lr(0, 0, P, LPI), [K.DISCARD, LPI, -1], ack(0, 0xa0, LPI), eoi(0, LPI), deact(0, DEACT_BY_EOI, LPI)])).toEqual([]);
    expect(verdict([...lpi, [K.MAP, LPI, -1, 0], [K.ENABLE, LPI, -1, 1], lr(0, 0, P, LPI), ack(0, 0xa0, LPI)])).toEqual([['spurious', LPI, 0, 7]]);
  });

  it('ITS: an LPI made pending while disabled is delivered once the property table enables it (INV)', () => {
    const lpi: Row[] = [vmcr(0), [K.MAP, LPI, -1, 0], pend(LPI)];
    expect(verdict([...lpi, [K.ENABLE, LPI, -1, 1], lr(0, 0, P, LPI), ack(0, 0xa0, LPI)])).toEqual([]);
    expect(verdict([...lpi, lr(0, 0, P, LPI), ack(0, 0xa0, LPI)])).toEqual([['ack-disabled', LPI, 0, 4]]);
  });

  it('an LR dropped at fold because its LPI was freed does not come back pending', () => {
    const lpi: Row[] = [vmcr(0), [K.MAP, LPI, -1, 0], [K.ENABLE, LPI, -1, 1], pend(LPI), lr(0, 0, P, LPI), fold(0, 0, FOLD_DROPPED, LPI)];
    expect(verdict([...lpi, lr(0, 0, P, LPI), ack(0, 0xa0, LPI)])).toEqual([['duplicate', LPI, 0, 7]]);
  });

  it('spurious IAR reads (1023) and special EOIR writes', () => {
    expect(verdict([...setup, [K.ACK, 1023, 0, 0, NONE], [K.EOI, 1023, 0], pend(), lr(0, 0, P), ack(0)])).toEqual([]);
  });

  it('state the history does not show is not judged (a history that starts mid-run)', () => {
    // No VMCR, ENABLE or TARGET: only what the events prove is held against the ACK.
    expect(verdict([pend(), lr(1, 0, P), ack(1, 0xfe)])).toEqual([]);
  });
});
