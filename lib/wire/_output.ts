/**
 * A growable output buffer that never grows past a bound, for the
 * decompressors that produce their output in steps.
 *
 * @module
 */

import { DecompressionLimitError } from "../errors.ts";

/** Output bytes so far in `buf[0, pos)`; `reserve` before writing. */
export class BoundedOutput {
  /** The buffer; replaced when it grows. */
  buf: Uint8Array;
  /** Number of bytes written. */
  pos = 0;
  #max: number;
  #what: string;

  /**
   * @param initial first capacity (clamped to `max`)
   * @param max the most bytes the output may hold
   * @param what the format, for the error message
   */
  constructor(initial: number, max: number, what: string) {
    this.buf = new Uint8Array(Math.min(initial, max));
    this.#max = max;
    this.#what = what;
  }

  /** Makes room for `n` more bytes, or throws if that would pass the bound. */
  reserve(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (need > this.#max) throw this.limitError();
    const grown = new Uint8Array(
      Math.min(this.#max, Math.max(need, this.buf.length * 2, 1024)),
    );
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** How many more bytes the bound allows. */
  get room(): number {
    return this.#max - this.pos;
  }

  /** The error for output that would pass the bound. */
  limitError(): DecompressionLimitError {
    return new DecompressionLimitError(
      `Cannot decompress ${this.#what} data: output exceeds maxOutputSize ${this.#max}`,
    );
  }

  /** The output, trimmed to `pos` (copied only if the buffer is larger). */
  bytes(): Uint8Array {
    return this.pos === this.buf.length ? this.buf : this.buf.slice(0, this.pos);
  }
}
