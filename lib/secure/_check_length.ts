/**
 * The input guard the Noise modules share: a key, nonce or psk of the wrong
 * size is the local caller's mistake, an `ArgumentError` naming the value.
 *
 * Private to `lib/secure/`.
 *
 * @module
 */
import { ArgumentError } from "../errors.ts";

/**
 * Throws unless `bytes` is a `Uint8Array` of exactly `length` bytes.
 *
 * @throws {ArgumentError} `Invalid <name>: expected Uint8Array of length 32, got length=33`
 */
export function checkLength(name: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ArgumentError(
      `Invalid ${name}: expected Uint8Array of length ${length}, got ${
        bytes instanceof Uint8Array ? `length=${bytes.length}` : typeof bytes
      }`,
    );
  }
}
