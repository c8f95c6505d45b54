/**
 * Node identities: an Ed25519 key pair plus the address and NodeId derived
 * from it, key generation that satisfies the S/Kademlia static puzzle, and
 * signing.
 *
 * Signatures are plain Ed25519 (RFC 8032) over the message bytes, made and
 * checked with `node:crypto` (native; 15 to 25 times faster than a pure
 * TypeScript implementation). Verification is strict: on top of the curve
 * equation it rejects a non-canonical S (S ≥ L), non-canonical point
 * encodings (y ≥ p) and small-order public keys, so a signature cannot be
 * mangled into a second valid one and a degenerate key verifies nothing.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { ArgumentError, PuzzleError, SecretKeyError } from "../errors.ts";
import { ADDRESS_LENGTH, formatAddress } from "./address.ts";
import { nodeIdOf } from "./node_id.ts";
import { assertPuzzleDifficulty, DEFAULT_PUZZLE_DIFFICULTY, puzzleWork } from "./puzzle.ts";
import { describeValue } from "./_bytes.ts";

/**
 * Length of an Ed25519 secret key (the RFC 8032 seed) in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identityFromSecretKey } from "@carrier/p2p";
 * import { SECRET_KEY_LENGTH } from "@carrier/p2p/protocol";
 * const seed = crypto.getRandomValues(new Uint8Array(SECRET_KEY_LENGTH));
 * assert.deepEqual(identityFromSecretKey(seed).secretKey, seed);
 * ```
 */
export const SECRET_KEY_LENGTH = 32;

/**
 * Length of an Ed25519 signature in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, sign } from "@carrier/p2p";
 * import { SIGNATURE_LENGTH } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * assert.equal(sign(identity, new Uint8Array([1, 2, 3])).length, SIGNATURE_LENGTH);
 * ```
 */
export const SIGNATURE_LENGTH = 64;

/** How long {@linkcode generateIdentity} searches before it yields to the event loop, in milliseconds. */
const SEARCH_SLICE_MS = 10;

/**
 * A node's identity: its Ed25519 key pair and what derives from it. Create
 * one with {@linkcode generateIdentity} or {@linkcode identityFromSecretKey};
 * keep it with `saveKeyFile`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, type Identity, nodeIdOf, parseAddress } from "@carrier/p2p";
 * const identity: Identity = generateIdentitySync({ difficulty: 0 });
 * assert.deepEqual(parseAddress(identity.address), identity.publicKey);
 * assert.deepEqual(nodeIdOf(identity.publicKey), identity.nodeId);
 * ```
 */
export interface Identity {
  /** The 32-byte Ed25519 public key, which is also the raw address. */
  readonly publicKey: Uint8Array;
  /** The 32-byte Ed25519 secret key: the RFC 8032 seed. Keep it private. */
  readonly secretKey: Uint8Array;
  /** The base58 text form of the public key. */
  readonly address: string;
  /** SHA-256 of the public key: the node's position in the DHT. */
  readonly nodeId: Uint8Array;
}

/**
 * Options for {@linkcode generateIdentity} and {@linkcode generateIdentitySync}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, type GenerateIdentityOptions, PuzzleError } from "@carrier/p2p";
 * // 40 leading zero bits take about 2^40 tries: 10 are not enough.
 * const options: GenerateIdentityOptions = { difficulty: 40, maxAttempts: 10 };
 * await assert.rejects(generateIdentity(options), PuzzleError);
 * ```
 */
