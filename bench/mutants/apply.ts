/**
 * A private copy of the compiled package per job slot, and a mutant applied to it by writing one
 * file. The copy holds its own package.json, so `PACKAGE_ROOT` (src/kvm/worker-path.ts: the first
 * folder up from dist/src/kvm with a package.json) is the copy, and every worker it starts
 * (dist/workers/*.js, the piscina campaign task) loads the copy's modules, mutant included.
 * node_modules is a symbolic link to the original's: the dependencies are not mutated.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyEdits, syntaxErrors } from './operators.js';
import type { Mutant } from './sampler.js';

/** The parts of dist/ a stress campaign loads. */
const COPIED = ['src', 'workers', 'bench'] as const;

export interface Slot {
  /** The copy's package root. */
  root: string;
  /** Original text of the file a mutant is currently applied to. */
  applied: { js: string; text: string } | null;
}

export function makeSlot(root: string, dir: string): Slot {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'dist'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  for (const d of COPIED) cpSync(join(root, 'dist', d), join(dir, 'dist', d), { recursive: true });
  if (existsSync(join(root, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return { root: dir, applied: null };
}

/**
 * The mutated text of a mutant's module (its edits are offsets into the original package's
 * compiled file, `root`/dist/`js`), or the parse errors that make it invalid.
 */
export function mutatedText(root: string, m: Pick<Mutant, 'js' | 'edits'>): { text: string } | { invalid: string } {
  const original = readFileSync(join(root, 'dist', m.js), 'utf8');
  let text: string;
  try {
    text = applyEdits(original, m.edits);
  } catch (e) {
    return { invalid: (e as Error).message };
  }
  const errs = syntaxErrors(text);
  return errs.length ? { invalid: errs.join('; ') } : { text };
}

/** Write the mutant into the slot's copy (the slot must be clean). */
export function applyMutant(slot: Slot, m: Pick<Mutant, 'js'>, text: string): void {
  if (slot.applied) throw new Error(`slot ${slot.root} still holds a mutant of ${slot.applied.js}`);
  const path = join(slot.root, 'dist', m.js);
  slot.applied = { js: m.js, text: readFileSync(path, 'utf8') };
  writeFileSync(path, text);
}

/** Put the slot's copy back to the original. */
export function restoreSlot(slot: Slot): void {
  if (!slot.applied) return;
  writeFileSync(join(slot.root, 'dist', slot.applied.js), slot.applied.text);
  slot.applied = null;
}
