/**
 * The Noise SymmetricState (spec section 5.2): the chaining key, the
 * handshake hash and the cipher state the handshake encrypts with.
 *
 * Private to `lib/secure/`; `noise.ts` re-exports {@linkcode HASH_LENGTH}.
 *
 * @module
 */

import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { CipherState, type CipherStateOptions } from "./cipher_state.ts";

/** Length of a SHA-256 hash (and of the handshake hash), in bytes. */
export const HASH_LENGTH = 32;

const EMPTY = new Uint8Array(0);

/** The spec's SymmetricState: chaining key, handshake hash and an optional cipher. */
export class SymmetricState {
  #ck: Uint8Array;
  #h: Uint8Array;
  #cipher: CipherState | undefined;

  constructor(protocolName: string) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASH_LENGTH) {
      this.#h = new Uint8Array(HASH_LENGTH);
      this.#h.set(name);
    } else {
      this.#h = sha256(name);
    }
    this.#ck = this.#h.slice();
  }

  get h(): Uint8Array {
    return this.#h;
  }

  get hasKey(): boolean {
    return this.#cipher !== undefined;
  }

  mixKey(ikm: Uint8Array): void {
    const out = hkdf(sha256, ikm, this.#ck, undefined, 2 * HASH_LENGTH);
    this.#ck = out.slice(0, HASH_LENGTH);
    this.#cipher = new CipherState(out.subarray(HASH_LENGTH));
    out.fill(0);
  }

  mixHash(data: Uint8Array): void {
    this.#h = sha256.create().update(this.#h).update(data).digest();
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const out = hkdf(sha256, ikm, this.#ck, undefined, 3 * HASH_LENGTH);
    this.#ck = out.slice(0, HASH_LENGTH);
    this.mixHash(out.subarray(HASH_LENGTH, 2 * HASH_LENGTH));
    this.#cipher = new CipherState(out.subarray(2 * HASH_LENGTH));
    out.fill(0);
  }

  async encryptAndHash(plaintext: Uint8Array): Promise<Uint8Array> {
    const ciphertext = this.#cipher === undefined
      ? plaintext.slice()
      : await this.#cipher.encrypt(plaintext, { ad: this.#h });
    this.mixHash(ciphertext);
    return ciphertext;
  }

  async decryptAndHash(ciphertext: Uint8Array): Promise<Uint8Array> {
    const plaintext = this.#cipher === undefined
      ? ciphertext.slice()
      : await this.#cipher.decrypt(ciphertext, { ad: this.#h });
    this.mixHash(ciphertext);
    return plaintext;
  }

  split(options: CipherStateOptions): [CipherState, CipherState] {
    const out = hkdf(sha256, EMPTY, this.#ck, undefined, 2 * HASH_LENGTH);
    const pair: [CipherState, CipherState] = [
      new CipherState(out.subarray(0, HASH_LENGTH), options),
      new CipherState(out.subarray(HASH_LENGTH), options),
    ];
    out.fill(0);
    this.#ck.fill(0);
    this.#cipher = undefined;
    return pair;
  }
}
