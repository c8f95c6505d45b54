/**
 * AES-256-GCM through the platform's OpenSSL 3 `libcrypto`, called with
 * Deno's FFI (`Deno.dlopen`): the `"openssl"` backend of `_aes_gcm.ts`.
 * Loaded once, on first use, and only when `--allow-ffi` is granted and a
 * library loads; otherwise {@linkcode openSsl} returns `undefined` and the
 * other backends serve.
 *
 * One `EVP_CIPHER_CTX` per key and direction, set up with the key once (the
 * key schedule and GHASH key stay in the context); each message only sets
 * the 12-byte IV. Every length is checked before a pointer is passed; the
 * tag is checked by OpenSSL's `EVP_DecryptFinal_ex` (constant time).
 *
 * Private to `lib/secure/`.
 *
 * @module
 */

/** Library names tried, in order. */
const LIBRARY_NAMES: Record<string, string[]> = {
  linux: ["libcrypto.so.3", "libcrypto.so"],
  darwin: [
    "libcrypto.3.dylib",
    "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
  ],
  windows: ["libcrypto-3-x64.dll", "libcrypto-3.dll"],
};

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;

type Library = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
const KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
/** The largest length one `EVP_*Update` call takes (an `int`). */
const MAX_UPDATE = 0x7fff_ffff;

/** An OpenSSL failure that is not a tag mismatch (a bug or a broken library). */
export class OpenSslError extends Error {
  override name = "OpenSslError";
}

/** One key's two contexts, with the key set. */
export interface OpenSslAesGcmKey {
  /** Seals `plaintext` into `out` (`plaintext.length + 16` bytes): ciphertext, then tag. */
  seal(iv: Uint8Array, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** Opens `ciphertext` (tag at the end) into `out` (`ciphertext.length - 16` bytes); false when the tag does not verify. */
  open(iv: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array, out: Uint8Array): boolean;
}

/** What {@linkcode openSsl} returns once the library is loaded. */
export interface OpenSsl {
  /** The library file that loaded. */
  readonly path: string;
  /** Sets up `key` (32 bytes) for both directions. */
  key(key: Uint8Array): OpenSslAesGcmKey;
}

let loaded: OpenSsl | null | undefined;

/**
 * The loaded library, or `undefined` when FFI is not granted (it is never
 * prompted for) or no library loads. Tried once per process.
 */
export function openSsl(): OpenSsl | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

function load(): OpenSsl | null {
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  } catch {
    return null;
  }
  for (const path of LIBRARY_NAMES[Deno.build.os] ?? []) {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch {
      continue;
    }
    const cipher = lib.symbols.EVP_aes_256_gcm();
    if (cipher === null) {
      lib.close();
      continue;
    }
    return new Loaded(path, lib.symbols, cipher);
  }
  return null;
}

class Loaded implements OpenSsl {
  readonly path: string;
  readonly #lib: Library;
  readonly #cipher: Deno.PointerObject;
  readonly #contexts: FinalizationRegistry<Deno.PointerObject>;

  constructor(path: string, lib: Library, cipher: Deno.PointerObject) {
    this.path = path;
    this.#lib = lib;
    this.#cipher = cipher;
    this.#contexts = new FinalizationRegistry((ctx) => lib.EVP_CIPHER_CTX_free(ctx));
  }

  key(key: Uint8Array): OpenSslAesGcmKey {
    if (key.length !== KEY_LENGTH) {
      throw new OpenSslError(`AES-256-GCM key of ${key.length} bytes, not ${KEY_LENGTH}`);
    }
    const lib = this.#lib;
    const make = (encrypt: boolean) => {
      const ctx = lib.EVP_CIPHER_CTX_new();
      if (ctx === null) throw new OpenSslError("EVP_CIPHER_CTX_new failed");
      const init = encrypt ? lib.EVP_EncryptInit_ex : lib.EVP_DecryptInit_ex;
      if (init(ctx, this.#cipher, null, key, null) !== 1) {
        lib.EVP_CIPHER_CTX_free(ctx);
        throw new OpenSslError("EVP_CipherInit_ex with the key failed");
      }
      return ctx;
    };
    const state = new OpenSslKey(lib, make(true), make(false));
    this.#contexts.register(state, state.encryptContext);
    this.#contexts.register(state, state.decryptContext);
    return state;
  }
}

class OpenSslKey implements OpenSslAesGcmKey {
  readonly encryptContext: Deno.PointerObject;
  readonly decryptContext: Deno.PointerObject;
  readonly #lib: Library;
  readonly #written = new Int32Array(1);

  constructor(lib: Library, encrypt: Deno.PointerObject, decrypt: Deno.PointerObject) {
    this.#lib = lib;
    this.encryptContext = encrypt;
    this.decryptContext = decrypt;
  }

  seal(iv: Uint8Array, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const n = plaintext.length;
    check(iv.length === IV_LENGTH, "IV length");
    check(ad.length <= MAX_UPDATE && n <= MAX_UPDATE, "length");
    check(out.length === n + TAG_LENGTH, "output length");
    const lib = this.#lib, ctx = this.encryptContext, written = this.#written;
    ok(lib.EVP_EncryptInit_ex(ctx, null, null, null, iv), "EVP_EncryptInit_ex");
    if (ad.length > 0) {
      ok(lib.EVP_EncryptUpdate(ctx, null, written, ad, ad.length), "EVP_EncryptUpdate (AD)");
    }
    if (n > 0) {
      ok(lib.EVP_EncryptUpdate(ctx, out, written, plaintext, n), "EVP_EncryptUpdate");
      check(written[0] === n, "EVP_EncryptUpdate wrote a partial block");
    }
    const tag = out.subarray(n);
    ok(lib.EVP_EncryptFinal_ex(ctx, tag, written), "EVP_EncryptFinal_ex");
    check(written[0] === 0, "EVP_EncryptFinal_ex wrote data");
    ok(lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LENGTH, tag), "GET_TAG");
  }

  open(iv: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array, out: Uint8Array): boolean {
    const n = ciphertext.length - TAG_LENGTH;
    check(iv.length === IV_LENGTH, "IV length");
    check(n >= 0 && ad.length <= MAX_UPDATE && n <= MAX_UPDATE, "length");
    check(out.length === n, "output length");
    const lib = this.#lib, ctx = this.decryptContext, written = this.#written;
    ok(lib.EVP_DecryptInit_ex(ctx, null, null, null, iv), "EVP_DecryptInit_ex");
    if (ad.length > 0) {
      ok(lib.EVP_DecryptUpdate(ctx, null, written, ad, ad.length), "EVP_DecryptUpdate (AD)");
    }
    if (n > 0) {
      ok(
        lib.EVP_DecryptUpdate(ctx, out, written, ciphertext.subarray(0, n), n),
        "EVP_DecryptUpdate",
      );
      check(written[0] === n, "EVP_DecryptUpdate wrote a partial block");
    }
    // SET_TAG only reads the 16 bytes; a copy keeps the caller's bytes untouched.
    const tag = ciphertext.slice(n);
    ok(lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LENGTH, tag), "SET_TAG");
    // Writes nothing for GCM; `out` past its end is never touched (n bytes were written).
    const verified = lib.EVP_DecryptFinal_ex(ctx, out.subarray(n), written) === 1;
    if (!verified) out.fill(0);
    return verified;
  }
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new OpenSslError(`AES-256-GCM through OpenSSL: bad ${what}`);
}

function ok(result: number, call: string): void {
  if (result !== 1) throw new OpenSslError(`${call} failed (${result})`);
}