export interface GenerateIdentityOptions {
  /**
   * The static puzzle difficulty `c1` the key must satisfy: the leading zero
   * bits of SHA-256(SHA-256(publicKey)), 0 to 256. 0 takes the first key.
   *
   * @default {DEFAULT_PUZZLE_DIFFICULTY}
   */
  difficulty?: number;
  /**
   * How many keys to try before giving up with a `PuzzleError`. At
   * difficulty `d` a search needs 2^d tries on average.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * Aborts the search; the promise then rejects with the signal's reason.
   * Only {@linkcode generateIdentity} (the async form) takes it.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Generates a fresh identity whose public key satisfies the static puzzle at
 * `options.difficulty`.
 *
 * It is async so that it can honour `options.signal`: the search runs in
 * slices of about 10 ms and yields to the event loop between them, so timers
 * (such as `AbortSignal.timeout`) fire and other work proceeds. The signal
 * is also checked before every attempt.
 *
 * @throws {PuzzleError} When no key is found within `options.maxAttempts`.
 * @throws {ArgumentError} When `difficulty` is not an integer from 0 to 256.
 * @throws The signal's reason when `options.signal` aborts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity } from "@carrier/p2p";
 * import { verifyPuzzle } from "@carrier/p2p/protocol";
 * const identity = await generateIdentity({
 *   difficulty: 4,
 *   signal: AbortSignal.timeout(10_000),
 * });
 * assert.ok(verifyPuzzle(identity.publicKey, 4));
 * assert.ok(identity.address.length >= 32);
 * ```
 */
export async function generateIdentity(
  options: GenerateIdentityOptions = {},
): Promise<Identity> {
  const { difficulty, maxAttempts } = searchOptions(options);
  const { signal } = options;
  let attempts = 0;
  while (true) {
    const sliceEnd = performance.now() + SEARCH_SLICE_MS;
    do {
      signal?.throwIfAborted();
      if (attempts >= maxAttempts) throw exhausted(difficulty, maxAttempts);
      attempts++;
      const identity = tryKey(difficulty);
      if (identity !== undefined) return identity;
    } while (performance.now() < sliceEnd);
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}

/**
 * Generates a fresh identity like {@linkcode generateIdentity}, but blocks
 * until it is done and takes no signal. Fine at small difficulties (the
 * default takes milliseconds); use the async form for large ones.
 *
 * @throws {PuzzleError} When no key is found within `options.maxAttempts`.
 * @throws {ArgumentError} When `difficulty` is not an integer from 0 to 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { puzzleWork } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 2 });
 * assert.ok(puzzleWork(identity.publicKey) >= 2);
 * ```
 */
export function generateIdentitySync(
  options: Omit<GenerateIdentityOptions, "signal"> = {},
): Identity {
  const { difficulty, maxAttempts } = searchOptions(options);
  for (let attempts = 0; attempts < maxAttempts; attempts++) {
    const identity = tryKey(difficulty);
    if (identity !== undefined) return identity;
  }
  throw exhausted(difficulty, maxAttempts);
}

/**
 * Rebuilds an identity from its 32-byte secret key (seed): derives the
 * public key, address and NodeId. The seed is copied. It does not check the
 * static puzzle; call `assertPuzzle(identity.publicKey, c1)` for that.
 *
 * @param secretKey The 32-byte Ed25519 seed.
 * @throws {SecretKeyError} When `secretKey` is not a 32-byte Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, identityFromSecretKey } from "@carrier/p2p";
 * const original = generateIdentitySync({ difficulty: 0 });
 * const again = identityFromSecretKey(original.secretKey);
 * assert.equal(again.address, original.address);
 * ```
 */
export function identityFromSecretKey(secretKey: Uint8Array): Identity {
  if (
    !(secretKey instanceof Uint8Array) ||
    secretKey.length !== SECRET_KEY_LENGTH
  ) {
    throw new SecretKeyError(
      `Invalid secret key: expected Uint8Array of length ${SECRET_KEY_LENGTH}, got ${
        describeValue(secretKey)
      }`,
    );
  }
  const seed = secretKey.slice();
  return makeIdentity(seed, publicKeyOf(seed));
}

/**
 * Signs `message` with the identity's secret key (Ed25519, RFC 8032).
 *
 * @returns A 64-byte signature.
 * @throws {SecretKeyError} When the identity's secret key is not 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, sign, verify } from "@carrier/p2p";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const message = new TextEncoder().encode("hello");
 * const signature = sign(identity, message);
 * assert.ok(verify(identity.publicKey, message, signature));
 * ```
 */
export function sign(identity: Identity, message: Uint8Array): Uint8Array {
  const { secretKey } = identity;
  if (
    !(secretKey instanceof Uint8Array) ||
    secretKey.length !== SECRET_KEY_LENGTH
  ) {
    throw new SecretKeyError(
      `Cannot sign: expected a secret key of length ${SECRET_KEY_LENGTH}, got ${
        describeValue(secretKey)
      }`,
    );
  }
  let key = signingKeys.get(secretKey);
  if (!key) {
    key = privateKeyObject(secretKey);
    signingKeys.set(secretKey, key);
  }
  return new Uint8Array(nodeSign(null, message, key));
}

/**
 * Checks an Ed25519 signature (strict RFC 8032 rules). It never throws on
 * bad input from a peer: a public key or signature of the wrong type or
 * length, a key that is not a curve point, or a small-order key all give
 * `false`.
 *
 * @param publicKey The signer's 32-byte public key (raw address).
 * @param message The signed bytes.
 * @param signature The 64-byte signature.
 * @returns Whether the signature is valid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verify } from "@carrier/p2p";
 * assert.equal(verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(3)), false);
 * ```
 */
export function verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (
    !(publicKey instanceof Uint8Array) ||
    publicKey.length !== ADDRESS_LENGTH ||
    !(message instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) ||
    signature.length !== SIGNATURE_LENGTH
  ) {
    return false;
  }
  if (
    !isCanonicalPoint(publicKey) || isSmallOrder(publicKey) ||
    !isCanonicalPoint(signature.subarray(0, 32)) || !isCanonicalScalar(signature.subarray(32))
  ) {
    return false;
  }
  try {
    return nodeVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

// RFC 8410 DER prefixes in front of the 32 raw key bytes, for node:crypto.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** node:crypto key objects of secret keys already used, so signing does not re-parse them. */
const signingKeys = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(seed: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_PREFIX, seed]);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, publicKey]),
    format: "der",
    type: "spki",
  });
}

