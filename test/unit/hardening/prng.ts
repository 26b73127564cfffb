/**
 * A small seeded PRNG (mulberry32) for the hardening tests: a failing crash or fuzz run can be replayed
 * with the seed it printed (SCANRELAY_CRASH_SEED / SCANRELAY_FUZZ_SEED).
 */
export interface Prng {
  readonly seed: number;
  /** [0, 1) */
  next(): number;
  /** Integer in [min, max] */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(probability: number): boolean;
  bytes(length: number): Buffer;
}

export function createPrng(seed: number): Prng {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)],
    chance: (probability) => next() < probability,
    bytes: (length) => Buffer.from(Array.from({ length }, () => int(0, 255))),
  };
}

/** The seed from the environment variable, or a fresh one (printed by the caller). */
export function seedFrom(variable: string): number {
  const given = process.env[variable];
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isInteger(seed)) throw new Error(`${variable} must be an integer, got "${given}"`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

/** SCANRELAY_LONG_TESTS=1 turns on the long variants (docs/hardening.md). */
export const LONG_TESTS = process.env.SCANRELAY_LONG_TESTS === '1';
