import assert from "node:assert/strict";
import fc from "fast-check";
import { hex } from "@scure/base";
import { sha256 } from "@noble/hashes/sha2.js";
import { AddressError, NodeIdError } from "../../lib/errors.ts";
import { formatAddress } from "../../lib/identity/address.ts";
import {
  assertNodeId,
  bucketIndex,
  compareDistance,
  leadingZeroBits,
  NODE_ID_BITS,
  NODE_ID_LENGTH,
  nodeIdOf,
  randomIdInBucket,
  xorDistance,
} from "../../lib/identity/node_id.ts";
import { ArgumentError } from "../../lib/errors.ts";

const id = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** The XOR distance as a bigint, the reference the byte-wise code must match. */
function distance(a: Uint8Array, b: Uint8Array): bigint {
  return BigInt(`0x${hex.encode(xorDistance(a, b))}`);
}

function withBit(bit: number): Uint8Array {
  const out = new Uint8Array(32);
  out[31 - Math.floor(bit / 8)] = 1 << (bit % 8);
  return out;
}

Deno.test("nodeIdOf is SHA-256 of the raw address bytes", () => {
  // SHA-256 of 32 zero bytes, a well-known value.
  const expected = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
  assert.equal(hex.encode(nodeIdOf(new Uint8Array(32))), expected);
  assert.equal(hex.encode(nodeIdOf("1".repeat(32))), expected);
  fc.assert(
    fc.property(id, (address) => {
      const nodeId = nodeIdOf(address);
      assert.equal(nodeId.length, NODE_ID_LENGTH);
      assert.deepEqual(nodeId, sha256(address));
      assert.deepEqual(nodeIdOf(formatAddress(address)), nodeId);
    }),
  );
  assert.equal(NODE_ID_BITS, 256);
});

Deno.test("nodeIdOf rejects a malformed address with AddressError", () => {
  assert.throws(() => nodeIdOf(new Uint8Array(31)), AddressError);
  assert.throws(() => nodeIdOf("0OIl"), AddressError);
});

Deno.test("xorDistance is symmetric and zero iff the ids are equal", () => {
  fc.assert(
    fc.property(id, id, (a, b) => {
      assert.deepEqual(xorDistance(a, b), xorDistance(b, a));
      const zero = xorDistance(a, b).every((byte) => byte === 0);
      assert.equal(zero, hex.encode(a) === hex.encode(b));
      assert.ok(xorDistance(a, a).every((byte) => byte === 0));
    }),
  );
});

Deno.test("xorDistance composes: d(a, b) xor d(b, c) = d(a, c)", () => {
  fc.assert(
    fc.property(id, id, id, (a, b, c) => {
      assert.deepEqual(
        xorDistance(xorDistance(a, b), xorDistance(b, c)),
        xorDistance(a, c),
      );
    }),
  );
});

Deno.test("compareDistance orders by XOR distance to the target", () => {
  fc.assert(
    fc.property(id, id, id, (target, a, b) => {
      const da = distance(target, a);
      const db = distance(target, b);
      const expected = da < db ? -1 : da > db ? 1 : 0;
      assert.equal(compareDistance(target, a, b), expected);
      assert.equal(compareDistance(target, b, a), -expected);
      assert.equal(compareDistance(target, a, a), 0);
    }),
  );
  const target = new Uint8Array(32);
  assert.equal(compareDistance(target, target, withBit(0)), -1);
  assert.equal(compareDistance(target, withBit(255), withBit(254)), 1);
  // 0x80 0x00… is farther from zero than 0x7f 0xff…
  const below = new Uint8Array(32).fill(0xff);
  below[0] = 0x7f;
  assert.equal(compareDistance(target, withBit(255), below), 1);
});

Deno.test("compareDistance sorts peers from nearest to farthest", () => {
  fc.assert(
    fc.property(id, fc.array(id, { maxLength: 20 }), (target, peers) => {
      const sorted = [...peers].sort((a, b) => compareDistance(target, a, b));
      for (let i = 1; i < sorted.length; i++) {
        assert.ok(
          distance(target, sorted[i - 1]) <= distance(target, sorted[i]),
        );
      }
    }),
  );
});

