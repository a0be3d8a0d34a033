/**
 * Which mutants to run: every site of every compiled module under the mutated folders, filtered by
 * a glob on the .ts path, then a seeded sample. The same seed, files and count give the same
 * mutants in the same order (the list is sorted before the shuffle, so directory order and
 * operator discovery order do not matter).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../../src/sched/prng.js';
import { findMutations, OPERATORS, type Edit, type OperatorName } from './operators.js';
import { ModuleMap } from './source-map.js';

/** The folders whose modules are mutated (relative to dist/). */
export const MUTATED_DIRS = ['src/vgic', 'src/kvm', 'src/eventfd'] as const;
/** The planted bug seeds' table: mutating it only renames or re-numbers the seeds. */
const NOT_MUTATED = new Set(['src/vgic/bugs.js']);

export interface Mutant {
  /** Stable id within a sample: `m<index>`. */
  id: string;
  /** Compiled module, relative to dist/ (e.g. `src/vgic/queue.js`). */
  js: string;
  /** The .ts file and line the site maps to, and that line's text. */
  file: string;
  line: number;
  source: string;
  operator: OperatorName;
  description: string;
  edits: Edit[];
}

/** A minimal glob: `**` any path, `*` within one segment, `?` one character; comma-separated alternatives. */
export function globToRegExp(glob: string): RegExp {
  const alts = glob.split(',').map((g) => {
    let re = '';
    for (let i = 0; i < g.length; i++) {
      const c = g[i]!;
      if (c === '*' && g[i + 1] === '*') {
        re += g[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += g[i + 2] === '/' ? 2 : 1;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return re;
  });
  return new RegExp(`^(?:${alts.join('|')})$`);
}

function jsFiles(dist: string, dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dist, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...jsFiles(dist, rel));
    else if (e.name.endsWith('.js') && !NOT_MUTATED.has(rel)) out.push(rel);
  }
  return out;
}

/** Every mutation site under `dist` (the compiled tree) whose .ts path matches `files`. */
export function enumerateMutants(root: string, dist: string, files = '**', operators: readonly OperatorName[] = OPERATORS): Omit<Mutant, 'id'>[] {
  const want = globToRegExp(files);
  const ops = new Set(operators);
  const all: Omit<Mutant, 'id'>[] = [];
  for (const js of MUTATED_DIRS.flatMap((d) => jsFiles(dist, d)).sort()) {
    const path = join(dist, js);
    const text = readFileSync(path, 'utf8');
    const map = new ModuleMap(path, text, root);
    for (const s of findMutations(text, js)) {
      if (!ops.has(s.operator)) continue;
      const pos = map.position(s.at);
      if (!want.test(pos.file)) continue;
      all.push({ js, file: pos.file, line: pos.line, source: pos.source, operator: s.operator, description: s.description, edits: s.edits });
    }
  }
  return all;
}

/** The first `n` of `a` after a seeded partial Fisher-Yates shuffle (`a` is shuffled in place). */
function shuffled<T>(a: T[], n: number, rng: Prng): T[] {
  for (let i = 0; i < Math.min(n, a.length); i++) {
    const j = i + rng.int(a.length - i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

export type Sampling = 'stratified' | 'uniform';

/**
 * `count` of `all`, seeded; ids are m0, m1, ... in sample order. `uniform`: every site equally
 * likely (cond-flip, half of all sites, then dominates). `stratified` (default): the operators
 * take turns, each drawing uniformly from its own sites, so the rare concurrency operators
 * (drop-wake, drop-lock, early-release, drop-recheck) are measured as well as the common ones.
 */
export function sample<T extends { operator: string }>(all: readonly T[], count: number, seed: number, how: Sampling = 'stratified'): (T & { id: string })[] {
  const rng = new Prng(seed);
  let picked: T[];
  if (how === 'uniform') picked = shuffled([...all], count, rng);
  else {
    const groups = new Map<string, T[]>();
    for (const m of all) {
      const g = groups.get(m.operator);
      if (g) g.push(m);
      else groups.set(m.operator, [m]);
    }
    const queues = [...groups.keys()].sort().map((k) => shuffled(groups.get(k)!, count, rng));
    picked = [];
    for (let round = 0; picked.length < count && queues.some((q) => round < q.length); round++) {
      for (const q of queues) if (round < q.length && picked.length < count) picked.push(q[round]!);
    }
  }
  return picked.map((m, i) => ({ ...m, id: `m${i}` }));
}
