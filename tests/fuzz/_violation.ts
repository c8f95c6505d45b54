/**
 * A broken invariant found by an in-process target: a finding.
 *
 * @module
 */
import { toHex } from "./_mutate.ts";

/** A broken invariant: a finding. */
export class Violation extends Error {
  override name = "Violation";
  /** The input that broke it, hex. */
  input: string;
  /** Creates a violation for `input`. */
  constructor(message: string, input: Uint8Array | string, options?: ErrorOptions) {
    super(message, options);
    this.input = typeof input === "string" ? input : toHex(input.subarray(0, 4096));
  }
}
