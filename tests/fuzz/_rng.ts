/**
 * A small seeded PRNG (sfc32) for the fuzz campaign. Every input of every
 * target is drawn from its own generator, seeded from (campaign seed, target
 * name, input index), so that one input can be regenerated on its own.
 *
 * @module
 */

import { hashString, mix32, Sfc32 } from "../../bench/_sim_clock.ts";

export { hashString };

/** A deterministic random source. */
export class Rng {
  #core: Sfc32;

  /** Seeds the generator from up to three 32-bit words. */
  constructor(seed: number, stream = 0, index = 0) {
    const a = mix32(seed ^ 0x1234567);
    const b = mix32(stream ^ a);
    const c = mix32(index ^ b);
    const d = mix32((index / 0x1_0000_0000) ^ c ^ 0x5bd1e995);
    this.#core = new Sfc32(a, b, c, d, 12);
  }

  /** The generator of input `index` of target `name` under campaign seed `seed`. */
  static forInput(seed: number, name: string, index: number): Rng {
    return new Rng(seed, hashString(name), index);
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    return this.#core.next();
  }

  /** A uniform integer in [0, n) (n ≤ 2^32). */
  int(n: number): number {
    if (n <= 1) return 0;
    if (n <= 0x1_0000_0000) return Math.floor((this.u32() / 0x1_0000_0000) * n);
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** A uniform float in [0, 1) with 53 bits. */
  float(): number {
    return (this.u32() * 0x20_0000 + (this.u32() >>> 11)) / 2 ** 53;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** One of the weighted choices: `[weight, value]` pairs. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of choices) total += w;
    let r = this.float() * total;
    for (const [w, v] of choices) {
      if ((r -= w) < 0) return v;
    }
    return choices[choices.length - 1][1];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = this.u32();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    for (; i < n; i++) out[i] = this.u32();
    return out;
  }

  /** A length biased towards small values and edges: mostly < 64, sometimes up to `max`. */
  length(max: number): number {
    return this.weighted<() => number>([
      [50, () => this.int(Math.min(max, 16) + 1)],
      [30, () => this.int(Math.min(max, 256) + 1)],
      [12, () => this.int(Math.min(max, 4096) + 1)],
      [8, () => this.int(max + 1)],
    ])();
  }

  /** A random 64-bit unsigned value. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}
