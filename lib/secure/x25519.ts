/**
 * X25519 (RFC 7748) for the Noise DH functions: key pairs and the shared
 * secret. Rejecting a low-order remote key, as Noise requires, is the
 * handshake's business (`handshake.ts`).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { checkLength } from "./_check_length.ts";

/** Length of an X25519 key and of a DH output, in bytes. */
export const DH_LENGTH = 32;

/**
 * An X25519 key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import {
 *   generateX25519KeyPair,
 *   type SecureChannelOptions,
 *   type X25519KeyPair,
 * } from "@carrier/p2p/protocol";
 * // One static Noise key for all of a node's channels (fresh per channel by default).
 * const noiseStaticKeyPair: X25519KeyPair = generateX25519KeyPair();
 * const options: SecureChannelOptions = { identity: generateIdentitySync(), noiseStaticKeyPair };
 * assert.equal(options.noiseStaticKeyPair?.publicKey.length, 32);
 * assert.notDeepEqual(noiseStaticKeyPair.publicKey, generateX25519KeyPair().publicKey);
 * ```
 */
export interface X25519KeyPair {
  /** The 32-byte public key (u-coordinate, little-endian). */
  readonly publicKey: Uint8Array;
  /** The 32-byte private key. */
  readonly privateKey: Uint8Array;
}

/**
 * Generates a fresh X25519 key pair from the system's secure random source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateX25519KeyPair } from "@carrier/p2p/protocol";
 * const { publicKey, privateKey } = generateX25519KeyPair();
 * assert.equal(publicKey.length, 32);
 * assert.equal(privateKey.length, 32);
 * ```
 */
export function generateX25519KeyPair(): X25519KeyPair {
  return x25519KeyPairFromPrivateKey(crypto.getRandomValues(new Uint8Array(DH_LENGTH)));
}

/**
 * Derives the key pair of a 32-byte X25519 private key (for stored keys, and
 * for the fixed ephemeral keys of test vectors).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateX25519KeyPair, x25519KeyPairFromPrivateKey } from "./noise.ts";
 * const pair = generateX25519KeyPair();
 * const again = x25519KeyPairFromPrivateKey(pair.privateKey);
 * assert.deepEqual(again.publicKey, pair.publicKey);
 * ```
 *
 * @throws {ArgumentError} If `privateKey` is not 32 bytes.
 */
export function x25519KeyPairFromPrivateKey(
  privateKey: Uint8Array,
): X25519KeyPair {
  checkLength("X25519 private key", privateKey, DH_LENGTH);
  const copy = privateKey.slice();
  const spki = createPublicKey(x25519PrivateKeyObject(copy)).export({
    format: "der",
    type: "spki",
  });
  return { privateKey: copy, publicKey: new Uint8Array(spki.subarray(X25519_SPKI_PREFIX.length)) };
}

// X25519 runs on `node:crypto` (native, 6–10 times faster than a pure
// TypeScript implementation), whose keys travel as DER: RFC 8410 gives the
// fixed prefixes in front of the 32 raw key bytes.
const X25519_PKCS8_PREFIX = Uint8Array.of(
  ...[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06],
  ...[0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20],
);
const X25519_SPKI_PREFIX = Uint8Array.of(
  ...[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00],
);

function x25519PrivateKeyObject(privateKey: Uint8Array): KeyObject {
  const der = Buffer.alloc(X25519_PKCS8_PREFIX.length + DH_LENGTH);
  der.set(X25519_PKCS8_PREFIX);
  der.set(privateKey, X25519_PKCS8_PREFIX.length);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

function x25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  const der = Buffer.alloc(X25519_SPKI_PREFIX.length + DH_LENGTH);
  der.set(X25519_SPKI_PREFIX);
  der.set(publicKey, X25519_SPKI_PREFIX.length);
  return createPublicKey({ key: der, format: "der", type: "spki" });
}

/**
 * The X25519 shared secret of `privateKey` and the remote `publicKey` (the
 * Noise `DH` function). It does not look at the result: a low-order public
 * key gives all zeros, or makes `node:crypto` throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateX25519KeyPair, x25519 } from "./x25519.ts";
 * const alice = generateX25519KeyPair();
 * const bob = generateX25519KeyPair();
 * assert.deepEqual(x25519(alice.privateKey, bob.publicKey), x25519(bob.privateKey, alice.publicKey));
 * ```
 *
 * @throws {ArgumentError} If a key is not 32 bytes.
 * @throws {Error} From `node:crypto`, if the result is all zeros ("failed during derivation").
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkLength("X25519 private key", privateKey, DH_LENGTH);
  checkLength("X25519 public key", publicKey, DH_LENGTH);
  const result = diffieHellman({
    privateKey: x25519PrivateKeyObject(privateKey),
    publicKey: x25519PublicKeyObject(publicKey),
  });
  const shared = new Uint8Array(result);
  result.fill(0);
  return shared;
}