function publicKeyOf(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

/** p = 2^255 - 19, little-endian. */
const P = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0xed : i === 31 ? 0x7f : 0xff));
/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const L = Uint8Array.from([
  ...[0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde],
  ...[0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
]);

/** Little-endian `a < b` over 32 bytes, ignoring bit 255 of `a` when `maskSign`. */
function lessThan(a: Uint8Array, b: Uint8Array, maskSign: boolean): boolean {
  for (let i = 31; i >= 0; i--) {
    const x = i === 31 && maskSign ? a[i] & 0x7f : a[i];
    if (x !== b[i]) return x < b[i];
  }
  return false;
}

/** A point encoding whose y coordinate is below p. */
function isCanonicalPoint(encoding: Uint8Array): boolean {
  return lessThan(encoding, P, true);
}

/** S < L. */
function isCanonicalScalar(s: Uint8Array): boolean {
  return lessThan(s, L, false);
}

/** The y coordinates (either sign) of the eight points of small order. */
const SMALL_ORDER_Y = [
  "0000000000000000000000000000000000000000000000000000000000000000", // order 4
  "0100000000000000000000000000000000000000000000000000000000000000", // order 1
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
].map((h) => Buffer.from(h, "hex"));

function isSmallOrder(encoding: Uint8Array): boolean {
  const y = Buffer.from(encoding);
  y[31] &= 0x7f;
  return SMALL_ORDER_Y.some((s) => s.equals(y));
}

/** Validated search settings shared by both generators. */
function searchOptions(
  options: GenerateIdentityOptions,
): { difficulty: number; maxAttempts: number } {
  const difficulty = options.difficulty ?? DEFAULT_PUZZLE_DIFFICULTY;
  assertPuzzleDifficulty(difficulty);
  const maxAttempts = options.maxAttempts ?? Infinity;
  if (
    !(maxAttempts === Infinity ||
      (Number.isSafeInteger(maxAttempts) && maxAttempts >= 1))
  ) {
    throw new ArgumentError(
      `Invalid maxAttempts: expected a positive integer or Infinity, got ${String(maxAttempts)}`,
    );
  }
  return { difficulty, maxAttempts };
}

/** One attempt: a random key, returned as an identity if it meets `difficulty`. */
function tryKey(difficulty: number): Identity | undefined {
  const seed = crypto.getRandomValues(new Uint8Array(SECRET_KEY_LENGTH));
  const publicKey = publicKeyOf(seed);
  if (difficulty > 0 && puzzleWork(publicKey) < difficulty) return undefined;
  return makeIdentity(seed, publicKey);
}

function makeIdentity(seed: Uint8Array, publicKey: Uint8Array): Identity {
  return Object.freeze({
    publicKey,
    secretKey: seed,
    address: formatAddress(publicKey),
    nodeId: nodeIdOf(publicKey),
  });
}

function exhausted(difficulty: number, maxAttempts: number): PuzzleError {
  return new PuzzleError(
    `Cannot generate identity: no key with ${difficulty} leading zero bits in ${maxAttempts} attempts`,
  );
}
