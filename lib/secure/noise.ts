/**
 * The Noise Protocol Framework (revision 34) for the suite
 * `25519_AESGCM_SHA256`: {@linkcode CipherState}, the symmetric state and a
 * handshake state machine generic over handshake patterns (one-way `N`, `K`,
 * `X`; interactive `NN` … `IX`; the deferred variants such as `XX1`, `X1X1`,
 * `I1K1`; `psk0` … `psk3` modifiers, combinable as `NNpsk0+psk2`). carrier
 * itself runs `Noise_XX_25519_AESGCM_SHA256`.
 *
 * Errors: a peer's fault (garbage, a low-order key, a failed tag) is a
 * {@linkcode HandshakeError} during the handshake and a {@linkcode DecryptError}
 * afterwards; a cipher state that ran out of nonces throws
 * {@linkcode NonceExhaustedError}. Misuse by the local caller (a key of the
 * wrong size, a missing option, a plaintext larger than one Noise message)
 * throws an `ArgumentError`.
 *
 * Every Noise message, handshake or transport, is at most
 * {@linkcode MAX_MESSAGE_LENGTH} (65535) bytes, tag included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandshake, generateX25519KeyPair } from "./noise.ts";
 *
 * const prologue = new TextEncoder().encode("carrier example");
 * const alice = createHandshake({
 *   pattern: "XX",
 *   initiator: true,
 *   prologue,
 *   staticKeyPair: generateX25519KeyPair(),
 * });
 * const bob = createHandshake({
 *   pattern: "XX",
 *   initiator: false,
 *   prologue,
 *   staticKeyPair: generateX25519KeyPair(),
 * });
 * await bob.readMessage(await alice.writeMessage());
 * await alice.readMessage(await bob.writeMessage());
 * await bob.readMessage(await alice.writeMessage());
 *
 * const a = alice.split();
 * const b = bob.split();
 * const sealed = await a.send.encrypt(new TextEncoder().encode("hello"));
 * assert.equal(new TextDecoder().decode(await b.receive.decrypt(sealed)), "hello");
 * ```
 *
 * @module
 */

export {
  AES_GCM_WEBCRYPTO_THRESHOLD,
  type AesGcm,
  type AesGcmBackend,
  type AesGcmCallOptions,
  aesGcmImplementation,
  type AesGcmOptions,
  createAesGcm,
} from "./_aes_gcm.ts";
export { HASH_LENGTH } from "./_symmetric_state.ts";
export {
  type CipherOptions,
  CipherState,
  type CipherStateOptions,
  MAX_MESSAGE_LENGTH,
  MAX_NONCE,
  MAX_PLAINTEXT_LENGTH,
  TAG_LENGTH,
} from "./cipher_state.ts";
export {
  createHandshake,
  Handshake,
  type HandshakeOptions,
  NOISE_SUITE,
  PSK_LENGTH,
  type TransportCiphers,
} from "./handshake.ts";
export {
  DH_LENGTH,
  generateX25519KeyPair,
  type X25519KeyPair,
  x25519KeyPairFromPrivateKey,
} from "./x25519.ts";
