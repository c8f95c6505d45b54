/**
 * A set of recently seen message ids, bounded in count and age, for
 * de-duplicating forwarded messages (SPEAK with forwarding, SHOUT).
 *
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { ArgumentError } from "../errors.ts";

/**
 * Options of a {@linkcode SeenCache}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeenCache, type SeenCacheOptions } from "./seen_cache.ts";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const clock = new ManualClock();
 * const options: SeenCacheOptions = { maxEntries: 1_000, maxAge: 60_000, clock };
 * const seen = new SeenCache(options);
 * seen.add("message-1");
 * clock.advance(59_999);
 * assert(seen.has("message-1"));
 * clock.advance(1);
 * assert(!seen.has("message-1")); // forgotten after maxAge
 * ```
 */
export interface SeenCacheOptions {
  /** Most ids remembered; the oldest is forgotten first. @default {65_536} */
  maxEntries?: number;
  /** How long an id is remembered, in ms. @default {600_000} */
  maxAge?: number;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
}

/**
 * Remembers ids (strings) for a while.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SeenCache } from "./seen_cache.ts";
 * const seen = new SeenCache({ maxEntries: 2 });
 * assert.equal(seen.add("a"), true);
 * assert.equal(seen.add("a"), false);
 * seen.add("b");
 * seen.add("c"); // forgets "a"
 * assert.equal(seen.has("a"), false);
 * assert.equal(seen.size, 2);
 * ```
 */
export class SeenCache {
  readonly #max: number;
  readonly #maxAge: number;
  readonly #clock: Clock;
  // Insertion-ordered: the first entry is the oldest.
  readonly #entries = new Map<string, number>();

  /** Creates an empty cache. */
  constructor(options: SeenCacheOptions = {}) {
    this.#max = options.maxEntries ?? 65_536;
    this.#maxAge = options.maxAge ?? 600_000;
    this.#clock = options.clock ?? systemClock;
    if (!Number.isInteger(this.#max) || this.#max < 1) {
      throw new ArgumentError(`maxEntries must be a positive integer, got ${this.#max}`);
    }
  }

  /** Ids remembered now. */
  get size(): number {
    this.#expire();
    return this.#entries.size;
  }

  /** Whether `id` was seen (and not yet forgotten). */
  has(id: string): boolean {
    this.#expire();
    return this.#entries.has(id);
  }

  /** Records `id`; returns true if it was new. */
  add(id: string): boolean {
    this.#expire();
    if (this.#entries.has(id)) return false;
    this.#entries.set(id, this.#clock.now());
    if (this.#entries.size > this.#max) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return true;
  }

  #expire(): void {
    const cutoff = this.#clock.now() - this.#maxAge;
    for (const [id, at] of this.#entries) {
      if (at > cutoff) break;
      this.#entries.delete(id);
    }
  }
}
