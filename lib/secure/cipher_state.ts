/**
 * The Noise CipherState (spec section 5.1) over AES-256-GCM: a key, a 64-bit
 * nonce that is never reused, and the limits of one Noise message.
 *
 * @module
 */

import { ArgumentError, SizeLimitError } from "../errors.ts";
import { DecryptError, NonceExhaustedError } from "./errors.ts";
import { checkLength } from "./_check_length.ts";
import {
  type AesGcm,
  type AesGcmBackend,
  createAesGcm,
  KEY_LENGTH,
  syncAesGcm,
  TAG_LENGTH,
} from "./_aes_gcm.ts";

export { TAG_LENGTH };

/** Largest Noise message, handshake or transport, in bytes (spec section 3). */
export const MAX_MESSAGE_LENGTH = 65535;

/** Largest plaintext one transport message can carry: 65535 − 16 = 65519 bytes. */
export const MAX_PLAINTEXT_LENGTH: number = MAX_MESSAGE_LENGTH - TAG_LENGTH;

/**
 * The nonce value the spec reserves (2^64 − 1): a cipher state whose nonce
 * reaches it refuses to encrypt or decrypt. {@linkcode CipherState.rekey} uses
 * it internally.
 */
export const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

/** Options of a {@linkcode CipherState}. */
export interface CipherStateOptions {
  /**
   * The first nonce this state refuses to use: encrypting or decrypting once
   * the nonce has reached it throws {@linkcode NonceExhaustedError}. Set it
   * lower than the spec's limit to force a close-or-rekey decision early
   * (AES-GCM keys should not be stretched anywhere near 2^64 messages).
   *
   * @default {MAX_NONCE} (2^64 − 1, reserved by the spec)
   */
  nonceLimit?: bigint;
  /**
   * Which AES-GCM implementation to use.
   *
   * @default {"auto"}
   */
  backend?: AesGcmBackend;
}

/** Per-call options of {@linkcode CipherState.encrypt} and {@linkcode CipherState.decrypt}. */
export interface CipherOptions {
  /**
   * Associated data, authenticated but not encrypted.
   *
   * @default {new Uint8Array(0)}
   */
  ad?: Uint8Array;
}

/**
 * A Noise CipherState with a key: a 32-byte AES-256-GCM key and a 64-bit
 * nonce counter that increments after every successful call and is never
 * reused. A failed `decrypt` leaves the nonce where it was. Use one state per
 * direction: `Handshake.split` gives a `send` and a `receive` state.
 *
 * Calls behave as if run one at a time in call order (each sees the nonce
 * its predecessors left), and their promises settle in call order. The work
 * itself starts at call time, with the nonce the call gets if every earlier
 * pending call succeeds, so concurrent calls on the WebCrypto backend run in
 * parallel on its worker threads; in the rare case an earlier `decrypt`
 * fails, a later call is redone with the nonce it actually gets. Inputs must
 * therefore stay unchanged until their promise settles. With nothing pending,
 * small messages on a synchronous backend are processed before the call
 * returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CipherState } from "./noise.ts";
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const sender = new CipherState(key);
 * const receiver = new CipherState(key);
 * const sealed = await sender.encrypt(new Uint8Array([1, 2, 3]));
 * const opened = await receiver.decrypt(sealed);
 * assert.deepEqual(opened, new Uint8Array([1, 2, 3]));
 * assert.equal(receiver.nonce, 1n);
 * ```
 */
export class CipherState {
  /** The key the next call uses: a promise while a rekey is computing it. */
  #aead: AesGcm | Promise<AesGcm>;
  #backend: AesGcmBackend;
  /** The nonce after every settled call. */
  #nonce = 0n;
  /** Encrypt and decrypt calls made and not yet settled. */
  #pending = 0;
  #nonceLimit: bigint;
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Creates a cipher state with `key` and nonce 0.
   *
   * @throws {ArgumentError} If `key` is not 32 bytes or `nonceLimit` is out of range.
   */
  constructor(key: Uint8Array, options: CipherStateOptions = {}) {
    checkLength("cipher key", key, KEY_LENGTH);
    const nonceLimit = options.nonceLimit ?? MAX_NONCE;
    if (
      typeof nonceLimit !== "bigint" || nonceLimit < 0n ||
      nonceLimit > MAX_NONCE
    ) {
      throw new ArgumentError(
        `Cannot create cipher state: nonceLimit ${nonceLimit} is not a bigint in [0, 2^64 - 1]`,
      );
    }
    this.#backend = options.backend ?? "auto";
    this.#aead = createAesGcm(key, { backend: this.#backend });
    this.#nonceLimit = nonceLimit;
  }

  /** The nonce the next call will use (if the calls pending before it succeed). */
  get nonce(): bigint {
    return this.#pending === 0 ? this.#nonce : this.#nonce + BigInt(this.#pending);
  }

  /** The first nonce this state refuses to use. */
  get nonceLimit(): bigint {
    return this.#nonceLimit;
  }

  /**
   * Moves the nonce forward to `nonce` (the spec's `SetNonce`), skipping the
   * nonces in between. It never moves backwards, so a nonce is never used
   * twice. Meant for tests and for protocols with explicit nonces; call it
   * only while no call is pending.
   *
   * @throws {ArgumentError} If `nonce` is below the current nonce or above 2^64 − 1.
   */
  setNonce(nonce: bigint): void {
    if (typeof nonce !== "bigint" || nonce < this.nonce || nonce > MAX_NONCE) {
      throw new ArgumentError(
        `Cannot set nonce to ${nonce}: expected a bigint in [${this.nonce} (current), 2^64 - 1]`,
      );
    }
    this.#nonce = nonce;
  }

