/**
 * Node addresses. The address of a node is its 32-byte Ed25519 public key;
 * its text form is base58 with the Bitcoin alphabet (no `0`, `O`, `I`, `l`),
 * 32 to 44 characters long. Base58 is canonical for a fixed length (leading
 * `1`s stand for leading zero bytes), so one address has exactly one text
 * form and text can be compared as text.
 *
 * {@linkcode parseAddress} checks the form only; it does not check that the
 * bytes decode to a point on the curve. A bad key simply never verifies a
 * signature (see `verify` in `keys.ts`).
 *
 * @module
 */

import { base58 } from "@scure/base";
import { AddressError } from "../errors.ts";
import { bytesEqual } from "../_bytes.ts";
import { describeValue, typeName } from "./_bytes.ts";

/**
 * Length of an address (an Ed25519 public key) in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, parseAddress } from "@carrier/p2p";
 * import { ADDRESS_LENGTH } from "@carrier/p2p/protocol";
 * const { address } = generateIdentitySync({ difficulty: 0 });
 * assert.equal(parseAddress(address).length, ADDRESS_LENGTH);
 * ```
 */
export const ADDRESS_LENGTH = 32;

/**
 * Length of the longest base58 text form of a 32-byte address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "@carrier/p2p";
 * import { MAX_ADDRESS_TEXT_LENGTH } from "@carrier/p2p/protocol";
 * const longest = formatAddress(new Uint8Array(32).fill(0xff));
 * assert.equal(longest.length, MAX_ADDRESS_TEXT_LENGTH);
 * ```
 */
export const MAX_ADDRESS_TEXT_LENGTH = 44;

/**
 * The base58 (Bitcoin) alphabet used for addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { BASE58_ALPHABET } from "@carrier/p2p/protocol";
 * const { address } = generateIdentitySync({ difficulty: 0 });
 * assert([...address].every((char) => BASE58_ALPHABET.includes(char)));
 * assert(!BASE58_ALPHABET.includes("0") && !BASE58_ALPHABET.includes("l"));
 * ```
 */
export const BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** Longest text that is decoded at all, so that a huge string cannot make base58's quadratic decoder spin. */
const MAX_DECODED_TEXT_LENGTH = 2 * MAX_ADDRESS_TEXT_LENGTH;

/** Added to the message when the bad character is one base58 leaves out on purpose. */
const EXCLUDED_HINT = " (base58 has no 0, O, I or l)";

/**
 * Checks that `bytes` is a raw address: a Uint8Array of exactly 32 bytes.
 *
 * @throws {AddressError} `Invalid address: expected Uint8Array of length 32, got length=31`
 *
 * @example
 * ```ts
 * import { assertAddressBytes } from "@carrier/p2p/protocol";
 * assertAddressBytes(new Uint8Array(32)); // ok
 * ```
 */
export function assertAddressBytes(
  bytes: unknown,
): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== ADDRESS_LENGTH) {
    throw new AddressError(
      `Invalid address: expected Uint8Array of length ${ADDRESS_LENGTH}, got ${
        describeValue(bytes)
      }`,
    );
  }
}

/**
 * Formats a 32-byte address (an Ed25519 public key) as base58 text.
 *
 * @param bytes The 32-byte public key.
 * @returns Its base58 text, 32 to 44 characters.
 * @throws {AddressError} When `bytes` is not a 32-byte Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "@carrier/p2p";
 * assert.equal(formatAddress(new Uint8Array(32)), "1".repeat(32));
 * ```
 */
export function formatAddress(bytes: Uint8Array): string {
  assertAddressBytes(bytes);
  return base58.encode(bytes);
}

/**
 * Parses the base58 text form of an address into its 32 bytes.
 *
 * Every failure is an {@linkcode AddressError} whose message says why, with
 * positions counted from 0 as string indices:
 *
 * - `Cannot parse address: empty string`
 * - `Cannot parse address " 4vJ…": leading whitespace at position 0`
 *   (and `trailing whitespace at position N`); whitespace is never trimmed
 * - `Cannot parse address "4v0…": character "0" (U+0030) at position 2 is not in the base58 alphabet (base58 has no 0, O, I or l)`
 * - `Cannot parse address "4vJ…": expected 32 bytes, got 31`
 * - `Cannot parse address "4vJ…": too long: 1000 characters, a 32-byte address has at most 44`
 *
 * @param text The base58 text.
 * @returns A new 32-byte Uint8Array.
 * @throws {AddressError} When `text` is not the text form of a 32-byte address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress, parseAddress } from "@carrier/p2p";
 * const bytes = parseAddress("11111111111111111111111111111112");
 * assert.equal(bytes.length, 32);
 * assert.equal(bytes[31], 1);
 * assert.equal(formatAddress(bytes), "11111111111111111111111111111112");
 * ```
 */
export function parseAddress(text: string): Uint8Array {
  if (typeof text !== "string") {
    throw new AddressError(
      `Cannot parse address: expected a string, got ${typeName(text)}`,
    );
  }
  if (text.length === 0) {
    throw new AddressError("Cannot parse address: empty string");
  }
  const fail = (why: string): AddressError =>
    new AddressError(`Cannot parse address ${quote(text)}: ${why}`);

  if (/^\s/u.test(text)) throw fail("leading whitespace at position 0");
  const trailing = /\s+$/u.exec(text);
  if (trailing !== null) {
    throw fail(`trailing whitespace at position ${trailing.index}`);
  }
  for (let i = 0; i < text.length; i++) {
    if (!BASE58_ALPHABET.includes(text[i])) {
      const codePoint = text.codePointAt(i)!;
      const char = String.fromCodePoint(codePoint);
      const hint = "0OIl".includes(char) ? EXCLUDED_HINT : "";
      throw fail(
        `character ${JSON.stringify(char)} (U+${
          codePoint.toString(16).toUpperCase().padStart(4, "0")
        }) at position ${i} is not in the base58 alphabet${hint}`,
      );
    }
  }
  if (text.length > MAX_DECODED_TEXT_LENGTH) {
    throw fail(
      `too long: ${text.length} characters, a ${ADDRESS_LENGTH}-byte address has at most ${MAX_ADDRESS_TEXT_LENGTH}`,
    );
  }
  const bytes = base58.decode(text);
  if (bytes.length !== ADDRESS_LENGTH) {
    throw fail(`expected ${ADDRESS_LENGTH} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/**
 * Whether two raw addresses are the same. Both must be 32-byte Uint8Arrays.
 * Addresses are public, so the comparison is not constant-time.
 *
 * @throws {AddressError} When either is not a 32-byte Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressEquals, parseAddress } from "@carrier/p2p";
 * const a = parseAddress("11111111111111111111111111111112");
 * assert.ok(addressEquals(a, a.slice()));
 * assert.ok(!addressEquals(a, new Uint8Array(32)));
 * ```
 */
export function addressEquals(a: Uint8Array, b: Uint8Array): boolean {
  assertAddressBytes(a);
  assertAddressBytes(b);
  return bytesEqual(a, b);
}

/** Quotes `text` for a message, escaping control characters and cutting it at 60 characters. */
function quote(text: string): string {
  const shown = text.length > 60 ? `${text.slice(0, 57)}…` : text;
  return JSON.stringify(shown);
}
