/**
 * AES-256-GCM as the Noise `AESGCM` cipher functions use it: 256-bit key,
 * 96-bit nonce made of 32 zero bits and the 64-bit big-endian counter, 128-bit
 * tag appended to the ciphertext. Four implementations behind one interface:
 * OpenSSL's libcrypto through FFI (native, sync, on the calling thread, the
 * key schedule kept: `_openssl.ts`), WebCrypto (`crypto.subtle`, native,
 * async, on a worker thread), `node:crypto` (native, sync) and
 * `@noble/ciphers` (pure TypeScript, sync), plus an `auto` mode: OpenSSL
 * when it loads, else one of WebCrypto and `node:crypto` per message size.
 *
 * Private to `lib/secure/`; `noise.ts` re-exports the public part.
 *
 * @module
 */

import { gcm } from "@noble/ciphers/aes.js";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { ArgumentError } from "../errors.ts";
import { DecryptError } from "./errors.ts";
import { openSsl, type OpenSslAesGcmKey } from "./_openssl.ts";

/** Key length of AES-256, in bytes. */
export const KEY_LENGTH = 32;
/** Length of the AES-GCM authentication tag, in bytes. */
export const TAG_LENGTH = 16;
const MAX_COUNTER = 0xffff_ffff_ffff_ffffn;
const EMPTY = new Uint8Array(0);

/**
 * Which AES-GCM implementation a key uses.
 *
 * - `"webcrypto"`: `crypto.subtle` (native AES-NI; every call is an async op
 *   that runs on a worker thread, so several calls run in parallel).
 * - `"node"`: `node:crypto` `createCipheriv` (native, synchronous: it runs
 *   on the calling thread with no thread hop).
 * - `"noble"`: `@noble/ciphers` (pure TypeScript, synchronous).
 * - `"openssl"`: the platform's OpenSSL 3 `libcrypto` through Deno's FFI
 *   (synchronous, on the calling thread; needs `--allow-ffi` and the
 *   library, else creating a key throws).
 * - `"auto"`: `openssl` when FFI is granted and the library loads; else
 *   `node` below {@linkcode AES_GCM_WEBCRYPTO_THRESHOLD} bytes of
 *   plaintext, WebCrypto from there up. All produce the same bytes.
 */
export type AesGcmBackend = "auto" | "webcrypto" | "node" | "noble" | "openssl";

/**
 * Which implementation the `"auto"` backend uses in this process:
 * `"openssl"` when FFI is granted and OpenSSL 3's libcrypto loads, else
 * `"webcrypto+node"` (see {@linkcode AesGcmBackend}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aesGcmImplementation } from "@carrier/p2p";
 * assert.ok(["openssl", "webcrypto+node"].includes(aesGcmImplementation()));
 * ```
 */
export function aesGcmImplementation(): "openssl" | "webcrypto+node" {
  return openSsl() === undefined ? "webcrypto+node" : "openssl";
}

/**
 * Plaintext size, in bytes, from which the `"auto"` backend hands a message to
 * WebCrypto instead of `node:crypto`: messages under 4 KiB stay on the
 * calling thread.
 *
 * Measured with `bench/cipher_bench.ts` and interleaved timing loops (Deno
 * 2.9.6, x86_64 AMD EPYC with AES-NI, a 2-vCPU Firecracker VM shared with
 * other jobs; µs per encrypt call, range of per-run medians; decrypt is the
 * same within noise):
 *
 * | plaintext | noble      | node:crypto | WebCrypto, other vCPU idle | WebCrypto, other vCPU busy |
 * | --------- | ---------- | ----------- | -------------------------- | -------------------------- |
 * | 0 B       | 17–23      | 3–7         | 77–92                      | 12–17                      |
 * | 64 B      | 19–31      | 3–4         | 81–101                     | 14–17                      |
 * | 256 B     | 22–36      | 5–11        | 64–83                      | 17–25                      |
 * | 1 KiB     | 48–77      | 9–11        | 56–105                     | 15–19                      |
 * | 4 KiB     | 144–218    | 21–23       | 89–94                      | 23–37                      |
 * | 16 KiB    | 375–625    | 78–80       | 78–131                     | 31–54                      |
 * | 64 KiB    | 1190–2300  | 295–445     | 129–205                    | 104–135                    |
 *
 * noble costs about 17 µs per call (it re-expands the key and rebuilds its
 * GHASH table for every nonce) plus about 35 ns per byte. `node:crypto` costs
 * about 3 µs per call (it builds a Node.js stream object per call) plus about
 * 4.5 ns per byte, on the calling thread. WebCrypto costs about 1.3 ns per
 * byte plus a round trip to a worker thread, which is 12–20 µs while the
 * cores are awake and 60–90 µs when the worker has to wake an idle vCPU; its
 * calls run in parallel on the worker threads (64 KiB encryptions, 8 in
 * flight: 67–87 µs each against 129–153 µs one at a time). Below 4 KiB,
 * `node:crypto` is about as fast as WebCrypto on awake cores and several
 * times faster on idle ones (a 2 KiB request → ACK round trip over loopback
 * TCP: 120 µs against 320 µs); from 4 KiB up, bulk data takes WebCrypto's
 * throughput off the event loop. Re-measure on other platforms (bare metal,
 * aarch64).
 */