  /**
   * Encrypts `plaintext` (the spec's `EncryptWithAd`) and advances the nonce.
   * Resolves to the ciphertext followed by the 16-byte tag.
   *
   * @throws {NonceExhaustedError} If the nonce has reached `nonceLimit`.
   * @throws {ArgumentError} If `plaintext` is longer than {@linkcode MAX_PLAINTEXT_LENGTH}.
   */
  encrypt(
    plaintext: Uint8Array,
    options: CipherOptions = {},
  ): Promise<Uint8Array> {
    if (plaintext.length > MAX_PLAINTEXT_LENGTH) {
      return Promise.reject(
        new SizeLimitError(
          `Cannot encrypt: plaintext length ${plaintext.length} exceeds MAX_PLAINTEXT_LENGTH ${MAX_PLAINTEXT_LENGTH} (a ${MAX_MESSAGE_LENGTH}-byte Noise message minus the ${TAG_LENGTH}-byte tag)`,
          { limit: "MAX_PLAINTEXT_LENGTH", size: plaintext.length, max: MAX_PLAINTEXT_LENGTH },
        ),
      );
    }
    return this.#call(true, plaintext, options);
  }

  /**
   * Decrypts and authenticates `ciphertext` (the spec's `DecryptWithAd`) and
   * advances the nonce. On failure the nonce stays where it was.
   *
   * @throws {DecryptError} If authentication fails (tampered, replayed,
   * reordered, wrong associated data) or `ciphertext` is shorter than the tag
   * or longer than {@linkcode MAX_MESSAGE_LENGTH}.
   * @throws {NonceExhaustedError} If the nonce has reached `nonceLimit`.
   */
  decrypt(
    ciphertext: Uint8Array,
    options: CipherOptions = {},
  ): Promise<Uint8Array> {
    if (ciphertext.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(
        new DecryptError(
          `Cannot decrypt at nonce ${this.nonce}: ciphertext length ${ciphertext.length} exceeds the Noise maximum ${MAX_MESSAGE_LENGTH}`,
        ),
      );
    }
    return this.#call(false, ciphertext, options);
  }

  /**
   * Replaces the key with the first 32 bytes of `ENCRYPT(k, 2^64 − 1, ε,
   * zeros[32])` (the spec's `Rekey`). The nonce is not reset. Both sides
   * must rekey at the same point of the stream. Calls made after `rekey()`
   * use the new key; if deriving it fails, they fail too and later calls
   * keep the old key.
   */
  rekey(): Promise<void> {
    const old = this.#aead;
    const derived = Promise.resolve(old).then(async (aead) => {
      const sealed = await aead.encrypt(MAX_NONCE, new Uint8Array(KEY_LENGTH));
      const next = createAesGcm(sealed.subarray(0, KEY_LENGTH), {
        backend: this.#backend,
      });
      sealed.fill(0);
      return next;
    });
    this.#aead = derived;
    derived.then(
      (aead) => {
        if (this.#aead === derived) this.#aead = aead;
      },
      () => {
        if (this.#aead === derived) this.#aead = old;
      },
    );
    const done = this.#tail.then(() => derived).then(noop);
    this.#tail = done.then(noop, noop);
    return done;
  }

  #call(
    encrypt: boolean,
    input: Uint8Array,
    options: CipherOptions,
  ): Promise<Uint8Array> {
    const aead = this.#aead;
    const run = (key: AesGcm, nonce: bigint): Promise<Uint8Array> =>
      encrypt ? key.encrypt(nonce, input, options) : key.decrypt(nonce, input, options);
    if (this.#pending === 0 && !(aead instanceof Promise)) {
      // Nothing in flight: the call sees the settled nonce; a synchronous
      // backend finishes it before returning.
      const nonce = this.#nonce;
      if (nonce >= this.#nonceLimit) {
        return Promise.reject(this.#exhausted(encrypt, nonce));
      }
      const sync = syncAesGcm(aead, encrypt ? input.length : input.length - TAG_LENGTH);
      if (sync !== undefined) {
        try {
          const output = encrypt
            ? sync.encryptSync(nonce, input, options)
            : sync.decryptSync(nonce, input, options);
          this.#nonce = nonce + 1n;
          return Promise.resolve(output);
        } catch (error) {
          return Promise.reject(error);
        }
      }
    }
    // Start now with the nonce this call gets if every pending call
    // succeeds; settle in call order, redoing the work if that guess is off.
    const guess = this.#nonce + BigInt(this.#pending);
    let early: Promise<Uint8Array> | undefined;
    if (guess < this.#nonceLimit) {
      early = aead instanceof Promise ? aead.then((key) => run(key, guess)) : run(aead, guess);
      early.catch(noop);
    }
    this.#pending++;
    const result = this.#tail.then(async () => {
      try {
        const nonce = this.#nonce;
        if (nonce >= this.#nonceLimit) throw this.#exhausted(encrypt, nonce);
        const output = nonce === guess && early !== undefined
          ? await early
          : await run(await aead, nonce);
        this.#nonce = nonce + 1n;
        return output;
      } finally {
        this.#pending--;
      }
    });
    this.#tail = result.then(noop, noop);
    return result;
  }

  #exhausted(encrypt: boolean, nonce: bigint): NonceExhaustedError {
    return new NonceExhaustedError(
      `Cannot ${
        encrypt ? "encrypt" : "decrypt"
      }: nonce ${nonce} reached the limit ${this.#nonceLimit}; rekey or close the connection`,
    );
  }
}

function noop(): void {}
