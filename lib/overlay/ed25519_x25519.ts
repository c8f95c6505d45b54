/**
 * Ed25519 → X25519 key conversion, so that an address (an Ed25519 public key)
 * is also a key to encrypt a whisper to, and an identity's Ed25519 secret key
 * the matching X25519 private key (the standard birational map, as libsodium's
 * `crypto_sign_ed25519_pk_to_curve25519` and `…_sk_to_curve25519`).
 *
 * @module
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { toHex } from "../_bytes.ts";
import { AddressError, ArgumentError } from "../errors.ts";
import { assertAddressBytes } from "../identity/address.ts";
import { type Identity, SECRET_KEY_LENGTH } from "../identity/keys.ts";
import { type X25519KeyPair, x25519KeyPairFromPrivateKey } from "../secure/noise.ts";

/**
 * The X25519 public key of an Ed25519 public key (an address), by the
 * birational map u = (1 + y) / (1 − y) (RFC 7748 section 4.1; libsodium's
 * `crypto_sign_ed25519_pk_to_curve25519`). It equals the public key of
 * {@linkcode x25519PrivateKeyFromEd25519} of the matching secret key. The map
 * drops the sign of x: the addresses A and −A give the same key.
 *
 * @param publicKey A 32-byte Ed25519 public key.
 * @returns The 32-byte X25519 public key.
 * @throws {AddressError} If `publicKey` is not 32 bytes, or not a canonical
 * encoding of a curve point other than the identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { x25519PrivateKeyFromEd25519, x25519PublicKeyFromEd25519 } from "./ed25519_x25519.ts";
 * import { generateIdentitySync } from "../identity/keys.ts";
 * import { x25519KeyPairFromPrivateKey } from "../secure/noise.ts";
 *
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const pair = x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(identity.secretKey));
 * assert.deepEqual(pair.publicKey, x25519PublicKeyFromEd25519(identity.publicKey));
 * ```
 */
export function x25519PublicKeyFromEd25519(publicKey: Uint8Array): Uint8Array {
  assertAddressBytes(publicKey);
  try {
    return ed25519.utils.toMontgomery(publicKey);
  } catch (cause) {
    throw new AddressError(
      `Cannot convert Ed25519 public key ${
        toHex(publicKey)
      } to X25519: not a canonical curve point, or the identity point (${
        (cause as Error).message
      })`,
      { cause },
    );
  }
}

/**
 * The X25519 private key of an Ed25519 secret key (the RFC 8032 seed): the
 * clamped first half of SHA-512(seed), i.e. the Ed25519 signing scalar
 * (libsodium's `crypto_sign_ed25519_sk_to_curve25519`).
 *
 * @param secretKey A 32-byte Ed25519 seed.
 * @returns The 32-byte X25519 private key. Keep it private.
 * @throws {ArgumentError} If `secretKey` is not a Uint8Array of 32 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { x25519PrivateKeyFromEd25519 } from "@carrier/p2p/protocol";
 * const key = x25519PrivateKeyFromEd25519(new Uint8Array(32));
 * assert.equal(key.length, 32);
 * assert.equal(key[0] & 7, 0); // clamped
 * ```
 */
export function x25519PrivateKeyFromEd25519(secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_LENGTH) {
    throw new ArgumentError(
      `Invalid Ed25519 secret key: expected Uint8Array of length ${SECRET_KEY_LENGTH}, got ${
        secretKey instanceof Uint8Array ? `length=${secretKey.length}` : typeof secretKey
      }`,
    );
  }
  return ed25519.utils.toMontgomerySecret(secretKey);
}

/** X25519 key pairs of identities already used, keyed by their secret key (like `sign`'s cache). */
const ownKeyPairs = new WeakMap<Uint8Array, X25519KeyPair>();

/**
 * `identity`'s X25519 key pair (of {@linkcode x25519PrivateKeyFromEd25519}),
 * computed once per identity.
 *
 * @internal
 */
export function ownX25519KeyPair(identity: Identity): X25519KeyPair {
  let pair = ownKeyPairs.get(identity.secretKey);
  if (pair === undefined) {
    const privateKey = x25519PrivateKeyFromEd25519(identity.secretKey);
    pair = x25519KeyPairFromPrivateKey(privateKey);
    privateKey.fill(0);
    ownKeyPairs.set(identity.secretKey, pair);
  }
  return pair;
}
