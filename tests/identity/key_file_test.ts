import assert from "node:assert/strict";
import { KeyFileError } from "../../lib/errors.ts";
import {
  KEY_FILE_MAGIC,
  KEY_FILE_SIZE,
  loadKeyFile,
  saveKeyFile,
} from "../../lib/identity/key_file.ts";
import {
  generateIdentitySync,
  type Identity,
  identityFromSecretKey,
} from "../../lib/identity/keys.ts";

const posix = Deno.build.os !== "windows";

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier_key_file_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The 72 bytes of a valid key file for `identity`. */
function keyFileBytes(identity: Identity): Uint8Array {
  const bytes = new Uint8Array(KEY_FILE_SIZE);
  bytes.set(KEY_FILE_MAGIC, 0);
  bytes.set(identity.secretKey, 8);
  bytes.set(identity.publicKey, 40);
  return bytes;
}

/** Asserts that loading `path` fails with a KeyFileError whose message is `message`. */
async function assertLoadFails(
  path: string,
  why: string,
  cause?: new (...args: never[]) => Error,
): Promise<void> {
  await assert.rejects(loadKeyFile(path), (error: unknown) => {
    assert.ok(error instanceof KeyFileError, `not a KeyFileError: ${error}`);
    assert.equal(error.name, "KeyFileError");
    assert.equal(error.message, `Cannot load key file ${path}: ${why}`);
    if (cause !== undefined) assert.ok(error.cause instanceof cause);
    return true;
  });
}

const identity = generateIdentitySync({ difficulty: 0 });

Deno.test("saveKeyFile and loadKeyFile round-trip an identity", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    await saveKeyFile(path, identity);
    const loaded = await loadKeyFile(path);
    assert.deepEqual(loaded.secretKey, identity.secretKey);
    assert.deepEqual(loaded.publicKey, identity.publicKey);
    assert.equal(loaded.address, identity.address);
    assert.deepEqual(loaded.nodeId, identity.nodeId);
  });
});

Deno.test("saveKeyFile writes magic, seed and public key in 72 bytes", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    await saveKeyFile(path, identity);
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, 72);
    assert.deepEqual(
      bytes.subarray(0, 8),
      new TextEncoder().encode("carrier\x01"),
    );
    assert.deepEqual(bytes.subarray(8, 40), identity.secretKey);
    assert.deepEqual(bytes.subarray(40, 72), identity.publicKey);
    // The identity passed in is left intact (saveKeyFile wipes only its own copies).
    assert.deepEqual(
      identityFromSecretKey(identity.secretKey).publicKey,
      identity.publicKey,
    );
  });
});

Deno.test("saveKeyFile accepts a file URL", async () => {
  await withTempDir(async (dir) => {
    const url = new URL(`file://${dir}/node.key`);
    await saveKeyFile(url, identity);
    assert.equal((await loadKeyFile(url)).address, identity.address);
  });
});

Deno.test({
  name: "saveKeyFile creates the file with mode 0600",
  ignore: !posix,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/node.key`;
      await saveKeyFile(path, identity);
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    });
  },
});

Deno.test("saveKeyFile refuses to overwrite an existing file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    await Deno.writeTextFile(path, "precious");
    const other = generateIdentitySync({ difficulty: 0 });
    await assert.rejects(saveKeyFile(path, other), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.equal(
        error.message,
        `Cannot save key file ${path}: already exists (pass overwrite: true to replace it)`,
      );
      assert.ok(error.cause instanceof Deno.errors.AlreadyExists);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), "precious");
  });
});

Deno.test("saveKeyFile with overwrite replaces the file and sets mode 0600", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    // Longer than a key file and readable by everyone.
    await Deno.writeTextFile(path, "x".repeat(500), { mode: 0o644 });
    if (posix) await Deno.chmod(path, 0o644);
    const other = generateIdentitySync({ difficulty: 0 });
    await saveKeyFile(path, other, { overwrite: true });
    assert.equal((await Deno.stat(path)).size, 72);
    if (posix) assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal((await loadKeyFile(path)).address, other.address);
  });
});

Deno.test("saveKeyFile reports an OS error with the path and cause", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/missing/node.key`;
    await assert.rejects(saveKeyFile(path, identity), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.ok(error.message.startsWith(`Cannot save key file ${path}: `));
      assert.ok(error.cause instanceof Deno.errors.NotFound);
      return true;
    });
  });
});