export const AES_GCM_WEBCRYPTO_THRESHOLD = 4096;

/** Per-call options of {@linkcode AesGcm}. */
export interface AesGcmCallOptions {
  /**
   * Associated data, authenticated but not encrypted.
   *
   * @default {new Uint8Array(0)}
   */
  ad?: Uint8Array;
}

/** Options of {@linkcode createAesGcm}. */
export interface AesGcmOptions {
  /**
   * Which implementation to use.
   *
   * @default {"auto"}
   */
  backend?: AesGcmBackend;
}

/**
 * One AES-256-GCM key with the Noise nonce format. The nonce is the 64-bit
 * Noise counter `n`; the 12-byte GCM nonce is 4 zero bytes followed by `n`
 * big-endian. Ciphertexts are `ENCRYPT(plaintext) || tag` (16 bytes).
 */
export interface AesGcm {
  /** The implementation this key uses. */
  readonly backend: AesGcmBackend;
  /** Encrypts `plaintext` under counter `nonce`; resolves to ciphertext and tag. */
  encrypt(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array>;
  /**
   * Decrypts and authenticates `ciphertext` (tag included) under counter
   * `nonce`. Rejects with {@linkcode DecryptError} when authentication fails.
   */
  decrypt(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array>;
}

/**
 * Creates an AES-256-GCM key for Noise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createAesGcm } from "./noise.ts";
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const web = createAesGcm(key, { backend: "webcrypto" });
 * const noble = createAesGcm(key, { backend: "noble" });
 * const a = await web.encrypt(7n, new TextEncoder().encode("hi"));
 * const b = await noble.encrypt(7n, new TextEncoder().encode("hi"));
 * assert.deepEqual(a, b);
 * assert.equal(a.length, 2 + 16);
 * ```
 *
 * @throws {ArgumentError} If `key` is not 32 bytes.
 */
export function createAesGcm(
  key: Uint8Array,
  options: AesGcmOptions = {},
): AesGcm {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
    throw new ArgumentError(
      `Cannot create AES-256-GCM key: expected Uint8Array of length ${KEY_LENGTH}, got length=${
        (key as Uint8Array | undefined)?.length
      }`,
    );
  }
  const backend = options.backend ?? "auto";
  switch (backend) {
    case "noble":
      return new NobleAesGcm(key);
    case "node":
      return new NodeAesGcm(key);
    case "webcrypto":
      return new WebCryptoAesGcm(key);
    case "openssl":
      return new OpenSslAesGcm(key);
    case "auto":
      return openSsl() === undefined ? new AutoAesGcm(key) : new OpenSslAesGcm(key);
    default:
      throw new ArgumentError(
        `Cannot create AES-256-GCM key: unknown backend "${backend}"`,
      );
  }
}

/**
 * The synchronous side of the backends that have one (`node`, `noble`, and
 * `auto` below its threshold). Private to `lib/secure/`: the cipher state
 * uses it to skip promises when nothing else is in flight.
 */
export interface SyncAesGcm {
  /** As {@linkcode AesGcm.encrypt}, returning the ciphertext or throwing. */
  encryptSync(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array;
  /** As {@linkcode AesGcm.decrypt}, returning the plaintext or throwing. */
  decryptSync(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array;
}

/**
 * The synchronous implementation `aead` uses for a message of
 * `plaintextLength` bytes, or `undefined` when it uses WebCrypto.
 */
export function syncAesGcm(
  aead: AesGcm,
  plaintextLength: number,
): SyncAesGcm | undefined {
  if (aead instanceof AutoAesGcm) return aead.syncFor(plaintextLength);
  if (aead instanceof SyncBackedAesGcm) return aead;
  return undefined;
}

/** The 12-byte GCM nonce for Noise counter `n`: 4 zero bytes, then `n` big-endian. */
function gcmNonce(n: bigint): Uint8Array<ArrayBuffer> {
  if (typeof n !== "bigint" || n < 0n || n > MAX_COUNTER) {
    throw new ArgumentError(
      `Cannot use nonce ${n}: expected a bigint in [0, 2^64 - 1]`,
    );
  }
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, n, false);
  return nonce;
}

function tooShort(ciphertext: Uint8Array, nonce: bigint): DecryptError {
  return new DecryptError(
    `Cannot decrypt at nonce ${nonce}: ciphertext length ${ciphertext.length} is shorter than the ${TAG_LENGTH}-byte tag`,
  );
}

function authFailed(nonce: bigint, cause: unknown): DecryptError {
  return new DecryptError(
    `Cannot decrypt at nonce ${nonce}: authentication failed (tampered, replayed, reordered or wrong associated data)`,
    { cause },
  );
}

/** A synchronous backend's promise-returning side: the sync call, settled. */
abstract class SyncBackedAesGcm implements AesGcm, SyncAesGcm {
  abstract readonly backend: "noble" | "node" | "openssl";
  /** The 32-byte key (a copy of the caller's). */
  protected readonly key: Uint8Array;