Deno.test("bucketIndex is the highest differing bit, 255 for the top bit", () => {
  const self = new Uint8Array(32);
  assert.equal(bucketIndex(self, withBit(255)), 255);
  assert.equal(bucketIndex(self, new Uint8Array(32).fill(0xff)), 255);
  assert.equal(bucketIndex(self, withBit(254)), 254);
  assert.equal(bucketIndex(self, withBit(248)), 248);
  assert.equal(bucketIndex(self, withBit(247)), 247);
  assert.equal(bucketIndex(self, withBit(8)), 8);
  assert.equal(bucketIndex(self, withBit(7)), 7);
  assert.equal(bucketIndex(self, withBit(0)), 0);
  for (let bit = 0; bit < 256; bit++) {
    assert.equal(bucketIndex(self, withBit(bit)), bit);
  }
  const ones = new Uint8Array(32).fill(0xff);
  const almost = ones.slice();
  almost[31] = 0xfe;
  assert.equal(bucketIndex(ones, almost), 0);
});

Deno.test("bucketIndex is -1 for equal ids", () => {
  const a = new Uint8Array(32).fill(0x5a);
  assert.equal(bucketIndex(a, a), -1);
  assert.equal(bucketIndex(a, a.slice()), -1);
  assert.equal(bucketIndex(new Uint8Array(32), new Uint8Array(32)), -1);
});

Deno.test("bucketIndex is floor(log2(distance)) and symmetric", () => {
  fc.assert(
    fc.property(id, id, (a, b) => {
      const index = bucketIndex(a, b);
      assert.equal(index, bucketIndex(b, a));
      assert.equal(index, 255 - leadingZeroBits(xorDistance(a, b)));
      const d = distance(a, b);
      if (d === 0n) {
        assert.equal(index, -1);
      } else {
        assert.ok(1n << BigInt(index) <= d && d < 1n << BigInt(index + 1));
      }
    }),
  );
});

Deno.test("leadingZeroBits counts from the top bit of byte 0", () => {
  assert.equal(leadingZeroBits(new Uint8Array()), 0);
  assert.equal(leadingZeroBits(new Uint8Array(32)), 256);
  assert.equal(leadingZeroBits(Uint8Array.of(0x80)), 0);
  assert.equal(leadingZeroBits(Uint8Array.of(0x01)), 7);
  assert.equal(leadingZeroBits(Uint8Array.of(0x00, 0x01)), 15);
  assert.equal(leadingZeroBits(Uint8Array.of(0x00, 0x00, 0x40, 0xff)), 17);
  assert.throws(
    () => leadingZeroBits([0, 0] as unknown as Uint8Array),
    new ArgumentError(
      "Cannot count leading zero bits: expected Uint8Array, got Array",
    ),
  );
});

Deno.test("NodeId functions reject ids that are not 32 bytes", () => {
  const good = new Uint8Array(32);
  const bad = new Uint8Array(20);
  const check = (fn: () => unknown, message: RegExp) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof NodeIdError);
      assert.equal(error.name, "NodeIdError");
      assert.match(error.message, message);
      return true;
    });
  check(
    () => assertNodeId(bad),
    /^Invalid NodeId: expected Uint8Array of length 32, got length=20$/,
  );
  check(() => assertNodeId("abc"), /got string$/);
  check(
    () => xorDistance(good, bad),
    /^Invalid NodeId \(b\): .*got length=20$/,
  );
  check(() => xorDistance(bad, good), /^Invalid NodeId \(a\): /);
  check(() => compareDistance(bad, good, good), /^Invalid NodeId \(target\): /);
  check(
    () => compareDistance(good, good, new Uint8Array(33)),
    /\(b\): .*length=33$/,
  );
  check(() => bucketIndex(bad, good), /^Invalid NodeId \(self\): /);
  check(() => bucketIndex(good, bad), /^Invalid NodeId \(other\): /);
});

Deno.test("randomIdInBucket gives an id in the bucket asked, random below its bit", () => {
  const self = crypto.getRandomValues(new Uint8Array(32));
  for (const i of [0, 1, 7, 8, 100, 254, 255]) {
    const a = randomIdInBucket(self, i);
    assert.equal(bucketIndex(self, a), i);
    // Seeded: the same random bytes give the same id.
    const seed = new Uint8Array(32).fill(0x5a);
    assert.deepEqual(randomIdInBucket(self, i, seed), randomIdInBucket(self, i, seed));
  }
});