Deno.test("saveKeyFile refuses an identity whose keys do not match", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const other = generateIdentitySync({ difficulty: 0 });
    const spliced = { ...identity, publicKey: other.publicKey };
    await assert.rejects(
      saveKeyFile(path, spliced),
      new KeyFileError(
        `Cannot save key file ${path}: the identity's public key does not match its secret key`,
      ),
    );
    await assert.rejects(
      saveKeyFile(path, { ...identity, secretKey: new Uint8Array(3) }),
      new KeyFileError(
        `Cannot save key file ${path}: Invalid secret key: expected Uint8Array of length 32, got length=3`,
      ),
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});

Deno.test("saveKeyFile and loadKeyFile reject an aborted signal before touching the disk", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const reason = new Error("stop");
    const signal = AbortSignal.abort(reason);
    await assert.rejects(
      saveKeyFile(path, identity, { signal }),
      (e) => e === reason,
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await assert.rejects(loadKeyFile(path, { signal }), (e) => e === reason);
  });
});

Deno.test("loadKeyFile reports a missing file", async () => {
  await withTempDir(async (dir) => {
    await assertLoadFails(`${dir}/nope.key`, "not found", Deno.errors.NotFound);
  });
});

Deno.test("loadKeyFile reports a folder as not a regular file", async () => {
  await withTempDir(async (dir) => {
    await assertLoadFails(dir, "not a regular file");
  });
});

Deno.test("loadKeyFile reports a truncated file with expected and actual size", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    await Deno.writeFile(path, keyFileBytes(identity).subarray(0, 40));
    await assertLoadFails(path, "truncated: expected 72 bytes, got 40");
    await Deno.writeFile(path, new Uint8Array());
    await assertLoadFails(path, "truncated: expected 72 bytes, got 0");
    await Deno.writeFile(path, keyFileBytes(identity).subarray(0, 71));
    await assertLoadFails(path, "truncated: expected 72 bytes, got 71");
  });
});

Deno.test("loadKeyFile reports a file one byte too long", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const bytes = new Uint8Array(73);
    bytes.set(keyFileBytes(identity));
    await Deno.writeFile(path, bytes);
    await assertLoadFails(path, "too large: expected 72 bytes, got 73");
  });
});

Deno.test("loadKeyFile refuses an oversized file from its size alone", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/huge.key`;
    await Deno.writeFile(path, keyFileBytes(identity));
    // A sparse 1 GiB file: reading it would be slow and large.
    await Deno.truncate(path, 1 << 30);
    await assertLoadFails(path, "too large: expected 72 bytes, got 1073741824");
  });
});

Deno.test("loadKeyFile reports a bad magic", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const bytes = keyFileBytes(identity);
    bytes.set(new TextEncoder().encode("-----BEG"), 0);
    await Deno.writeFile(path, bytes);
    await assertLoadFails(
      path,
      'bad magic: expected 6361727269657201 ("carrier\\x01"), got 2d2d2d2d2d424547',
    );
  });
});

Deno.test("loadKeyFile reports an unsupported format version", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const bytes = keyFileBytes(identity);
    bytes[7] = 2;
    await Deno.writeFile(path, bytes);
    await assertLoadFails(path, "unsupported version 2 (expected 1)");
  });
});

Deno.test("loadKeyFile reports a public key that does not match the seed as corrupt", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/node.key`;
    const why = "corrupt: the public key does not match the secret key";
    const flippedKey = keyFileBytes(identity);
    flippedKey[71] ^= 0x01;
    await Deno.writeFile(path, flippedKey);
    await assertLoadFails(path, why);
    const flippedSeed = keyFileBytes(identity);
    flippedSeed[8] ^= 0x80;
    await Deno.writeFile(path, flippedSeed);
    await assertLoadFails(path, why);
  });
});

Deno.test({
  name: "loadKeyFile loads a key file that others can read, without complaint",
  ignore: !posix,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/node.key`;
      await Deno.writeFile(path, keyFileBytes(identity));
      await Deno.chmod(path, 0o644);
      assert.equal((await loadKeyFile(path)).address, identity.address);
    });
  },
});
