/**
 * Shared-memory layout tables. A structure is declared once as an ordered list of fields
 * (name, width in Int32 words, what it means, how it is protected); offsets are computed from the
 * declaration and nothing else in the code base writes an offset by hand. Fields of kind 'f64' are
 * 8-byte aligned so they can be read through a Float64Array view of the same buffer.
 */
import { describeProtection, type Protection } from './protection.js';

export interface FieldDecl {
  readonly name: string;
  /** Width in Int32 words. */
  readonly words?: number;
  /**
   * 'lock': a lock of src/sync (2 words: state, owner); audits (check/audits.ts) find every lock
   * of a VM through this, with nothing listed by hand.
   */
  readonly kind?: 'i32' | 'f64' | 'lock';
  readonly doc: string;
  /**
   * How the field is protected against concurrent access (checked by check/lockset in checking
   * mode). Required for every field of the VM state (layouts.ts declares them with `vmLayout`);
   * a lock's own words are the lock's protocol and need none.
   */
  readonly prot?: Protection;
  /** The field is an array of records of this layout (their fields carry the protection). */
  readonly elem?: Layout<string>;
}

/** A field of the shared VM state: a lock, an array of sub-records, or a protected field. */
export type VmFieldDecl =
  | (FieldDecl & { readonly kind: 'lock' })
  | (FieldDecl & { readonly elem: Layout<string> })
  | (FieldDecl & { readonly prot: Protection });

export interface Layout<N extends string> {
  readonly name: string;
  /** Size in Int32 words (a multiple of 2, so arrays of records keep f64 alignment). */
  readonly size: number;
  readonly off: { readonly [K in N]: number };
  readonly fields: readonly (FieldDecl & { offset: number; words: number })[];
}

export function defineLayout<const F extends readonly FieldDecl[]>(name: string, fields: F): Layout<F[number]['name']> {
  let at = 0;
  const off: Record<string, number> = {};
  const out: (FieldDecl & { offset: number; words: number })[] = [];
  for (const f of fields) {
    const words = f.words ?? (f.kind === 'f64' ? 2 : 1);
    if (f.kind === 'f64' && at % 2 !== 0) at++;
    if (f.name in off) throw new Error(`layout ${name}: duplicate field ${f.name}`);
    off[f.name] = at;
    out.push({ ...f, offset: at, words });
    at += words;
  }
  if (at % 2 !== 0) at++;
  // `off` is read on every hot path (m[b + IRQ.off.pendingLatch]). Built by keyed stores, an object
  // of more than about a dozen properties is left in dictionary mode by V8 (a hash lookup per
  // read, measured: ~20 ns more per irq lock/unlock pair); copied by spread it gets a fast map
  // whose loads inline to a constant offset.
  return { name, size: at, off: { ...off } as { [K in F[number]['name']]: number }, fields: out };
}

/** A layout of the shared VM state: every field must say how it is protected (typed). */
export function vmLayout<const F extends readonly VmFieldDecl[]>(name: string, fields: F): Layout<F[number]['name']> {
  return defineLayout(name, fields);
}

/** Render a layout as a table (used by `vgic-emu layout` and docs), with the protection column. */
export function describeLayout(l: Layout<string>): string {
  const rows = l.fields.map((f) => {
    const prot = f.kind === 'lock' ? 'lock' : f.elem ? `[${f.elem.name}]` : f.prot ? describeProtection(f.prot) : '-';
    const racy = f.prot && 'racyRead' in f.prot && f.prot.racyRead ? ` (racy read: ${f.prot.racyRead})` : '';
    return `  +${String(f.offset).padStart(4)}  ${String(f.words).padStart(3)}w  ${f.name.padEnd(18)} ${prot.padEnd(26)} ${f.doc}${racy}`;
  });
  return `${l.name} (${l.size} words)\n${rows.join('\n')}`;
}
