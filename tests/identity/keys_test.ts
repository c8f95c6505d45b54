import assert from "node:assert/strict";
import fc from "fast-check";
import { hex } from "@scure/base";
import { ed25519 } from "@noble/curves/ed25519.js";
import { PuzzleError, SecretKeyError } from "../../lib/errors.ts";
import { formatAddress } from "../../lib/identity/address.ts";
import {
  generateIdentity,
  generateIdentitySync,
  identityFromSecretKey,
  sign,
  SIGNATURE_LENGTH,
  verify,
} from "../../lib/identity/keys.ts";
import { nodeIdOf } from "../../lib/identity/node_id.ts";
import rfc8032 from "./rfc8032_vectors.json" with { type: "json" };
import { ArgumentError } from "../../lib/errors.ts";

/** The order of the Ed25519 base point, L = 2^252 + 27742317777372353535851937790883648493. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

const encoder = new TextEncoder();

Deno.test("identityFromSecretKey derives the RFC 8032 public keys", () => {
  for (const vector of rfc8032.vectors) {
    const identity = identityFromSecretKey(hex.decode(vector.secretKey));
    assert.equal(hex.encode(identity.publicKey), vector.publicKey, vector.name);
    assert.equal(identity.address, formatAddress(identity.publicKey));
    assert.deepEqual(identity.nodeId, nodeIdOf(identity.publicKey));
  }
});

Deno.test("sign produces the RFC 8032 signatures and verify accepts them", () => {
  for (const vector of rfc8032.vectors) {
    const identity = identityFromSecretKey(hex.decode(vector.secretKey));
    const message = hex.decode(vector.message);
    const signature = sign(identity, message);
    assert.equal(hex.encode(signature), vector.signature, vector.name);
    assert.equal(verify(identity.publicKey, message, signature), true);
  }
});

Deno.test("identityFromSecretKey copies the seed and rebuilds the same identity", () => {
  const original = generateIdentitySync({ difficulty: 0 });
  const seed = original.secretKey.slice();
  const again = identityFromSecretKey(seed);
  seed.fill(0);
  assert.deepEqual(again.secretKey, original.secretKey);
  assert.deepEqual(again.publicKey, original.publicKey);
  assert.equal(again.address, original.address);
  assert.deepEqual(again.nodeId, original.nodeId);
  assert.ok(Object.isFrozen(again));
});

Deno.test("identityFromSecretKey rejects a seed that is not 32 bytes", () => {
  for (
    const [bad, got] of [[new Uint8Array(31), "length=31"], [
      new Uint8Array(64),
      "length=64",
    ], ["seed", "string"]] as const
  ) {
    assert.throws(
      () => identityFromSecretKey(bad as Uint8Array),
      (error: unknown) => {
        assert.ok(error instanceof SecretKeyError);
        assert.equal(
          error.message,
          `Invalid secret key: expected Uint8Array of length 32, got ${got}`,
        );
        return true;
      },
    );
  }
});

Deno.test("sign and verify round-trip any message", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const other = generateIdentitySync({ difficulty: 0 });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (message) => {
      const signature = sign(identity, message);
      assert.equal(signature.length, SIGNATURE_LENGTH);
      assert.equal(verify(identity.publicKey, message, signature), true);
      assert.equal(verify(other.publicKey, message, signature), false);
    }),
    { numRuns: 30 },
  );
});

Deno.test("verify rejects a changed message or signature", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const message = encoder.encode("carrier");
  const signature = sign(identity, message);
  assert.equal(
    verify(identity.publicKey, encoder.encode("carrieR"), signature),
    false,
  );
  assert.equal(verify(identity.publicKey, new Uint8Array(), signature), false);
  for (const index of [0, 31, 32, 63]) {
    const tampered = signature.slice();
    tampered[index] ^= 0x01;
    assert.equal(
      verify(identity.publicKey, message, tampered),
      false,
      `byte ${index}`,
    );
  }
});

Deno.test("verify returns false on garbage instead of throwing", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const message = encoder.encode("carrier");
  const signature = sign(identity, message);
  const garbage: unknown[] = [
    undefined,
    null,
    "signature",
    42,
    new Uint8Array(),
    new Uint8Array(63),
    new Uint8Array(65),
    new Uint8Array(64),
    new Uint8Array(64).fill(0xff),
    Array.from(signature),
  ];
  for (const bad of garbage) {
    assert.equal(verify(identity.publicKey, message, bad as Uint8Array), false);
    assert.equal(verify(bad as Uint8Array, message, signature), false);
  }
  assert.equal(
    verify(identity.publicKey, "carrier" as unknown as Uint8Array, signature),
    false,
  );
  // Not a curve point: y = 2^255 - 1 is not canonical.
  assert.equal(
    verify(new Uint8Array(32).fill(0xff), message, signature),
    false,
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      (publicKey, sig) => {
        assert.equal(verify(publicKey, message, sig), false);
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("verify rejects a non-canonical S (S + L)", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const message = encoder.encode("malleable?");
  const signature = sign(identity, message);
  const s = BigInt(`0x${hex.encode(signature.slice(32).reverse())}`);
  const mauled = signature.slice();
  mauled.set(hex.decode((s + L).toString(16).padStart(64, "0")).reverse(), 32);
  assert.equal(verify(identity.publicKey, message, mauled), false);
});

Deno.test("verify rejects a small-order public key that ZIP-215 would accept", () => {
  // The identity point as public key, R = identity, S = 0: valid for every
  // message under the cofactored, permissive ZIP-215 rules.
  const publicKey = new Uint8Array(32);
  publicKey[0] = 1;
  const signature = new Uint8Array(64);
  signature[0] = 1;
  const message = encoder.encode("anything");
  assert.equal(
    ed25519.verify(signature, message, publicKey, { zip215: true }),
    true,
  );
  assert.equal(verify(publicKey, message, signature), false);
});

Deno.test("generateIdentity gives distinct, consistent identities", async () => {
  const a = await generateIdentity({ difficulty: 0 });
  const b = generateIdentitySync({ difficulty: 0 });
  for (const identity of [a, b]) {
    assert.equal(identity.secretKey.length, 32);
    assert.deepEqual(
      identity.publicKey,
      ed25519.getPublicKey(identity.secretKey),
    );
    assert.equal(identity.address, formatAddress(identity.publicKey));
    assert.deepEqual(identity.nodeId, nodeIdOf(identity.publicKey));
  }
  assert.notEqual(a.address, b.address);
});

Deno.test("generateIdentity rejects at once with an aborted signal's reason", async () => {
  const controller = new AbortController();
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(
    generateIdentity({ difficulty: 0, signal: controller.signal }),
    (error) => error === reason,
  );
});

Deno.test("generateIdentity yields to the event loop so an abort stops the search", async () => {
  const controller = new AbortController();
  const reason = new Error("stop");
  // Difficulty 256 is never met: only the abort can end the search.
  const search = generateIdentity({
    difficulty: 256,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(reason), 0);
  await assert.rejects(search, (error) => error === reason);
});

Deno.test("generateIdentity gives up after maxAttempts with a PuzzleError", async () => {
  const message = "Cannot generate identity: no key with 256 leading zero bits in 5 attempts";
  await assert.rejects(
    generateIdentity({ difficulty: 256, maxAttempts: 5 }),
    (error) => error instanceof PuzzleError && error.message === message,
  );
  assert.throws(
    () => generateIdentitySync({ difficulty: 256, maxAttempts: 5 }),
    (error) => error instanceof PuzzleError && error.message === message,
  );
});

Deno.test("generateIdentity rejects a bad difficulty or maxAttempts", async () => {
  await assert.rejects(generateIdentity({ difficulty: 257 }), ArgumentError);
  await assert.rejects(generateIdentity({ difficulty: -1 }), ArgumentError);
  assert.throws(
    () => generateIdentitySync({ maxAttempts: 0 }),
    new ArgumentError(
      "Invalid maxAttempts: expected a positive integer or Infinity, got 0",
    ),
  );
  assert.throws(() => generateIdentitySync({ maxAttempts: 2.5 }), ArgumentError);
});

Deno.test("sign rejects an identity without a 32-byte secret key", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  assert.throws(
    () => sign({ ...identity, secretKey: new Uint8Array(16) }, new Uint8Array(1)),
    new SecretKeyError(
      "Cannot sign: expected a secret key of length 32, got length=16",
    ),
  );
});

Deno.test("verify agrees with noble's strict RFC 8032 verification on valid and mangled signatures", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      fc.nat({ max: 95 }),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      (message, at, flip, mangle) => {
        const signature = sign(identity, message);
        const key = identity.publicKey.slice();
        if (mangle) {
          // Flip bits in the signature (0-63) or the key (64-95).
          if (at < 64) signature[at] ^= flip || 1;
          else key[at - 64] ^= flip || 1;
        }
        const expected = (() => {
          try {
            return ed25519.verify(signature, message, key, { zip215: false });
          } catch {
            return false;
          }
        })();
        assert.equal(verify(key, message, signature), expected);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("verify rejects every small-order key, in either sign, and a non-canonical R", () => {
  const message = encoder.encode("anything");
  const smallOrder = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  ];
  for (const h of smallOrder) {
    for (const signBit of [0, 0x80]) {
      const key = hex.decode(h);
      key[31] |= signBit;
      // R = the same point, S = 0: passes the cofactored equation for small-order keys.
      const signature = new Uint8Array(64);
      signature.set(key);
      assert.equal(verify(key, message, signature), false, `${h} sign ${signBit}`);
    }
  }
  // R with y = p (non-canonical encoding of y = 0).
  const identity = generateIdentitySync({ difficulty: 0 });
  const signature = sign(identity, message);
  signature.set(hex.decode("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), 0);
  assert.equal(verify(identity.publicKey, message, signature), false);
});
