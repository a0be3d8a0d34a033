/**
 * The mutation operators on small inputs: each produces exactly the expected text, and code that
 * only a planted bug seed or the history recorder runs is left alone.
 */
import { describe, expect, it } from 'vitest';
import { applyEdits, findMutations, syntaxErrors, type OperatorName } from '../../bench/mutants/operators.js';

/** Every mutated text `op` makes of `js`. */
function mutants(js: string, op: OperatorName): string[] {
  return findMutations(js).filter((s) => s.operator === op).map((s) => applyEdits(js, s.edits));
}

describe('mutation operators', () => {
  it('cond-flip flips equality and moves relational boundaries', () => {
    expect(mutants('if (a === b && c < d) f();', 'cond-flip')).toEqual(['if (a !== b && c < d) f();', 'if (a === b && c <= d) f();']);
    expect(mutants('x = a >= b;', 'cond-flip')).toEqual(['x = a > b;']);
  });

  it('logic-swap swaps && and ||', () => {
    expect(mutants('if (a && (b || c)) f();', 'logic-swap')).toEqual(['if (a || (b || c)) f();', 'if (a && (b && c)) f();']);
  });

  it('drop-wake drops a kick, a request or an Atomics.notify, not an unbind or a registration', () => {
    const js = 'makeRequest(h, t, 1);\nkickVcpu(h, t);\nAtomics.notify(m, 4, 1);\nefd.unbindWakeup(t);\nsetWakeupHandler(t, g);\nlockIrq(h, r);';
    expect(mutants(js, 'drop-wake')).toEqual([
      ';\nkickVcpu(h, t);\nAtomics.notify(m, 4, 1);\nefd.unbindWakeup(t);\nsetWakeupHandler(t, g);\nlockIrq(h, r);',
      'makeRequest(h, t, 1);\n;\nAtomics.notify(m, 4, 1);\nefd.unbindWakeup(t);\nsetWakeupHandler(t, g);\nlockIrq(h, r);',
      'makeRequest(h, t, 1);\nkickVcpu(h, t);\n;\nefd.unbindWakeup(t);\nsetWakeupHandler(t, g);\nlockIrq(h, r);',
    ]);
  });

  it('drop-lock removes a matching acquire/release pair, also one released in a finally', () => {
    expect(mutants('function f(h, r) { lockIrq(h, r); m[r] = 1; unlockIrq(h, r); }', 'drop-lock')).toEqual([
      'function f(h, r) { ; m[r] = 1; ; }',
    ]);
    expect(mutants('lockConfig(h); try { g(); } finally { unlockConfig(h); }', 'drop-lock')).toEqual(['; try { g(); } finally { ; }']);
    // A release of another record is not the pair.
    expect(mutants('lockIrq(h, r); unlockIrq(h, q);', 'drop-lock')).toEqual([]);
  });

  it('early-release moves the release above the last statement of the critical section', () => {
    expect(mutants('lockIrq(h, r);\nm[a] = 1;\nm[b] = 2;\nunlockIrq(h, r);', 'early-release')).toEqual([
      'lockIrq(h, r);\nm[a] = 1;\nunlockIrq(h, r);\nm[b] = 2;',
    ]);
    // Nothing to move above: the acquire, or another release.
    expect(mutants('lockIrq(h, r);\nunlockIrq(h, r);', 'early-release')).toEqual([]);
    expect(mutants('lockApList(h, v);\nlockIrq(h, r);\nm[a] = 1;\nunlockIrq(h, r);\nunlockApList(h, v);', 'early-release')).toEqual([
      'lockApList(h, v);\nlockIrq(h, r);\nunlockIrq(h, r);\nm[a] = 1;\nunlockApList(h, v);',
    ]);
  });

  it('drop-store drops element stores and Atomics read-modify-writes, not plain variable writes', () => {
    expect(mutants('m[i] = 1; m[j] |= 2; m[k]++; Atomics.or(m, 3, 1); x = 4; Atomics.load(m, 0);', 'drop-store')).toEqual([
      '; m[j] |= 2; m[k]++; Atomics.or(m, 3, 1); x = 4; Atomics.load(m, 0);',
      'm[i] = 1; ; m[k]++; Atomics.or(m, 3, 1); x = 4; Atomics.load(m, 0);',
      'm[i] = 1; m[j] |= 2; ; Atomics.or(m, 3, 1); x = 4; Atomics.load(m, 0);',
      'm[i] = 1; m[j] |= 2; m[k]++; ; x = 4; Atomics.load(m, 0);',
    ]);
  });

  it('return-value flips booleans, changes literals and negates boolean-shaped results', () => {
    const js = 'function f(a) { if (a) return true; if (a > 2) return -1; if (a < 0) return 0; return a !== 1; }';
    expect(mutants(js, 'return-value')).toEqual([
      'function f(a) { if (a) return false; if (a > 2) return -1; if (a < 0) return 0; return a !== 1; }',
      'function f(a) { if (a) return true; if (a > 2) return 0; if (a < 0) return 0; return a !== 1; }',
      'function f(a) { if (a) return true; if (a > 2) return -1; if (a < 0) return 1; return a !== 1; }',
      'function f(a) { if (a) return true; if (a > 2) return -1; if (a < 0) return 0; return !(a !== 1); }',
    ]);
  });

  it("drop-recheck deletes a retry loop's re-validation and a do-while's re-check", () => {
    expect(mutants('for (;;) { lock(); if (stale()) { unlock(); continue; } use(); break; }', 'drop-recheck')).toEqual([
      'for (;;) { lock(); ; use(); break; }',
    ]);
    expect(mutants('do { o = m[0]; } while (Atomics.compareExchange(m, 0, o, o + 1) !== o);', 'drop-recheck')).toEqual([
      'do { o = m[0]; } while (false);',
    ]);
  });

  it('off-by-one drops a +1 or -1', () => {
    expect(mutants('const n = a + 1; const k = b - 1; const j = c + 2;', 'off-by-one')).toEqual([
      'const n = a; const k = b - 1; const j = c + 2;',
      'const n = a + 1; const k = b; const j = c + 2;',
    ]);
  });

  it('leaves bug-seed-only code, its tests, schedule points and history recording alone', () => {
    const js = [
      'if (h.bugs & BUG.queueNoKick) { m[0] = 1; } else { m[1] = 1; }',
      'if (!(h.bugs & BUG.noKickWhenQueued)) { kickVcpu(h, t); } else { m[2] = 1; }',
      'const s = (h.bugs & BUG.wfiNoRecheck) !== 0;',
      'if (h.hist) { h.hist.record(1, 2); m[3] = 1; }',
      'schedPoint(3, v);',
      'traceQueue(h, r, t);',
    ].join('\n');
    const texts = findMutations(js).map((s) => `${s.operator} ${s.description}`);
    expect(texts).toEqual(['drop-store drop m[1] = 1', 'drop-wake drop kickVcpu(h, t)']);
  });

  it('syntaxErrors accepts every mutant of a real module and rejects a broken text', () => {
    const js = 'export function f(h, r) { lockIrq(h, r); for (;;) { if (m[r] === 1 && g()) { m[r] = 0; continue; } break; } unlockIrq(h, r); return m[r] > 0; }';
    for (const s of findMutations(js)) expect(syntaxErrors(applyEdits(js, s.edits)), s.description).toEqual([]);
    expect(syntaxErrors('if (a { b(); }').length).toBeGreaterThan(0);
  });
});
