/**
 * The discrete-event queue of `bench/sim.ts`: a {@linkcode Clock} like
 * `ManualClock`, but with its timers in a binary heap, so that a simulation
 * with hundreds of thousands of pending events stays O(log n) per event
 * (`ManualClock.advance` scans every timer per event), plus a seeded random
 * number generator so that runs repeat.
 *
 * @module
 */
import type { Clock, TimerHandle } from "../lib/clock.ts";

/**
 * A clock that moves only by running its events, in order of due time (ties
 * in the order they were scheduled).
 *
 * @example
 * ```ts
 * import { HeapClock } from "./_sim_clock.ts";
 * const clock = new HeapClock();
 * const order: number[] = [];
 * clock.setTimeout(() => order.push(2), 20);
 * clock.setTimeout(() => order.push(1), 10);
 * clock.run();
 * console.assert(order.join() === "1,2" && clock.now() === 20);
 * ```
 */
export class HeapClock implements Clock {
  #now = 0;
  #seq = 0;
  // A heap of slot numbers; each slot holds one event: due time, handle (also
  // the tie-break order) and function.
  #heap: number[] = [];
  #at: number[] = [];
  #order: number[] = [];
  #fns: (((() => void) | undefined))[] = [];
  #free: number[] = [];
  #handles = new Map<TimerHandle, number>(); // handle -> slot

  /** The current simulated time, in ms. */
  now(): number {
    return this.#now;
  }

  /** Events waiting. */
  get pending(): number {
    return this.#handles.size;
  }

  /** Schedules `fn` at now + `ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = ++this.#seq;
    const slot = this.#free.pop() ?? this.#fns.length;
    this.#at[slot] = this.#now + Math.max(0, ms);
    this.#order[slot] = handle;
    this.#fns[slot] = fn;
    this.#handles.set(handle, slot);
    this.#push(slot);
    return handle;
  }

  /** Cancels an event (it stays in the heap, as a no-op). */
  clearTimeout(handle: TimerHandle): void {
    const slot = this.#handles.get(handle);
    if (slot === undefined) return;
    this.#handles.delete(handle);
    this.#fns[slot] = undefined;
  }

  /** Runs events until none is left; returns how many ran. */
  run(): number {
    let ran = 0;
    while (this.#heap.length > 0) {
      const slot = this.#pop();
      const fn = this.#fns[slot];
      this.#fns[slot] = undefined;
      this.#free.push(slot);
      if (!fn) continue;
      this.#handles.delete(this.#order[slot]);
      this.#now = Math.max(this.#now, this.#at[slot]);
      fn();
      ran++;
    }
    return ran;
  }

  #less(a: number, b: number): boolean {
    return this.#at[a] < this.#at[b] ||
      (this.#at[a] === this.#at[b] && this.#order[a] < this.#order[b]);
  }

  #push(slot: number): void {
    const heap = this.#heap;
    let i = heap.push(slot) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  #pop(): number {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.#less(heap[l], heap[m])) m = l;
        if (r < heap.length && this.#less(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The sfc32 generator's state and step, shared by the seeded generators of
 * the simulations, the fuzz campaign and the Jepsen checks (each seeds it its
 * own way and draws from it its own way).
 *
 * @example
 * ```ts
 * import { Sfc32 } from "./_sim_clock.ts";
 * console.assert(new Sfc32(1, 2, 3, 4, 12).next() === new Sfc32(1, 2, 3, 4, 12).next());
 * ```
 */
export class Sfc32 {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator in state (a, b, c, d), after `warmup` draws. */
  constructor(a: number, b: number, c: number, d: number, warmup: number) {
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
    for (let i = 0; i < warmup; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
}

/** splitmix32's step: a well-mixed 32-bit value from any 32-bit value. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a over a string, as a 32-bit unsigned integer. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A seeded pseudo-random generator (sfc32), so that a simulation repeats.
 *
 * @example
 * ```ts
 * import { Rng } from "./_sim_clock.ts";
 * const a = new Rng(7);
 * const b = new Rng(7);
 * console.assert(a.int(1000) === b.int(1000));
 * ```
 */
export class Rng {
  #core: Sfc32;

  /** Creates a generator from a 32-bit seed. */
  constructor(seed: number) {
    this.#core = new Sfc32(0x9e3779b9, 0x243f6a88, 0xb7e15162, seed >>> 0, 16);
  }

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    return this.#core.next();
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A uniform float in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  /** `length` random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const x = this.uint32();
      for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (x >>> (24 - 8 * j)) & 255;
    }
    return out;
  }

  /** `count` distinct integers of [0, n), in random order. */
  sample(n: number, count: number): number[] {
    const chosen = new Set<number>();
    while (chosen.size < Math.min(count, n)) chosen.add(this.int(n));
    return [...chosen];
  }
}