  constructor(key: Uint8Array) {
    this.key = key.slice();
  }

  abstract encryptSync(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array;
  abstract decryptSync(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array;

  encrypt(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.encryptSync(nonce, plaintext, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  decrypt(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.decryptSync(nonce, ciphertext, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

class NobleAesGcm extends SyncBackedAesGcm {
  readonly backend = "noble" as const;

  encryptSync(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    return gcm(this.key, gcmNonce(nonce), options?.ad ?? EMPTY).encrypt(
      plaintext,
    );
  }

  decryptSync(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    const iv = gcmNonce(nonce);
    if (ciphertext.length < TAG_LENGTH) throw tooShort(ciphertext, nonce);
    try {
      return gcm(this.key, iv, options?.ad ?? EMPTY).decrypt(ciphertext);
    } catch (cause) {
      throw authFailed(nonce, cause);
    }
  }
}

class OpenSslAesGcm extends SyncBackedAesGcm {
  readonly backend = "openssl" as const;
  readonly #key: OpenSslAesGcmKey;

  constructor(key: Uint8Array) {
    super(key);
    const lib = openSsl();
    if (lib === undefined) {
      throw new ArgumentError(
        "Cannot create an AES-256-GCM key with OpenSSL: FFI is not granted (--allow-ffi) or no libcrypto 3 loads",
      );
    }
    this.#key = lib.key(this.key);
    this.key.fill(0); // kept by OpenSSL's contexts only
  }

  encryptSync(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    const iv = gcmNonce(nonce);
    const out = new Uint8Array(plaintext.length + TAG_LENGTH);
    this.#key.seal(iv, options?.ad ?? EMPTY, plaintext, out);
    return out;
  }

  decryptSync(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    const iv = gcmNonce(nonce);
    if (ciphertext.length < TAG_LENGTH) throw tooShort(ciphertext, nonce);
    const out = new Uint8Array(ciphertext.length - TAG_LENGTH);
    if (!this.#key.open(iv, options?.ad ?? EMPTY, ciphertext, out)) {
      throw authFailed(nonce, undefined);
    }
    return out;
  }
}

const NODE_ALGORITHM = "aes-256-gcm";

class NodeAesGcm extends SyncBackedAesGcm {
  readonly backend = "node" as const;

  encryptSync(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    const cipher = createCipheriv(NODE_ALGORITHM, this.key, gcmNonce(nonce));
    const ad = options?.ad;
    if (ad !== undefined && ad.length > 0) cipher.setAAD(ad);
    const body = cipher.update(plaintext);
    const rest = cipher.final();
    const out = new Uint8Array(plaintext.length + TAG_LENGTH);
    out.set(body);
    if (rest.length > 0) out.set(rest, body.length);
    out.set(cipher.getAuthTag(), plaintext.length);
    return out;
  }

  decryptSync(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Uint8Array {
    const iv = gcmNonce(nonce);
    if (ciphertext.length < TAG_LENGTH) throw tooShort(ciphertext, nonce);
    const split = ciphertext.length - TAG_LENGTH;
    let body: Uint8Array;
    let rest: Uint8Array;
    try {
      const decipher = createDecipheriv(NODE_ALGORITHM, this.key, iv);
      decipher.setAuthTag(ciphertext.subarray(split));
      const ad = options?.ad;
      if (ad !== undefined && ad.length > 0) decipher.setAAD(ad);
      body = decipher.update(ciphertext.subarray(0, split));
      rest = decipher.final(); // throws when the tag does not verify
    } catch (cause) {
      throw authFailed(nonce, cause);
    }
    if (rest.length === 0 && body.length === split) return ownedBytes(body);
    const out = new Uint8Array(split);
    out.set(body);
    out.set(rest, body.length);
    return out;
  }
}

/**
 * `bytes` (a Node.js `Buffer`) as a plain `Uint8Array` the caller owns: a
 * view when it spans its whole buffer, else a copy (a pooled `Buffer` shares
 * its memory with others).
 */
function ownedBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? new Uint8Array(bytes.buffer, 0, bytes.length)
    : bytes.slice();
}

class WebCryptoAesGcm implements AesGcm {
  readonly backend = "webcrypto" as const;
  #rawKey: Uint8Array<ArrayBuffer> | undefined;
  #key: Promise<CryptoKey> | undefined;
  #imported: CryptoKey | undefined;

  constructor(key: Uint8Array) {
    this.#rawKey = new Uint8Array(key);
  }

  /** The imported key: the key itself once imported, else a promise of it. */
  #cryptoKey(): CryptoKey | Promise<CryptoKey> {
    if (this.#imported !== undefined) return this.#imported;
    if (this.#key === undefined) {
      this.#key = crypto.subtle.importKey(
        "raw",
        this.#rawKey!,
        { name: "AES-GCM" },
        false,
        ["encrypt", "decrypt"],
      );
      this.#key.then((key) => this.#imported = key, noop);
      this.#rawKey!.fill(0);
      this.#rawKey = undefined;
    }
    return this.#key;
  }

  async encrypt(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    const params: AesGcmParams = {
      name: "AES-GCM",
      iv: gcmNonce(nonce),
      additionalData: asBufferSource(options?.ad ?? EMPTY),
      tagLength: TAG_LENGTH * 8,
    };
    const key = this.#cryptoKey();
    const sealed = await crypto.subtle.encrypt(
      params,
      key instanceof CryptoKey ? key : await key,
      asBufferSource(plaintext),
    );
    return new Uint8Array(sealed);
  }

  async decrypt(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    const params: AesGcmParams = {
      name: "AES-GCM",
      iv: gcmNonce(nonce),
      additionalData: asBufferSource(options?.ad ?? EMPTY),
      tagLength: TAG_LENGTH * 8,
    };
    if (ciphertext.length < TAG_LENGTH) throw tooShort(ciphertext, nonce);
    const cryptoKey = this.#cryptoKey();
    const key = cryptoKey instanceof CryptoKey ? cryptoKey : await cryptoKey;
    let opened: ArrayBuffer;
    try {
      opened = await crypto.subtle.decrypt(
        params,
        key,
        asBufferSource(ciphertext),
      );
    } catch (cause) {
      throw authFailed(nonce, cause);
    }
    return new Uint8Array(opened);
  }
}

class AutoAesGcm implements AesGcm {
  readonly backend = "auto" as const;
  #node: NodeAesGcm;
  #web: WebCryptoAesGcm;

  constructor(key: Uint8Array) {
    this.#node = new NodeAesGcm(key);
    this.#web = new WebCryptoAesGcm(key);
  }

  syncFor(plaintextLength: number): SyncAesGcm | undefined {
    return plaintextLength < AES_GCM_WEBCRYPTO_THRESHOLD ? this.#node : undefined;
  }

  encrypt(
    nonce: bigint,
    plaintext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    return plaintext.length < AES_GCM_WEBCRYPTO_THRESHOLD
      ? this.#node.encrypt(nonce, plaintext, options)
      : this.#web.encrypt(nonce, plaintext, options);
  }

  decrypt(
    nonce: bigint,
    ciphertext: Uint8Array,
    options?: AesGcmCallOptions,
  ): Promise<Uint8Array> {
    return ciphertext.length - TAG_LENGTH < AES_GCM_WEBCRYPTO_THRESHOLD
      ? this.#node.decrypt(nonce, ciphertext, options)
      : this.#web.decrypt(nonce, ciphertext, options);
  }
}

/**
 * WebCrypto's typings want `ArrayBuffer`-backed views; a view over a
 * `SharedArrayBuffer` is copied, any other is passed through.
 */
function asBufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

function noop(): void {}
