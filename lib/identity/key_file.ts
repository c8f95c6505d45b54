/**
 * Key files: an identity's secret key on disk.
 *
 * ## Format
 *
 * A key file is exactly 72 bytes, with no text encoding:
 *
 * | offset | length | content |
 * | --- | --- | --- |
 * | 0 | 8 | magic: ASCII `carrier` followed by the format version byte `0x01` |
 * | 8 | 32 | the Ed25519 secret key (the RFC 8032 seed) |
 * | 40 | 32 | the Ed25519 public key derived from that seed |
 *
 * The public key is redundant on purpose: loading derives it again from the
 * seed and refuses the file if the two differ, which catches corruption and
 * files spliced from two identities.
 *
 * ## Permissions
 *
 * {@linkcode saveKeyFile} creates the file with mode `0o600` and, because
 * the mode given at creation is filtered by the umask and ignored for an
 * existing file, also sets `0o600` explicitly before it writes the secret.
 * On Windows modes do not apply and the file gets the folder's ACL.
 * {@linkcode loadKeyFile} does not check the mode: a key file that group or
 * others can read is loaded like any other, without a warning.
 *
 * @module
 */

import { KeyFileError } from "../errors.ts";
import { bytesEqual, toHex } from "../_bytes.ts";
import { type Identity, identityFromSecretKey } from "./keys.ts";

/**
 * The 8 bytes a key file starts with: ASCII `carrier` and version byte 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, saveKeyFile } from "@carrier/p2p";
 * import { KEY_FILE_MAGIC } from "@carrier/p2p/protocol";
 * const path = await Deno.makeTempFile();
 * await saveKeyFile(path, generateIdentitySync({ difficulty: 0 }), { overwrite: true });
 * const bytes = await Deno.readFile(path);
 * await Deno.remove(path);
 * assert.deepEqual(bytes.subarray(0, KEY_FILE_MAGIC.length), KEY_FILE_MAGIC);
 * ```
 */
export const KEY_FILE_MAGIC: Uint8Array = Uint8Array.of(
  ...new TextEncoder().encode("carrier"),
  1,
);
/** The magic the code reads and writes: a private copy, out of reach of callers. */
const MAGIC: Uint8Array = KEY_FILE_MAGIC.slice();

/**
 * The size of a key file in bytes: magic, seed and public key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, saveKeyFile } from "@carrier/p2p";
 * import { KEY_FILE_SIZE } from "@carrier/p2p/protocol";
 * const path = await Deno.makeTempFile();
 * await saveKeyFile(path, generateIdentitySync({ difficulty: 0 }), { overwrite: true });
 * const { size } = await Deno.stat(path);
 * await Deno.remove(path);
 * assert.equal(size, KEY_FILE_SIZE);
 * ```
 */
export const KEY_FILE_SIZE = 72;

const MAGIC_LENGTH = 8;
const SEED_OFFSET = 8;
const PUBLIC_KEY_OFFSET = 40;

/**
 * Options for {@linkcode saveKeyFile}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   generateIdentitySync,
 *   KeyFileError,
 *   saveKeyFile,
 *   type SaveKeyFileOptions,
 * } from "@carrier/p2p";
 * const path = await Deno.makeTempFile(); // the file exists already
 * const identity = generateIdentitySync({ difficulty: 0 });
 * await assert.rejects(saveKeyFile(path, identity), KeyFileError);
 * const options: SaveKeyFileOptions = { overwrite: true };
 * await saveKeyFile(path, identity, options);
 * await Deno.remove(path);
 * ```
 */
