/**
 * Node identities: an Ed25519 key pair plus the address and NodeId derived
 * from it, key generation that satisfies the S/Kademlia static puzzle, and
 * signing.
 *
 * Signatures are plain Ed25519 (RFC 8032) over the message bytes, made and
 * checked with `@noble/curves`. Verification is strict: non-canonical
 * encodings and small-order public keys are rejected (`zip215: false`), so a
 * signature cannot be mangled into a second valid one.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { PuzzleError, SecretKeyError } from "../errors.ts";
import { ADDRESS_LENGTH, formatAddress } from "./address.ts";
import { nodeIdOf } from "./node_id.ts";
import { assertPuzzleDifficulty, DEFAULT_PUZZLE_DIFFICULTY, puzzleWork } from "./puzzle.ts";
import { describeValue } from "./_bytes.ts";

/** Length of an Ed25519 secret key (the RFC 8032 seed) in bytes. */
export const SECRET_KEY_LENGTH = 32;

/** Length of an Ed25519 signature in bytes. */
export const SIGNATURE_LENGTH = 64;

/** How long {@linkcode generateIdentity} searches before it yields to the event loop, in milliseconds. */
const SEARCH_SLICE_MS = 10;

/**
 * A node's identity: its Ed25519 key pair and what derives from it. Create
 * one with {@linkcode generateIdentity} or {@linkcode identityFromSecretKey};
 * keep it with `saveKeyFile`.
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

/** Options for {@linkcode generateIdentity} and {@linkcode generateIdentitySync}. */
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
 * @throws {RangeError} When `difficulty` is not an integer from 0 to 256.
 * @throws The signal's reason when `options.signal` aborts.
 *
 * @example
 * ```ts
 * import { generateIdentity, verifyPuzzle } from "@carrier/p2p";
 * const identity = await generateIdentity({
 *   difficulty: 4,
 *   signal: AbortSignal.timeout(10_000),
 * });
 * console.assert(verifyPuzzle(identity.publicKey, 4));
 * console.assert(identity.address.length >= 32);
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
 * @throws {RangeError} When `difficulty` is not an integer from 0 to 256.
 *
 * @example
 * ```ts
 * import { generateIdentitySync, puzzleWork } from "@carrier/p2p";
 * const identity = generateIdentitySync({ difficulty: 2 });
 * console.assert(puzzleWork(identity.publicKey) >= 2);
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
 * import { generateIdentitySync, identityFromSecretKey } from "@carrier/p2p";
 * const original = generateIdentitySync({ difficulty: 0 });
 * const again = identityFromSecretKey(original.secretKey);
 * console.assert(again.address === original.address);
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
  return makeIdentity(seed, ed25519.getPublicKey(seed));
}

/**
 * Signs `message` with the identity's secret key (Ed25519, RFC 8032).
 *
 * @returns A 64-byte signature.
 * @throws {SecretKeyError} When the identity's secret key is not 32 bytes.
 *
 * @example
 * ```ts
 * import { generateIdentitySync, sign, verify } from "@carrier/p2p";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const message = new TextEncoder().encode("hello");
 * const signature = sign(identity, message);
 * console.assert(verify(identity.publicKey, message, signature));
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
  return ed25519.sign(message, secretKey);
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
 * import { verify } from "@carrier/p2p";
 * console.assert(!verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(3)));
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
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
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
    throw new RangeError(
      `Invalid maxAttempts: expected a positive integer or Infinity, got ${String(maxAttempts)}`,
    );
  }
  return { difficulty, maxAttempts };
}

/** One attempt: a random key, returned as an identity if it meets `difficulty`. */
function tryKey(difficulty: number): Identity | undefined {
  const seed = ed25519.utils.randomSecretKey();
  const publicKey = ed25519.getPublicKey(seed);
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
