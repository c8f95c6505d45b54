/**
 * The S/Kademlia static puzzle (Baumgart and Mies, 2007). A public key is
 * valid at difficulty `c1` iff SHA-256(SHA-256(publicKey)) has at least `c1`
 * leading zero bits. Finding such a key takes 2^c1 key generations on
 * average, while checking one takes two hashes, so the puzzle makes it
 * costly to mint many identities (a Sybil attack) or to pick one's own
 * position in the keyspace. The NodeId is SHA-256(publicKey) (see
 * `node_id.ts`), so the puzzle is "the NodeId's own hash starts with zeros".
 *
 * All nodes of one network must use the same difficulty: a node checks its
 * peers' keys against its own setting.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { ArgumentError, PuzzleError } from "../errors.ts";
import { assertAddressBytes, formatAddress } from "./address.ts";
import { leadingZeroBits } from "./node_id.ts";

/**
 * The default puzzle difficulty `c1`: 8 leading zero bits, so generating an
 * identity takes 2^8 = 256 key generations on average (about 10 ms with
 * `node:crypto`, see `bench/identity_bench.ts`) and 99% of searches finish
 * within about 1,200. This is deliberately small: it keeps tests, the CLI and throwaway
 * nodes fast and only weeds out identities minted for free. A network that
 * wants real Sybil resistance should raise it (each extra bit doubles the
 * work; 20 bits is about a million key generations).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_PUZZLE_DIFFICULTY, generateIdentity } from "@carrier/p2p";
 * import { verifyPuzzle } from "@carrier/p2p/protocol";
 * const identity = await generateIdentity(); // at DEFAULT_PUZZLE_DIFFICULTY
 * assert(verifyPuzzle(identity.publicKey, DEFAULT_PUZZLE_DIFFICULTY));
 * ```
 */
export const DEFAULT_PUZZLE_DIFFICULTY = 8;

/**
 * The largest meaningful difficulty: every bit of the SHA-256 output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArgumentError } from "@carrier/p2p";
 * import { assertPuzzleDifficulty, MAX_PUZZLE_DIFFICULTY } from "@carrier/p2p/protocol";
 * assertPuzzleDifficulty(MAX_PUZZLE_DIFFICULTY); // ok
 * assert.throws(() => assertPuzzleDifficulty(MAX_PUZZLE_DIFFICULTY + 1), ArgumentError);
 * ```
 */
export const MAX_PUZZLE_DIFFICULTY = 256;

/**
 * Checks that `difficulty` is an integer from 0 to 256.
 *
 * @throws {ArgumentError} `Invalid puzzle difficulty: expected an integer from 0 to 256, got 300`
 *
 * @example
 * ```ts
 * import { assertPuzzleDifficulty } from "@carrier/p2p/protocol";
 * assertPuzzleDifficulty(8); // ok
 * ```
 */
export function assertPuzzleDifficulty(difficulty: number): void {
  if (
    !Number.isInteger(difficulty) || difficulty < 0 ||
    difficulty > MAX_PUZZLE_DIFFICULTY
  ) {
    throw new ArgumentError(
      `Invalid puzzle difficulty: expected an integer from 0 to ${MAX_PUZZLE_DIFFICULTY}, got ${
        String(difficulty)
      }`,
    );
  }
}

/**
 * The puzzle hash of a public key: SHA-256(SHA-256(publicKey)).
 *
 * @param publicKey A 32-byte Ed25519 public key (an address).
 * @returns A new 32-byte hash.
 * @throws {AddressError} When `publicKey` is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { puzzleHash } from "@carrier/p2p/protocol";
 * assert.equal(puzzleHash(new Uint8Array(32)).length, 32);
 * ```
 */
export function puzzleHash(publicKey: Uint8Array): Uint8Array {
  assertAddressBytes(publicKey);
  return sha256(sha256(publicKey));
}

/**
 * How much puzzle work a public key carries: the number of leading zero bits
 * of its puzzle hash (0 to 256). The key satisfies every difficulty up to
 * this number.
 *
 * @param publicKey A 32-byte Ed25519 public key (an address).
 * @throws {AddressError} When `publicKey` is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { puzzleWork } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 4 });
 * assert.ok(puzzleWork(identity.publicKey) >= 4);
 * ```
 */
export function puzzleWork(publicKey: Uint8Array): number {
  return leadingZeroBits(puzzleHash(publicKey));
}

/**
 * Whether a public key satisfies the static puzzle at difficulty `c1`.
 * Difficulty 0 accepts every key.
 *
 * @param publicKey A 32-byte Ed25519 public key (an address).
 * @param c1 The difficulty: the leading zero bits required, 0 to 256.
 * @throws {AddressError} When `publicKey` is not 32 bytes.
 * @throws {ArgumentError} When `c1` is not an integer from 0 to 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { verifyPuzzle } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 4 });
 * assert.ok(verifyPuzzle(identity.publicKey, 4));
 * assert.ok(verifyPuzzle(identity.publicKey, 0));
 * ```
 */
export function verifyPuzzle(publicKey: Uint8Array, c1: number): boolean {
  assertPuzzleDifficulty(c1);
  return puzzleWork(publicKey) >= c1;
}

/**
 * Throws unless a public key satisfies the static puzzle at difficulty `c1`.
 *
 * @param publicKey A 32-byte Ed25519 public key (an address).
 * @param c1 The difficulty: the leading zero bits required, 0 to 256.
 * @throws {PuzzleError} `Public key 4vJ9… fails the static puzzle: 3 leading zero bits, need 8`
 * @throws {AddressError} When `publicKey` is not 32 bytes.
 * @throws {ArgumentError} When `c1` is not an integer from 0 to 256.
 *
 * @example
 * ```ts
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { assertPuzzle } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 4 });
 * assertPuzzle(identity.publicKey, 4); // ok
 * ```
 */
export function assertPuzzle(publicKey: Uint8Array, c1: number): void {
  assertPuzzleDifficulty(c1);
  const work = puzzleWork(publicKey);
  if (work < c1) {
    throw new PuzzleError(
      `Public key ${
        formatAddress(publicKey)
      } fails the static puzzle: ${work} leading zero bits, need ${c1}`,
    );
  }
}
