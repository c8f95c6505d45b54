/**
 * NodeIds: a node's position in the DHT keyspace. The NodeId of a node is
 * SHA-256 of its 32 raw address bytes (not of the base58 text), so ids are
 * 32 bytes and the keyspace has τ = 256 bits. Distance is Kademlia's XOR
 * metric, read as a 256-bit big-endian unsigned integer.
 *
 * Bit numbering, used by {@linkcode bucketIndex}: bit 255 is the most
 * significant bit of byte 0, bit 0 the least significant bit of byte 31.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { ArgumentError, NodeIdError } from "../errors.ts";
import { assertAddressBytes, parseAddress } from "./address.ts";
import { describeValue } from "./_bytes.ts";

/**
 * Length of a NodeId in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, nodeIdOf } from "@carrier/p2p";
 * import { NODE_ID_LENGTH } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * assert.equal(nodeIdOf(identity.address).length, NODE_ID_LENGTH);
 * ```
 */
export const NODE_ID_LENGTH = 32;

/**
 * Length of a NodeId in bits: Kademlia's τ.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketIndex, NODE_ID_BITS } from "@carrier/p2p/protocol";
 * const self = new Uint8Array(32);
 * const farthest = new Uint8Array(32).fill(0xff);
 * assert.equal(bucketIndex(self, farthest), NODE_ID_BITS - 1);
 * ```
 */
export const NODE_ID_BITS = 256;

/**
 * Checks that `value` is a NodeId (or any DHT key): a Uint8Array of exactly
 * 32 bytes.
 *
 * @param value The value to check.
 * @param label What the value is, for the message.
 * @throws {NodeIdError} `Invalid NodeId: expected Uint8Array of length 32, got length=20`
 *
 * @example
 * ```ts
 * import { assertNodeId } from "@carrier/p2p/protocol";
 * assertNodeId(new Uint8Array(32)); // ok
 * ```
 */
export function assertNodeId(
  value: unknown,
  label = "NodeId",
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== NODE_ID_LENGTH) {
    throw new NodeIdError(
      `Invalid ${label}: expected Uint8Array of length ${NODE_ID_LENGTH}, got ${
        describeValue(value)
      }`,
    );
  }
}

/**
 * The NodeId of an address: SHA-256 of its 32 raw bytes.
 *
 * @param address The raw 32-byte address, or its base58 text.
 * @returns A new 32-byte NodeId.
 * @throws {AddressError} When `address` is not a valid address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nodeIdOf } from "@carrier/p2p";
 * const id = nodeIdOf("11111111111111111111111111111111"); // 32 zero bytes
 * assert.equal(id.length, 32);
 * assert.equal(id[0], 0x66); // SHA-256(0^32) = 6668…
 * ```
 */
export function nodeIdOf(address: Uint8Array | string): Uint8Array {
  const bytes = typeof address === "string" ? parseAddress(address) : address;
  assertAddressBytes(bytes);
  return sha256(bytes);
}

/**
 * The XOR distance between two NodeIds (or DHT keys): `a ⊕ b`, 32 bytes,
 * compared as a big-endian integer. It is symmetric and is all zeros iff
 * `a` and `b` are equal.
 *
 * @throws {NodeIdError} When `a` or `b` is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { xorDistance } from "@carrier/p2p/protocol";
 * const a = new Uint8Array(32);
 * const b = new Uint8Array(32).fill(0xff);
 * assert.deepEqual(xorDistance(a, b), new Uint8Array(32).fill(0xff));
 * ```
 */
export function xorDistance(a: Uint8Array, b: Uint8Array): Uint8Array {
  assertNodeId(a, "NodeId (a)");
  assertNodeId(b, "NodeId (b)");
  const out = new Uint8Array(NODE_ID_LENGTH);
  for (let i = 0; i < NODE_ID_LENGTH; i++) out[i] = a[i] ^ b[i];
  return out;
}

/**
 * Which of `a` and `b` is closer to `target` in the XOR metric, without
 * allocating: negative when `a` is closer, positive when `b` is closer, 0
 * when they are at the same distance (which happens only when `a` equals
 * `b`). It returns -1, 0 or 1, so it can sort peers by closeness:
 * `peers.sort((a, b) => compareDistance(target, a, b))`.
 *
 * @throws {NodeIdError} When any argument is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareDistance } from "@carrier/p2p/protocol";
 * const target = new Uint8Array(32);
 * const near = new Uint8Array(32).fill(1);
 * const far = new Uint8Array(32).fill(2);
 * assert.equal(compareDistance(target, near, far), -1);
 * ```
 */
