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
 * throws a plain `TypeError` or `RangeError`.
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

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, toHex } from "../_bytes.ts";
import { DecryptError, HandshakeError, NonceExhaustedError } from "../errors.ts";
import { type AesGcm, type AesGcmBackend, createAesGcm, syncAesGcm } from "./_aes_gcm.ts";
import { type HandshakePattern, parsePattern, type Token } from "./_patterns.ts";

export {
  AES_GCM_WEBCRYPTO_THRESHOLD,
  type AesGcm,
  type AesGcmBackend,
  type AesGcmCallOptions,
  type AesGcmOptions,
  createAesGcm,
} from "./_aes_gcm.ts";

/** Largest Noise message, handshake or transport, in bytes (spec section 3). */
export const MAX_MESSAGE_LENGTH = 65535;

/** Length of the AES-GCM authentication tag, in bytes. */
export const TAG_LENGTH = 16;

/** Largest plaintext one transport message can carry: 65535 − 16 = 65519 bytes. */
export const MAX_PLAINTEXT_LENGTH: number = MAX_MESSAGE_LENGTH - TAG_LENGTH;

/**
 * The nonce value the spec reserves (2^64 − 1): a cipher state whose nonce
 * reaches it refuses to encrypt or decrypt. {@linkcode CipherState.rekey} uses
 * it internally.
 */
export const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

/** Length of an X25519 key and of a DH output, in bytes. */
export const DH_LENGTH = 32;

/** Length of a SHA-256 hash (and of the handshake hash), in bytes. */
export const HASH_LENGTH = 32;

/** Length of a Noise pre-shared key, in bytes. */
export const PSK_LENGTH = 32;

/** The DH, cipher and hash names of the one suite this module implements. */
export const NOISE_SUITE = "25519_AESGCM_SHA256";

const EMPTY = new Uint8Array(0);

