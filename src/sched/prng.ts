/**
 * The stress tester's pseudo-random generator. It is our own (not Math.random, not a package) so
 * that a seed printed in a failure report replays the same run in every future release: the
 * algorithm and the seeding below are frozen, and test/sched/prng.test.ts pins golden outputs.
 *
 * Generator: xoshiro128** 1.1 (Blackman & Vigna), 128 bits of state, 32-bit outputs, pure 32-bit
 * integer math (Math.imul, >>> 0), so it is fast and allocation-free on the schedule-point path.
 * Seeding: a uint32 seed is the initial state of SplitMix64 (Vigna's recommended seeder for the
 * xoshiro family); its first two 64-bit outputs, low word first, fill s0..s3. SplitMix64 is
 * computed here with 32-bit halves (no BigInt) so seeding works the same in every worker.
 */

const U32 = 0x1_0000_0000;

/** Full 64-bit product of two uint32 values, as [hi, lo] written into `out` (no allocation). */
function mulU32Wide(a: number, b: number, out: Uint32Array): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  // Every partial sum stays below 2^53, so plain double arithmetic is exact here.
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  out[1] = ((mid & 0xffff) << 16) | (p00 & 0xffff);
  out[0] = p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 0x1_0000);
}

/** (hi, lo) * (mhi, mlo) mod 2^64, result into out = [hi, lo]. */
function mul64(hi: number, lo: number, mhi: number, mlo: number, out: Uint32Array): void {
  mulU32Wide(lo, mlo, out);
  // The cross terms only reach the high word; Math.imul gives them mod 2^32.
  out[0] = out[0]! + Math.imul(hi, mlo) + Math.imul(lo, mhi);
}

/**
 * SplitMix64 over a 64-bit state held as two uint32 halves. Used only at construction, so the
 * small scratch array per instance is fine.
 */
class SplitMix64 {
  private hi: number;
  private lo: number;
  private readonly t = new Uint32Array(2);

  constructor(seedHi: number, seedLo: number) {
    this.hi = seedHi >>> 0;
    this.lo = seedLo >>> 0;
  }

  /** Next 64-bit output into out = [hi, lo]. */
  next(out: Uint32Array): void {
    // state += 0x9e3779b97f4a7c15
    const lo = this.lo + 0x7f4a7c15;
    this.hi = (this.hi + 0x9e3779b9 + (lo >= U32 ? 1 : 0)) >>> 0;
    this.lo = lo >>> 0;
    let zh = this.hi;
    let zl = this.lo;
    const t = this.t;
    // z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9
    zl = (zl ^ ((zl >>> 30) | (zh << 2))) >>> 0;
    zh = (zh ^ (zh >>> 30)) >>> 0;
    mul64(zh, zl, 0xbf58476d, 0x1ce4e5b9, t);
    zh = t[0]!;
    zl = t[1]!;
    // z = (z ^ (z >>> 27)) * 0x94d049bb133111eb
    zl = (zl ^ ((zl >>> 27) | (zh << 5))) >>> 0;
    zh = (zh ^ (zh >>> 27)) >>> 0;
    mul64(zh, zl, 0x94d049bb, 0x133111eb, t);
    zh = t[0]!;
    zl = t[1]!;
    // z ^ (z >>> 31)
    out[1] = zl ^ ((zl >>> 31) | (zh << 1));
    out[0] = zh ^ (zh >>> 31);
  }
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be an unsigned 32-bit integer, got ${String(v)}`);
  }
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed`: an unsigned 32-bit integer (see parseSeed for user input). */
  constructor(seed: number) {
    checkU32('seed', seed);
    const sm = new SplitMix64(0, seed);
    const w = new Uint32Array(2);
    sm.next(w);
    this.s0 = w[1]!;
    this.s1 = w[0]!;
    sm.next(w);
    this.s2 = w[1]!;
    this.s3 = w[0]!;
    // SplitMix64's output function is a bijection and its two states differ, so the two outputs
    // differ and cannot both be zero: the all-zero xoshiro state (a fixed point) is unreachable.
  }

  /**
   * A generator with an explicit xoshiro128** state (for checking against the published reference
   * vectors and for resuming from a saved state). The state must not be all zero.
   */
  static fromState(state: readonly [number, number, number, number]): Prng {
    state.forEach((v, i) => checkU32(`state[${i}]`, v));
    if (state.every((v) => v === 0)) throw new RangeError('xoshiro128** state must not be all zero');
    const p = new Prng(0);
    [p.s0, p.s1, p.s2, p.s3] = state;
    return p;
  }

  /** The current state (to resume later with fromState). */
  getState(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Next uniformly distributed uint32. */
  nextU32(): number {
    const s1 = this.s1;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    // The state words may be stored as signed int32 bit patterns; only outputs are normalised.
    return result;
  }

  /** Uniform in [0, 1), 32 bits of resolution (one draw). */
  next(): number {
    return this.nextU32() / U32;
  }

  /**
   * Uniform integer in [0, n), unbiased: draws falling in the incomplete last block of size
   * 2^32 mod n are rejected (at most half the draws for any n, usually almost none).
   * `n`: integer in [1, 2^32].
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > U32) {
      throw new RangeError(`Prng.int: n must be an integer in [1, 2^32], got ${String(n)}`);
    }
    const limit = U32 - (U32 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** True with probability p (always exactly one draw, so the stream stays aligned). */
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** MurmurHash3's fmix32 finaliser: a bijection on uint32 with good avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Seed of the per-thread PRNG for thread slot `stream` in a run seeded with `runSeed`. For one run
 * seed, distinct streams (< 2^32) always get distinct seeds: stream -> mixed + (stream+1)*golden
 * is injective mod 2^32 (golden is odd) and fmix32 is a bijection.
 */
export function deriveSeed(runSeed: number, stream: number): number {
  checkU32('runSeed', runSeed);
  checkU32('stream', stream);
  return fmix32((fmix32(runSeed ^ 0x5eed5eed) + Math.imul(stream + 1, 0x9e3779b9)) >>> 0);
}

/** Parse a seed given by a user: decimal or 0x-prefixed hex, unsigned 32-bit. */
export function parseSeed(text: string): number {
  const t = text.trim();
  const ok = /^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/.test(t);
  // BigInt so that very long digit strings are range-checked exactly, not rounded.
  if (ok) {
    const v = BigInt(t);
    if (v <= 0xffffffffn) return Number(v);
  }
  throw new Error(
    `invalid seed ${JSON.stringify(text)}: expected an unsigned 32-bit integer, decimal (e.g. 1234) or hex (e.g. 0xdeadbeef)`,
  );
}

/** Canonical printed form of a seed (what replay commands show). */
export function formatSeed(seed: number): string {
  checkU32('seed', seed);
  return `0x${seed.toString(16).padStart(8, '0')}`;
}