export interface SaveKeyFileOptions {
  /**
   * Replace a file that already exists at the path. Without it, saving over
   * an existing file fails, so a key is never lost by accident.
   *
   * @default {false}
   */
  overwrite?: boolean;
  /**
   * Aborts the save before it starts writing.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options for {@linkcode loadKeyFile}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKeyFile, type LoadKeyFileOptions } from "@carrier/p2p";
 * const options: LoadKeyFileOptions = { signal: AbortSignal.abort(new Error("cancelled")) };
 * await assert.rejects(loadKeyFile("node.key", options), { message: "cancelled" });
 * ```
 */
export interface LoadKeyFileOptions {
  /**
   * Aborts the load before it starts reading.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Writes an identity to a key file (format in the module doc) with mode
 * `0o600`, and flushes it to disk.
 *
 * A new file is created with mode `0o600`. With `overwrite: true` an
 * existing file is switched to `0o600` before it is truncated and the secret
 * is written into it. The write is not atomic: a crash halfway leaves a
 * truncated file, which {@linkcode loadKeyFile} reports as such.
 *
 * @param path Where to write.
 * @param identity The identity to save.
 * @throws {KeyFileError} `Cannot save key file /p/node.key: already exists (pass overwrite: true to replace it)`,
 *   or any OS error (as `cause`), or an identity whose public key does not
 *   match its secret key.
 * @throws The signal's reason when `options.signal` is aborted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, loadKeyFile, saveKeyFile } from "@carrier/p2p";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const identity = generateIdentitySync({ difficulty: 0 });
 *   await saveKeyFile(`${dir}/node.key`, identity);
 *   const loaded = await loadKeyFile(`${dir}/node.key`);
 *   assert.equal(loaded.address, identity.address);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function saveKeyFile(
  path: string | URL,
  identity: Identity,
  options: SaveKeyFileOptions = {},
): Promise<void> {
  const { overwrite = false, signal } = options;
  signal?.throwIfAborted();
  const shown = showPath(path);
  const fail = (why: string, cause?: unknown): KeyFileError =>
    new KeyFileError(
      `Cannot save key file ${shown}: ${why}`,
      cause === undefined ? undefined : { cause },
    );

  let derived: Identity;
  try {
    derived = identityFromSecretKey(identity.secretKey);
  } catch (error) {
    throw fail((error as Error).message, error);
  }
  if (!bytesEqual(derived.publicKey, identity.publicKey)) {
    throw fail("the identity's public key does not match its secret key");
  }

  const contents = new Uint8Array(KEY_FILE_SIZE);
  contents.set(MAGIC, 0);
  contents.set(derived.secretKey, SEED_OFFSET);
  contents.set(derived.publicKey, PUBLIC_KEY_OFFSET);

  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, {
      write: true,
      mode: 0o600,
      ...(overwrite ? { create: true } : { createNew: true }),
    });
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
    if (overwrite) await file.truncate(0);
    let written = 0;
    while (written < contents.length) {
      written += await file.write(contents.subarray(written));
    }
    await file.syncData();
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw fail(
        "already exists (pass overwrite: true to replace it)",
        error,
      );
    }
    throw fail((error as Error).message, error);
  } finally {
    contents.fill(0);
    derived.secretKey.fill(0);
    file?.close();
  }
}

/**
 * Reads an identity from a key file (format in the module doc).
 *
 * It checks that the path is a regular file and has the right size with
 * `stat` before reading, and never reads more than 73 bytes, so pointing it
 * at a huge file, a FIFO or a device costs nothing. It does not check the static puzzle;
 * call `assertPuzzle(identity.publicKey, c1)` for that.
 *
 * Each failure is a {@linkcode KeyFileError} naming the path, with the OS
 * error as `cause` where there is one:
 *
 * - `Cannot load key file /p/node.key: not found`
 * - `…: not a regular file`
 * - `…: truncated: expected 72 bytes, got 40`
 * - `…: too large: expected 72 bytes, got 1048576`
 * - `…: bad magic: expected 6361727269657201 ("carrier\x01"), got 2d2d2d2d2d424547`
 * - `…: unsupported version 2 (expected 1)`
 * - `…: corrupt: the public key does not match the secret key`
 *
 * @param path The key file.
 * @returns The identity it holds.
 * @throws {KeyFileError} When the file is missing, unreadable, of the wrong
 *   size, not a key file or corrupt.
 * @throws The signal's reason when `options.signal` is aborted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyFileError, loadKeyFile } from "@carrier/p2p";
 * await assert.rejects(loadKeyFile("/nonexistent/node.key"), KeyFileError);
 * ```
 */
export async function loadKeyFile(
  path: string | URL,
  options: LoadKeyFileOptions = {},
): Promise<Identity> {
  options.signal?.throwIfAborted();
  const shown = showPath(path);
  const fail = (why: string, cause?: unknown): KeyFileError =>
    new KeyFileError(
      `Cannot load key file ${shown}: ${why}`,
      cause === undefined ? undefined : { cause },
    );

  // One byte more than a key file, to tell "exactly 72" from "longer".
  const buffer = new Uint8Array(KEY_FILE_SIZE + 1);
  let file: Deno.FsFile | undefined;
  try {
    let length = 0;
    try {
      // Stat the path before opening it: opening a FIFO would block.
      if (!(await Deno.stat(path)).isFile) throw fail("not a regular file");
      file = await Deno.open(path, { read: true });
      const stat = await file.stat();
      if (!stat.isFile) throw fail("not a regular file");
      if (stat.size < KEY_FILE_SIZE) {
        throw fail(
          `truncated: expected ${KEY_FILE_SIZE} bytes, got ${stat.size}`,
        );
      }
      if (stat.size > KEY_FILE_SIZE) {
        throw fail(
          `too large: expected ${KEY_FILE_SIZE} bytes, got ${stat.size}`,
        );
      }
      while (length < buffer.length) {
        const n = await file.read(buffer.subarray(length));
        if (n === null) break;
        length += n;
      }
    } catch (error) {
      if (error instanceof KeyFileError) throw error;
      if (error instanceof Deno.errors.NotFound) throw fail("not found", error);
      throw fail((error as Error).message, error);
    }
    // The size changed between stat and read.
    if (length < KEY_FILE_SIZE) {
      throw fail(`truncated: expected ${KEY_FILE_SIZE} bytes, got ${length}`);
    }
    if (length > KEY_FILE_SIZE) {
      throw fail(`too large: expected ${KEY_FILE_SIZE} bytes, got more`);
    }

    const magic = buffer.subarray(0, MAGIC_LENGTH);
    if (!bytesEqual(magic, MAGIC)) {
      const name = MAGIC.subarray(0, MAGIC_LENGTH - 1);
      if (bytesEqual(magic.subarray(0, MAGIC_LENGTH - 1), name)) {
        throw fail(
          `unsupported version ${magic[MAGIC_LENGTH - 1]} (expected ${MAGIC[MAGIC_LENGTH - 1]})`,
        );
      }
      throw fail(
        `bad magic: expected ${toHex(MAGIC)} ("carrier\\x01"), got ${toHex(magic)}`,
      );
    }

    const identity = identityFromSecretKey(
      buffer.subarray(SEED_OFFSET, PUBLIC_KEY_OFFSET),
    );
    const stored = buffer.subarray(PUBLIC_KEY_OFFSET, KEY_FILE_SIZE);
    if (!bytesEqual(identity.publicKey, stored)) {
      throw fail("corrupt: the public key does not match the secret key");
    }
    return identity;
  } finally {
    buffer.fill(0);
    file?.close();
  }
}

/** The path as shown in messages. */
function showPath(path: string | URL): string {
  return typeof path === "string" ? path : path.href;
}
