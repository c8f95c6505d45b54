import assert from "node:assert/strict";
import { hex } from "@scure/base";
import { sha256 } from "@noble/hashes/sha2.js";
import { AddressError, PuzzleError } from "../../lib/errors.ts";
import { formatAddress } from "../../lib/identity/address.ts";
import {
  generateIdentity,
  generateIdentitySync,
  identityFromSecretKey,
} from "../../lib/identity/keys.ts";
import { leadingZeroBits } from "../../lib/identity/node_id.ts";
import {
  assertPuzzle,
  assertPuzzleDifficulty,
  DEFAULT_PUZZLE_DIFFICULTY,
  puzzleHash,
  puzzleWork,
  verifyPuzzle,
} from "../../lib/identity/puzzle.ts";
import { ArgumentError } from "../../lib/errors.ts";

/** A fixed seed whose public key has exactly 12 bits of puzzle work (found by search). */
const SEED_12_BITS = hex.decode(
  "0000023800000000000000000000000000000000000000000000000000000000",
);
/** RFC 8032 TEST 1's public key, whose puzzle hash starts with a one bit. */
const KEY_0_BITS = hex.decode(
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
);

Deno.test("puzzleHash is SHA-256 of SHA-256 of the public key", () => {
  const key = identityFromSecretKey(SEED_12_BITS).publicKey;
  assert.deepEqual(puzzleHash(key), sha256(sha256(key)));
  assert.equal(puzzleWork(key), leadingZeroBits(sha256(sha256(key))));
});

Deno.test("puzzleWork counts the leading zero bits of the puzzle hash", () => {
  assert.equal(puzzleWork(identityFromSecretKey(SEED_12_BITS).publicKey), 12);
  assert.equal(puzzleWork(KEY_0_BITS), 0);
});

Deno.test("verifyPuzzle accepts a key up to its work and refuses above", () => {
  const key = identityFromSecretKey(SEED_12_BITS).publicKey;
  for (let c1 = 0; c1 <= 12; c1++) assert.equal(verifyPuzzle(key, c1), true);
  assert.equal(verifyPuzzle(key, 13), false);
  assert.equal(verifyPuzzle(key, 256), false);
  assert.equal(verifyPuzzle(KEY_0_BITS, 1), false);
  assert.equal(verifyPuzzle(KEY_0_BITS, DEFAULT_PUZZLE_DIFFICULTY), false);
});

Deno.test("verifyPuzzle at difficulty 0 accepts every key", () => {
  assert.equal(verifyPuzzle(KEY_0_BITS, 0), true);
  for (let i = 0; i < 20; i++) {
    const key = crypto.getRandomValues(new Uint8Array(32));
    assert.equal(verifyPuzzle(key, 0), true);
  }
});

Deno.test("assertPuzzle names the bits found and needed", () => {
  const key = identityFromSecretKey(SEED_12_BITS).publicKey;
  assertPuzzle(key, 12);
  assert.throws(() => assertPuzzle(key, 13), (error: unknown) => {
    assert.ok(error instanceof PuzzleError);
    assert.equal(error.name, "PuzzleError");
    assert.equal(
      error.message,
      `Public key ${formatAddress(key)} fails the static puzzle: 12 leading zero bits, need 13`,
    );
    return true;
  });
  assert.throws(
    () => assertPuzzle(KEY_0_BITS, 8),
    /fails the static puzzle: 0 leading zero bits, need 8$/,
  );
});

Deno.test("puzzle functions reject a bad difficulty or key", () => {
  for (const bad of [-1, 257, 1.5, NaN, Infinity]) {
    assert.throws(
      () => verifyPuzzle(KEY_0_BITS, bad),
      new ArgumentError(
        `Invalid puzzle difficulty: expected an integer from 0 to 256, got ${bad}`,
      ),
    );
    assert.throws(() => assertPuzzle(KEY_0_BITS, bad), ArgumentError);
    assert.throws(() => assertPuzzleDifficulty(bad), ArgumentError);
  }
  assert.throws(() => verifyPuzzle(new Uint8Array(31), 0), AddressError);
  assert.throws(() => puzzleWork(new Uint8Array(33)), AddressError);
});

Deno.test("generateIdentitySync with difficulty d yields keys with at least d bits", () => {
  for (let d = 0; d <= 6; d++) {
    const identity = generateIdentitySync({ difficulty: d });
    assert.ok(puzzleWork(identity.publicKey) >= d, `difficulty ${d}`);
    assert.equal(verifyPuzzle(identity.publicKey, d), true);
  }
});

Deno.test("generateIdentity with difficulty d yields keys with at least d bits", async () => {
  for (const d of [0, 3, 6]) {
    const identity = await generateIdentity({ difficulty: d });
    assert.ok(puzzleWork(identity.publicKey) >= d, `difficulty ${d}`);
  }
});

Deno.test("generateIdentity uses the default difficulty when none is given", async () => {
  assert.equal(DEFAULT_PUZZLE_DIFFICULTY, 8);
  const identity = await generateIdentity();
  assert.ok(puzzleWork(identity.publicKey) >= DEFAULT_PUZZLE_DIFFICULTY);
});