export function compareDistance(
  target: Uint8Array,
  a: Uint8Array,
  b: Uint8Array,
): number {
  assertNodeId(target, "NodeId (target)");
  assertNodeId(a, "NodeId (a)");
  assertNodeId(b, "NodeId (b)");
  for (let i = 0; i < NODE_ID_LENGTH; i++) {
    const da = target[i] ^ a[i];
    const db = target[i] ^ b[i];
    if (da !== db) return da < db ? -1 : 1;
  }
  return 0;
}

/**
 * The k-bucket that `other` falls in, seen from `self`: the index of the
 * highest bit in which the two ids differ, numbering bits from 255 (the most
 * significant bit of byte 0) down to 0 (the least significant bit of byte
 * 31). Equivalently ⌊log₂(self ⊕ other)⌋, so bucket `i` holds the ids at
 * distance 2^i to 2^(i+1) − 1:
 *
 * - 255: the ids differ in their top bit (half of the keyspace, the farthest);
 * - 0: they differ only in the very last bit (the nearest possible);
 * - -1: the ids are equal (no bucket; a node never stores itself).
 *
 * It equals `255 - leadingZeroBits(xorDistance(self, other))` and is
 * symmetric.
 *
 * @throws {NodeIdError} When `self` or `other` is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketIndex } from "@carrier/p2p/protocol";
 * const self = new Uint8Array(32);
 * const top = new Uint8Array(32);
 * top[0] = 0x80;
 * const last = new Uint8Array(32);
 * last[31] = 1;
 * assert.equal(bucketIndex(self, top), 255);
 * assert.equal(bucketIndex(self, last), 0);
 * assert.equal(bucketIndex(self, self), -1);
 * ```
 */
export function bucketIndex(self: Uint8Array, other: Uint8Array): number {
  assertNodeId(self, "NodeId (self)");
  assertNodeId(other, "NodeId (other)");
  for (let i = 0; i < NODE_ID_LENGTH; i++) {
    const x = self[i] ^ other[i];
    if (x !== 0) return (NODE_ID_LENGTH - 1 - i) * 8 + (31 - Math.clz32(x));
  }
  return -1;
}

/**
 * How many leading zero bits `bytes` has, reading byte 0's most significant
 * bit first. Works for any length; all zeros gives `8 * bytes.length`.
 *
 * @throws {ArgumentError} When `bytes` is not a Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leadingZeroBits } from "@carrier/p2p/protocol";
 * assert.equal(leadingZeroBits(new Uint8Array([0, 0x10, 0xff])), 11);
 * assert.equal(leadingZeroBits(new Uint8Array(4)), 32);
 * ```
 */
export function leadingZeroBits(bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array)) {
    throw new ArgumentError(
      `Cannot count leading zero bits: expected Uint8Array, got ${describeValue(bytes)}`,
    );
  }
  let bits = 0;
  for (const byte of bytes) {
    if (byte !== 0) return bits + Math.clz32(byte) - 24;
    bits += 8;
  }
  return bits;
}

/**
 * A NodeId in bucket `i` of `self` (see {@linkcode bucketIndex}): `self`'s
 * bits above bit `i`, bit `i` flipped, the bits below from `random` (32
 * random bytes; fresh ones by default). Lookups for such ids refresh a bucket.
 */
export function randomIdInBucket(
  self: Uint8Array,
  i: number,
  random: Uint8Array = crypto.getRandomValues(new Uint8Array(NODE_ID_LENGTH)),
): Uint8Array {
  assertNodeId(self, "NodeId (self)");
  const id = Uint8Array.from(random.subarray(0, NODE_ID_LENGTH));
  const byte = NODE_ID_LENGTH - 1 - Math.floor(i / 8); // bit 255 is the top bit of byte 0
  const bit = i % 8;
  for (let b = 0; b < byte; b++) id[b] = self[b];
  const above = 0xff << (bit + 1) & 0xff; // bits above `bit` in this byte: as in self
  const flip = (self[byte] ^ (1 << bit)) & (1 << bit); // bit `bit`: the opposite of self
  id[byte] = (self[byte] & above) | flip | (id[byte] & ((1 << bit) - 1));
  return id;
}