/**
 * An X25519 key pair.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   generateX25519KeyPair,
 *   type SecureChannelOptions,
 *   type X25519KeyPair,
 * } from "@carrier/p2p";
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
 * import { generateX25519KeyPair } from "@carrier/p2p";
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
 * @throws {RangeError} If `privateKey` is not 32 bytes.
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
 * direction: {@linkcode Handshake.split} gives a `send` and a `receive` state.
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
   * @throws {RangeError} If `key` is not 32 bytes or `nonceLimit` is out of range.
   */
  constructor(key: Uint8Array, options: CipherStateOptions = {}) {
    checkLength("cipher key", key, DH_LENGTH);
    const nonceLimit = options.nonceLimit ?? MAX_NONCE;
    if (
      typeof nonceLimit !== "bigint" || nonceLimit < 0n ||
      nonceLimit > MAX_NONCE
    ) {
      throw new RangeError(
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
   * @throws {RangeError} If `nonce` is below the current nonce or above 2^64 − 1.
   */
  setNonce(nonce: bigint): void {
    if (typeof nonce !== "bigint" || nonce < this.nonce || nonce > MAX_NONCE) {
      throw new RangeError(
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
   * @throws {RangeError} If `plaintext` is longer than {@linkcode MAX_PLAINTEXT_LENGTH}.
   */
  encrypt(
    plaintext: Uint8Array,
    options: CipherOptions = {},
  ): Promise<Uint8Array> {
    if (plaintext.length > MAX_PLAINTEXT_LENGTH) {
      return Promise.reject(
        new RangeError(
          `Cannot encrypt: plaintext length ${plaintext.length} exceeds the maximum ${MAX_PLAINTEXT_LENGTH} (a ${MAX_MESSAGE_LENGTH}-byte Noise message minus the ${TAG_LENGTH}-byte tag)`,
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
      const sealed = await aead.encrypt(MAX_NONCE, new Uint8Array(DH_LENGTH));
      const next = createAesGcm(sealed.subarray(0, DH_LENGTH), {
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

/** The cipher states {@linkcode Handshake.split} returns, ordered for the local side. */
export interface TransportCiphers {
  /** Encrypts what this side sends. */
  readonly send: CipherState;
  /** Decrypts what this side receives. */
  readonly receive: CipherState;
}

/** The spec's SymmetricState: chaining key, handshake hash and an optional cipher. */
class SymmetricState {
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

/** Options of {@linkcode createHandshake}. */
export interface HandshakeOptions {
  /**
   * The handshake pattern with its modifiers, as in the protocol name:
   * `"XX"`, `"IK"`, `"X1X1"`, `"NNpsk0"`, `"XXpsk3"`, `"NNpsk0+psk2"`.
   */
  pattern: string;
  /** Whether this side sends the first message. */
  initiator: boolean;
  /**
   * Bytes both sides must agree on, hashed into the handshake (e.g. the
   * protocol and version name). A mismatch fails the handshake.
   *
   * @default {new Uint8Array(0)}
   */
  prologue?: Uint8Array;
  /**
   * This side's static key pair; required when the pattern sends or
   * pre-shares a local static key (`XX`: both sides).
   *
   * @default {undefined}
   */
  staticKeyPair?: X25519KeyPair;
  /**
   * The remote static public key known in advance; required exactly when the
   * pattern has it as a pre-message (`NK`, `IK`, `KK`, …), refused otherwise.
   *
   * @default {undefined}
   */
  remoteStaticPublicKey?: Uint8Array;
  /**
   * A fixed ephemeral key pair instead of a fresh one. For test vectors
   * only: reusing an ephemeral key breaks Noise's security.
   *
   * @default {undefined} (a fresh key pair per handshake)
   */
  ephemeralKeyPair?: X25519KeyPair;
  /**
   * Pre-shared keys of 32 bytes, one per `psk` modifier, in the order the
   * handshake uses them.
   *
   * @default {[]}
   */
  psks?: readonly Uint8Array[];
}

/**
 * Creates one side of a Noise handshake for
 * `Noise_<pattern>_25519_AESGCM_SHA256`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandshake, generateX25519KeyPair } from "./noise.ts";
 * const responderStatic = generateX25519KeyPair();
 * const initiator = createHandshake({
 *   pattern: "NK",
 *   initiator: true,
 *   remoteStaticPublicKey: responderStatic.publicKey,
 * });
 * const responder = createHandshake({
 *   pattern: "NK",
 *   initiator: false,
 *   staticKeyPair: responderStatic,
 * });
 * const first = await initiator.writeMessage(new TextEncoder().encode("early data"));
 * assert.equal(new TextDecoder().decode(await responder.readMessage(first)), "early data");
 * await initiator.readMessage(await responder.writeMessage());
 * assert.ok(initiator.isComplete);
 * assert.ok(responder.isComplete);
 * assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
 * ```
 *
 * @throws {TypeError} If the pattern is unknown or a key the pattern needs is
 * missing (or one it cannot use is given).
 * @throws {RangeError} If a key or psk has the wrong length.
 */
export function createHandshake(options: HandshakeOptions): Handshake {
  return new Handshake(options);
}

/**
 * One side of a Noise handshake (the spec's HandshakeState). Write and read
 * messages in the pattern's order, then {@linkcode Handshake.split} into
 * transport cipher states. Any failure leaves the handshake failed: every
 * later call rejects with {@linkcode HandshakeError}. Create it with
 * {@linkcode createHandshake}.
 */
export class Handshake {
  #pattern: HandshakePattern;
  #protocolName: string;
  #initiator: boolean;
  #symmetric: SymmetricState;
  #s: X25519KeyPair | undefined;
  #e: X25519KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #psks: Uint8Array[];
  #nextPsk = 0;
  #messageIndex = 0;
  #busy = false;
  #failure: unknown = undefined;
  #split = false;

  /** Use {@linkcode createHandshake}. */
  constructor(options: HandshakeOptions) {
    const pattern = parsePattern(options.pattern);
    const initiator = options.initiator;
    if (typeof initiator !== "boolean") {
      throw new TypeError(
        `Cannot create handshake: initiator must be a boolean, got ${typeof initiator}`,
      );
    }
    this.#pattern = pattern;
    this.#initiator = initiator;
    this.#protocolName = `Noise_${pattern.name}_${NOISE_SUITE}`;
    const what = `Cannot create ${this.#protocolName} ${initiator ? "initiator" : "responder"}`;

    const localPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const localMessages = pattern.messages.filter((_, i) => (i % 2 === 0) === initiator);

    const needsStatic = localPre.includes("s") ||
      localMessages.some((m) => m.includes("s"));
    if (options.staticKeyPair !== undefined) {
      checkKeyPair("staticKeyPair", options.staticKeyPair);
      if (!needsStatic) {
        throw new TypeError(
          `${what}: the pattern uses no local static key, but staticKeyPair is set`,
        );
      }
      this.#s = copyKeyPair(options.staticKeyPair);
    } else if (needsStatic) {
      throw new TypeError(
        `${what}: the pattern needs a local static key; set staticKeyPair`,
      );
    }

    const knowsRemoteStatic = remotePre.includes("s");
    if (options.remoteStaticPublicKey !== undefined) {
      checkLength(
        "remoteStaticPublicKey",
        options.remoteStaticPublicKey,
        DH_LENGTH,
      );
      if (!knowsRemoteStatic) {
        throw new TypeError(
          `${what}: the pattern has no pre-shared remote static key, but remoteStaticPublicKey is set`,
        );
      }
      this.#rs = options.remoteStaticPublicKey.slice();
    } else if (knowsRemoteStatic) {
      throw new TypeError(
        `${what}: the pattern needs the remote static public key in advance; set remoteStaticPublicKey`,
      );
    }

    if (options.ephemeralKeyPair !== undefined) {
      checkKeyPair("ephemeralKeyPair", options.ephemeralKeyPair);
      if (!localMessages.some((m) => m.includes("e"))) {
        throw new TypeError(
          `${what}: this side sends no ephemeral key, but ephemeralKeyPair is set`,
        );
      }
      this.#e = copyKeyPair(options.ephemeralKeyPair);
    }

    const psks = options.psks ?? [];
    if (psks.length !== pattern.pskCount) {
      throw new TypeError(
        `${what}: the pattern uses ${pattern.pskCount} psk(s), got ${psks.length}`,
      );
    }
    psks.forEach((psk, i) => checkLength(`psks[${i}]`, psk, PSK_LENGTH));
    this.#psks = psks.map((psk) => psk.slice());

    this.#symmetric = new SymmetricState(this.#protocolName);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    // Pre-messages: the initiator's keys first, then the responder's.
    for (const token of pattern.initiatorPreMessage) {
      this.#mixPreMessage(token, initiator);
    }
    for (const token of pattern.responderPreMessage) {
      this.#mixPreMessage(token, !initiator);
    }
  }

  /** The full protocol name, e.g. `Noise_XX_25519_AESGCM_SHA256`. */
  get protocolName(): string {
    return this.#protocolName;
  }

  /** Whether this side sent (or will send) the first message. */
  get isInitiator(): boolean {
    return this.#initiator;
  }

  /** Whether every handshake message has been written or read. */
  get isComplete(): boolean {
    return this.#messageIndex === this.#pattern.messages.length;
  }

  /** Whether the next handshake message is this side's to write. */
  get isMyTurn(): boolean {
    return !this.isComplete &&
      (this.#messageIndex % 2 === 0) === this.#initiator;
  }

  /**
   * The handshake hash `h` (32 bytes). Once {@linkcode Handshake.isComplete}
   * it is final and identical on both sides: a channel binding for
   * signatures. Before that it is the running value.
   */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.h.slice();
  }

  /** The remote static public key, once known (pre-shared or received). */
  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /**
   * Writes the next handshake message carrying `payload` (encrypted once the
   * handshake has a key). Resolves to the message bytes.
   *
   * @throws {HandshakeError} If it is not this side's turn, the handshake is
   * complete or failed, or a DH result is all zeros.
   * @throws {RangeError} If the message would exceed {@linkcode MAX_MESSAGE_LENGTH}.
   */
  writeMessage(payload: Uint8Array = EMPTY): Promise<Uint8Array> {
    return this.#step("write", async (index, tokens) => {
      const length = this.#messageLength(tokens, payload.length);
      if (length > MAX_MESSAGE_LENGTH) {
        throw new RangeError(
          `Cannot write handshake message ${
            index + 1
          }: payload length ${payload.length} makes a ${length}-byte message, over the Noise maximum ${MAX_MESSAGE_LENGTH}`,
        );
      }
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          this.#e ??= generateX25519KeyPair();
          parts.push(this.#e.publicKey);
          this.#mixEphemeral(this.#e.publicKey);
        } else if (token === "s") {
          parts.push(await this.#symmetric.encryptAndHash(this.#s!.publicKey));
        } else {
          this.#mixToken(token);
        }
      }
      parts.push(await this.#symmetric.encryptAndHash(payload));
      return concatBytes(parts);
    });
  }

  /**
   * Reads the next handshake message from the remote side. Resolves to its
   * payload.
   *
   * @throws {HandshakeError} If the message is malformed, truncated, too long,
   * fails authentication, carries a low-order key, or arrives out of turn.
   */
  readMessage(message: Uint8Array): Promise<Uint8Array> {
    return this.#step("read", async (index, tokens) => {
      const what = `Cannot read handshake message ${index + 1}`;
      if (message.length > MAX_MESSAGE_LENGTH) {
        throw new HandshakeError(
          `${what}: length ${message.length} exceeds the Noise maximum ${MAX_MESSAGE_LENGTH}`,
        );
      }
      let offset = 0;
      const take = (length: number, name: string): Uint8Array => {
        if (message.length - offset < length) {
          throw new HandshakeError(
            `${what}: truncated: ${name} needs ${length} bytes at offset ${offset}, message length is ${message.length}`,
          );
        }
        const bytes = message.slice(offset, offset + length);
        offset += length;
        return bytes;
      };
      const open = async (ciphertext: Uint8Array, name: string) => {
        try {
          return await this.#symmetric.decryptAndHash(ciphertext);
        } catch (cause) {
          throw new HandshakeError(`${what}: ${name} failed authentication`, {
            cause,
          });
        }
      };
      for (const token of tokens) {
        if (token === "e") {
          this.#re = take(DH_LENGTH, "the ephemeral key");
          this.#mixEphemeral(this.#re);
        } else if (token === "s") {
          const length = DH_LENGTH + (this.#symmetric.hasKey ? TAG_LENGTH : 0);
          this.#rs = await open(take(length, "the static key"), "static key");
        } else {
          this.#mixToken(token);
        }
      }
      if (!this.#symmetric.hasKey || message.length - offset >= TAG_LENGTH) {
        return await open(message.slice(offset), "payload");
      }
      throw new HandshakeError(
        `${what}: truncated: the payload needs at least ${TAG_LENGTH} bytes for its tag, ${
          message.length - offset
        } left`,
      );
    });
  }

  /**
   * Derives the transport cipher states (the spec's `Split`), ordered for this
   * side. Callable once, after the handshake completes; the handshake's
   * secrets are wiped. In one-way patterns (`N`, `K`, `X`) only the
   * initiator's `send` and the responder's `receive` may be used.
   *
   * @throws {HandshakeError} If the handshake is not complete, failed, or was
   * already split.
   */
  split(options: CipherStateOptions = {}): TransportCiphers {
    if (this.#failure !== undefined) throw this.#failedError("split");
    if (!this.isComplete) {
      throw new HandshakeError(
        `Cannot split ${this.#protocolName}: handshake incomplete after ${this.#messageIndex} of ${this.#pattern.messages.length} messages`,
      );
    }
    if (this.#split) {
      throw new HandshakeError(
        `Cannot split ${this.#protocolName}: already split (a second split would reuse nonces)`,
      );
    }
    this.#split = true;
    const [c1, c2] = this.#symmetric.split(options);
    this.#e?.privateKey.fill(0);
    this.#e = undefined;
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  async #step<T>(
    direction: "write" | "read",
    run: (index: number, tokens: readonly Token[]) => Promise<T>,
  ): Promise<T> {
    const index = this.#messageIndex;
    const what = `Cannot ${direction} handshake message ${
      index + 1
    } of ${this.#pattern.messages.length} (${this.#protocolName})`;
    if (this.#failure !== undefined) throw this.#failedError(direction);
    if (this.#busy) {
      throw new HandshakeError(`${what}: another handshake step is running`);
    }
    if (this.isComplete) {
      throw new HandshakeError(`${what}: the handshake is complete`);
    }
    if (this.isMyTurn !== (direction === "write")) {
      throw new HandshakeError(
        `${what}: it is the ${(index % 2 === 0) ? "initiator" : "responder"}'s turn to write`,
      );
    }
    this.#busy = true;
    try {
      const result = await run(index, this.#pattern.messages[index]);
      this.#messageIndex++;
      return result;
    } catch (error) {
      // A size check fails before any state changed; everything else leaves
      // the symmetric state half-updated, so the handshake is over.
      if (!(error instanceof RangeError)) this.#failure = error;
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  #failedError(what: string): HandshakeError {
    return new HandshakeError(
      `Cannot ${what}: the ${this.#protocolName} handshake already failed`,
      { cause: this.#failure },
    );
  }

  #mixPreMessage(token: Token, local: boolean): void {
    if (token !== "s") {
      throw new TypeError(
        `Unsupported pre-message token "${token}" in ${this.#protocolName}`,
      );
    }
    this.#symmetric.mixHash(local ? this.#s!.publicKey : this.#rs!);
  }

  #mixEphemeral(publicKey: Uint8Array): void {
    this.#symmetric.mixHash(publicKey);
    if (this.#pattern.pskCount > 0) this.#symmetric.mixKey(publicKey);
  }

  #mixToken(token: Token): void {
    if (token === "psk") {
      this.#symmetric.mixKeyAndHash(this.#psks[this.#nextPsk++]);
      return;
    }
    // The first letter names the initiator's key, the second the responder's.
    const initiatorKey = token[0];
    const responderKey = token[1];
    const localKey = this.#initiator ? initiatorKey : responderKey;
    const remoteKey = this.#initiator ? responderKey : initiatorKey;
    const local = localKey === "e" ? this.#e : this.#s;
    const remote = remoteKey === "e" ? this.#re : this.#rs;
    if (local === undefined || remote === undefined) {
      throw new HandshakeError(
        `Cannot perform ${token} in ${this.#protocolName}: a key is missing`,
      );
    }
    this.#symmetric.mixKey(dh(local.privateKey, remote));
  }

  /** The exact length of the next written message, computed before writing. */
  #messageLength(tokens: readonly Token[], payloadLength: number): number {
    let keyed = this.#symmetric.hasKey;
    let length = 0;
    for (const token of tokens) {
      if (token === "e") {
        length += DH_LENGTH;
        if (this.#pattern.pskCount > 0) keyed = true;
      } else if (token === "s") {
        length += DH_LENGTH + (keyed ? TAG_LENGTH : 0);
      } else {
        keyed = true;
      }
    }
    return length + payloadLength + (keyed ? TAG_LENGTH : 0);
  }
}

/** X25519 with the all-zero result (a low-order remote key) rejected. */
function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const problem = () =>
    `Cannot complete X25519: remote public key ${
      toHex(publicKey)
    } is a low-order point (the DH result would be all zeros)`;
  let shared: Uint8Array;
  try {
    // node:crypto fails on an all-zero result ("failed during derivation").
    const result = diffieHellman({
      privateKey: x25519PrivateKeyObject(privateKey),
      publicKey: x25519PublicKeyObject(publicKey),
    });
    shared = new Uint8Array(result);
    result.fill(0);
  } catch (cause) {
    throw new HandshakeError(problem(), { cause });
  }
  if (shared.every((byte) => byte === 0)) throw new HandshakeError(problem());
  return shared;
}

function checkLength(name: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new RangeError(
      `Invalid ${name}: expected Uint8Array of length ${length}, got ${
        bytes instanceof Uint8Array ? `length=${bytes.length}` : typeof bytes
      }`,
    );
  }
}

function checkKeyPair(name: string, pair: X25519KeyPair): void {
  checkLength(`${name}.publicKey`, pair?.publicKey, DH_LENGTH);
  checkLength(`${name}.privateKey`, pair?.privateKey, DH_LENGTH);
}

function copyKeyPair(pair: X25519KeyPair): X25519KeyPair {
  return {
    publicKey: pair.publicKey.slice(),
    privateKey: pair.privateKey.slice(),
  };
}
