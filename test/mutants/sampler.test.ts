/**
 * The sampler is deterministic for a seed, and every site it lists names the right .ts line
 * through the compiled module's source map (the report's `src/vgic/queue.ts:123`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/kvm/worker-path.js';
import { enumerateMutants, globToRegExp, sample } from '../../bench/mutants/sampler.js';
import { ModuleMap } from '../../bench/mutants/source-map.js';
import { findMutations, OPERATORS } from '../../bench/mutants/operators.js';
import { resumable } from '../../bench/mutants/resume.js';

const DIST = join(PACKAGE_ROOT, 'dist');

describe('mutant sampler', () => {
  const all = enumerateMutants(PACKAGE_ROOT, DIST);

  it('finds sites of every operator in src/vgic, src/kvm and src/eventfd only', () => {
    expect(new Set(all.map((m) => m.operator)).size).toBe(9);
    for (const m of all) expect(m.file).toMatch(/^src\/(vgic|kvm|eventfd)\/.*\.ts$/);
    expect(all.some((m) => m.file === 'src/vgic/bugs.ts')).toBe(false);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const key = (xs: { file: string; line: number; description: string }[]): string[] => xs.map((m) => `${m.file}:${m.line} ${m.description}`);
    const a = sample(all, 40, 7);
    expect(key(sample(all, 40, 7))).toEqual(key(a));
    expect(key(sample(all, 40, 8))).not.toEqual(key(a));
    expect(a.map((m) => m.id)).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`));
    expect(new Set(key(a)).size).toBe(40);
    expect(key(sample(all, 40, 7, 'uniform'))).toEqual(key(sample(all, 40, 7, 'uniform')));
  });

  it('stratified sampling gives every operator its turn', () => {
    // 18 over 9 operators: two each, except that an operator with fewer sites gives all it has
    // and the others make up the rest (the tree decides how many sites each operator finds).
    const s = sample(all, 18, 1);
    expect(s).toHaveLength(18);
    const per = new Map<string, number>();
    for (const m of s) per.set(m.operator, (per.get(m.operator) ?? 0) + 1);
    for (const op of OPERATORS) {
      const sites = all.filter((m) => m.operator === op).length;
      if (sites < 2) expect(per.get(op) ?? 0, op).toBe(sites);
      else expect(per.get(op), op).toBeGreaterThanOrEqual(2);
    }
  });

  it('filters by a glob on the .ts path', () => {
    expect(globToRegExp('src/vgic/**').test('src/vgic/its/cache.ts')).toBe(true);
    expect(globToRegExp('src/vgic/*.ts').test('src/vgic/its/cache.ts')).toBe(false);
    expect(globToRegExp('src/eventfd/*.ts,src/kvm/irq*.ts').test('src/kvm/irqfd.ts')).toBe(true);
    const some = enumerateMutants(PACKAGE_ROOT, DIST, 'src/eventfd/**');
    expect(some.length).toBeGreaterThan(0);
    for (const m of some) expect(m.file.startsWith('src/eventfd/')).toBe(true);
  });

  it('maps a compiled site to the .ts line that holds it', () => {
    const jsPath = join(DIST, 'src/vgic/queue.js');
    const js = readFileSync(jsPath, 'utf8');
    const ts = readFileSync(join(PACKAGE_ROOT, 'src/vgic/queue.ts'), 'utf8').split('\n');
    const map = new ModuleMap(jsPath, js, PACKAGE_ROOT);
    // Atomics.compareExchange in kickVcpu: one line in each text, at different line numbers.
    const at = js.indexOf('Atomics.compareExchange(m, vb + VCPU.off.mode');
    const want = ts.findIndex((l) => l.includes('Atomics.compareExchange(m, vb + VCPU.off.mode')) + 1;
    expect(want).toBeGreaterThan(0);
    expect(map.position(at)).toEqual({ file: 'src/vgic/queue.ts', line: want, source: ts[want - 1]!.trim() });
    // Every site's reported source line is the .ts line and contains what the operator changed.
    for (const s of findMutations(js).filter((x) => x.operator === 'drop-wake')) {
      const p = map.position(s.at);
      expect(p.source).toBe(ts[p.line - 1]!.trim());
      expect(p.source).toContain(s.description.replace(/^drop /, '').replace(/\(.*$/, ''));
    }
  });
});

describe('--resume', () => {
  it('keeps the earlier results of the same mutants, except timeouts', () => {
    const all = enumerateMutants(PACKAGE_ROOT, DIST, 'src/vgic/queue.ts');
    const s = sample(all, 4, 3);
    const old = {
      mutants: [
        { ...s[0]!, status: 'survived' as const, ms: 1 },
        { ...s[1]!, status: 'timeout' as const, ms: 1 },
        { ...s[2]!, status: 'killed' as const, ms: 1, line: s[2]!.line + 1 }, // another mutant under that id
        { ...s[3]!, status: 'killed' as const, detector: 'lost', ms: 1 },
      ],
    };
    expect(resumable(old, s).map((r) => r.id)).toEqual([s[0]!.id, s[3]!.id]);
  });
});
