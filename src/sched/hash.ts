/**
 * Stateless decision hashing for the controlled scheduler: the choice at step n is a function of
 * (seed, n) only, so whichever thread holds the baton computes the same answer, and a schedule
 * never depends on which thread happened to draw from a stream. (murmur3's 32-bit finaliser.)
 */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A uint32 for (seed, step, salt). */
export function decide(seed: number, step: number, salt: number): number {
  return fmix32((seed ^ fmix32(step + 0x9e3779b9 * (salt + 1))) >>> 0);
}

