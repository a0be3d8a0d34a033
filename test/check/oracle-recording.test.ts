/**
 * The vgic records what the oracle replays (real vCPU threads, controlled mode): configuration and
 * state changes appear in the history of a run, and the correct model passes the oracle with them,
 * also with one or two list registers (mainline LR overflow: EOIcount walk, trapped DIR).
 */
import { describe, expect, it } from 'vitest';
import { runStress } from '../../src/stress/runner.js';
import { DEACT_BY_DIR, DEACT_BY_EOICOUNT, EventKind as K, VMCR_EOIMODE, type HistoryEvent } from '../../src/record/events.js';

const kinds = (h: readonly HistoryEvent[]): Set<number> => new Set(h.map((e) => e.kind));

describe('history recording for the oracle', () => {
  it('split-eoi with 1 LR: VMCR with EOImode 1, ENABLE, FOLD, trapped DIRs; no findings', async () => {
    const r = await runStress({ scenario: 'split-eoi', mode: 'controlled', seed: 1, iterations: 20, nrLr: 1, keepHistory: true, timeoutMs: 30_000 });
    expect(r.findings.map((f) => `${f.kind}: ${f.message}`)).toEqual([]);
    const h = r.history!;
    const k = kinds(h);
    for (const want of [K.VMCR, K.ENABLE, K.LR, K.FOLD, K.ACK, K.EOI, K.DEACT]) expect(k.has(want), `kind ${want}`).toBe(true);
    expect(h.some((e) => e.kind === K.VMCR && (e.a & VMCR_EOIMODE) !== 0)).toBe(true);
    expect(h.some((e) => e.kind === K.DEACT && e.b === DEACT_BY_DIR)).toBe(true);
    // Every LR populated is folded or still live at the end: no FOLD without its LR.
    const live = new Map<string, number>();
    for (const e of h) {
      const at = `${e.vcpu}/${e.a}`;
      if (e.kind === K.LR) live.set(at, e.intid);
      else if (e.kind === K.FOLD) {
        expect(live.get(at), `FOLD #${e.seq}`).toBe(e.intid);
        live.delete(at);
      }
    }
  });

  it('spi-storm on GICv2 with 2 LRs: VMCR and the deactivations are recorded; no findings', async () => {
    const r = await runStress({ scenario: 'spi-storm', mode: 'controlled', seed: 3, iterations: 30, nrLr: 2, gic: 'v2', keepHistory: true, timeoutMs: 30_000 });
    expect(r.findings.map((f) => `${f.kind}: ${f.message}`)).toEqual([]);
    expect(kinds(r.history!).has(K.VMCR)).toBe(true);
    expect(r.history!.some((e) => e.kind === K.DEACT && (e.b === DEACT_BY_EOICOUNT || e.b === 0))).toBe(true);
  });

  it('lpi-refcount: MAP, DISCARD and the property-table enable of LPIs; no findings', async () => {
    const r = await runStress({ scenario: 'lpi-refcount', mode: 'controlled', seed: 1, iterations: 20, keepHistory: true, timeoutMs: 30_000 });
    expect(r.findings.map((f) => `${f.kind}: ${f.message}`)).toEqual([]);
    const h = r.history!;
    expect(h.some((e) => e.kind === K.MAP && e.intid >= 8192)).toBe(true);
    expect(h.some((e) => e.kind === K.DISCARD && e.intid >= 8192)).toBe(true);
    expect(h.some((e) => e.kind === K.ENABLE && e.intid >= 8192 && e.a === 1)).toBe(true);
  });
});
