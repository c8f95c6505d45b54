/**
 * Time, injectable. Every timer carrier sets goes through a {@linkcode Clock},
 * so tests and simulations can drive time with a {@linkcode ManualClock}
 * instead of sleeping.
 *
 * @module
 */

/**
 * A handle returned by {@linkcode Clock.setTimeout}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TimerHandle } from "@carrier/p2p";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const clock = new ManualClock();
 * const handle: TimerHandle = clock.setTimeout(() => assert.fail("cancelled"), 100);
 * clock.clearTimeout(handle);
 * clock.advance(100); // nothing fires
 * assert.equal(clock.pending, 0);
 * ```
 */
export type TimerHandle = number;

/**
 * A source of time and timers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Clock, generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const clock: Clock = new ManualClock(5_000); // `systemClock` outside tests
 * const me = generateIdentitySync({ difficulty: 0 });
 * const table = new RoutingTable(me.nodeId, { clock });
 * const other = generateIdentitySync({ difficulty: 0 });
 * table.add(contactOf(other.publicKey, other.address));
 * assert.equal(table.get(other.address)?.lastSeen, 5_000);
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin, never decreasing. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for {@linkcode Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; a no-op for a fired or unknown handle. */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real clock: `performance.now()` and the global timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "@carrier/p2p";
 * const t = systemClock.setTimeout(() => {}, 1000);
 * systemClock.clearTimeout(t);
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  // Deno's timers return numbers; with Node's types in scope they are typed Timeout.
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms) as unknown as number,
  clearTimeout: (handle: TimerHandle) => clearTimeout(handle),
});

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to: {@linkcode ManualClock.advance} runs
 * the timers that fall due, in order of due time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const clock = new ManualClock();
 * let fired = false;
 * clock.setTimeout(() => (fired = true), 100);
 * clock.advance(99);
 * assert.equal(fired, false);
 * clock.advance(1);
 * assert.equal(fired, true);
 * assert.equal(clock.now(), 100);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, Timer>();

  /** Creates a clock reading `start` milliseconds. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current reading. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at now + `ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  /** Cancels a timer. */
  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }

  /** Timers still pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, running each timer that falls due at its own
   * due time (timers it sets run too, if they fall due within the window).
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers.values()) {
        if (
          t.at <= end &&
          (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))
        ) {
          next = t;
        }
      }
      if (!next) break;
      this.#timers.delete(next.seq);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
  }
}
