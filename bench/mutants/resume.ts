/**
 * Resuming a measurement (`--resume FILE`): the results of an earlier report that still hold are
 * those of the same mutant (id, file, line, operator and edits) of this sample, measured to an
 * outcome that does not depend on machine load. Timeouts are measured again.
 */
import type { MutantResult } from './runner.js';
import type { Mutant } from './sampler.js';

export function resumable(old: { mutants?: readonly MutantResult[] }, chosen: readonly Mutant[]): MutantResult[] {
  const byId = new Map(chosen.map((m) => [m.id, m]));
  const same = (a: Mutant, b: Mutant): boolean =>
    a.file === b.file && a.line === b.line && a.operator === b.operator && a.description === b.description &&
    JSON.stringify(a.edits) === JSON.stringify(b.edits);
  return (old.mutants ?? []).filter((r) => r.status !== 'timeout' && byId.has(r.id) && same(r, byId.get(r.id)!));
}
