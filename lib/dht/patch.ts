/**
 * The two patch formats of the DHT's diff-based changes: a patch turns the
 * value at one version into the value at the next without sending it whole.
 *
 * - **JSON Patch** ([RFC 6902](https://www.rfc-editor.org/rfc/rfc6902)), for
 *   values that are UTF-8 JSON: a list of `add`, `remove`, `replace`, `move`,
 *   `copy` and `test` operations, each naming its target with a JSON Pointer
 *   ([RFC 6901](https://www.rfc-editor.org/rfc/rfc6901)): `""` is the whole
 *   document, `/a/0` member `a` then element 0, `~1` stands for `/` and `~0`
 *   for `~` in a member name, and `-` is the end of an array (for `add`). The
 *   operations apply in order to a copy, and all or nothing: if one fails
 *   (a missing target, a failed `test`), the patch fails and the document is
 *   unchanged. {@linkcode parseJsonPatch} reads a patch from a peer,
 *   {@linkcode applyJsonPatch} applies it to a JSON value and
 *   {@linkcode applyJsonPatchToBytes} to a DHT value (UTF-8 JSON bytes);
 *   {@linkcode diffJson} makes one.
 * - **Byte splices**, for binary values: each {@linkcode Splice} deletes
 *   `deleteCount` bytes at `offset` and inserts `insert` there, its offset
 *   counted in the value as the previous splice left it.
 *   {@linkcode applySplices} applies them, {@linkcode diffBytes} makes one.
 *
 * Patches come from untrusted peers, so every failure is a
 * {@linkcode PatchError} naming the operation (counted from 0) and its path,
 * and applying is bounded: at most {@linkcode MAX_PATCH_OPERATIONS}
 * operations, JSON nested at most {@linkcode MAX_JSON_DEPTH} deep, and a
 * result of at most `maxSize` bytes (by default
 * {@linkcode DEFAULT_MAX_PATCH_RESULT_SIZE}), checked as the patch applies so
 * that repeated `copy` operations cannot blow up memory; the values one patch
 * copies add up to at most `maxSize` too, so that copying and discarding
 * cannot make it cost more than a patch that only grows. A member named
 * `__proto__` or `constructor` is an ordinary own member: a patch never
 * changes a prototype.
 *
 * @example Both formats
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, applySplices, diffBytes, diffJson } from "@carrier/p2p";
 *
 * const before = { name: "carrier", tags: ["p2p"] };
 * const patch = diffJson(before, { name: "carrier", tags: ["p2p", "dht"] });
 * assert.deepEqual(patch, [{ op: "add", path: "/tags/1", value: "dht" }]);
 * const after = applyJsonPatch(before, patch);
 * assert.deepEqual(after, { name: "carrier", tags: ["p2p", "dht"] });
 *
 * const from = new TextEncoder().encode("hello world");
 * const to = new TextEncoder().encode("hello there world");
 * const splices = diffBytes(from, to); // [{ offset: 6, deleteCount: 0, insert: "there " }]
 * assert.equal(new TextDecoder().decode(applySplices(from, splices)), "hello there world");
 * ```
 *
 * @module
 */
import { concatBytes } from "../_bytes.ts";
import { PatchError } from "../errors.ts";

/**
 * Operations in one patch at most: JSON Patch operations or byte splices. A
 * peer's longer patch is refused; {@linkcode diffJson} never makes one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_PATCH_OPERATIONS, parseJsonPatch, PatchError } from "@carrier/p2p";
 * const tooLong = JSON.stringify(
 *   Array.from({ length: MAX_PATCH_OPERATIONS + 1 }, () => ({ op: "test", path: "", value: 1 })),
 * );
 * assert.throws(() => parseJsonPatch(tooLong), PatchError);
 * ```
 */
export const MAX_PATCH_OPERATIONS = 1024;

/**
 * Nesting of arrays and objects at most, in a JSON document being patched,
 * in a patch's values and in what a patch produces (`[[1]]` nests 2 deep).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, MAX_JSON_DEPTH, PatchError } from "@carrier/p2p";
 * let deep: unknown = 0;
 * for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
 * assert.throws(
 *   () => applyJsonPatch(null, [{ op: "replace", path: "", value: deep }]),
 *   PatchError,
 * );
 * ```
 */
export const MAX_JSON_DEPTH = 256;

/**
 * The default bound on what a patch produces, in bytes (64 MiB, the largest
 * frame carrier carries): the `maxSize` of {@linkcode applySplices} and
 * {@linkcode applyJsonPatchToBytes}, and the bound of
 * {@linkcode applyJsonPatch} (on the document's size as JSON text).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_PATCH_RESULT_SIZE } from "@carrier/p2p";
 * assert.equal(DEFAULT_MAX_PATCH_RESULT_SIZE, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MAX_PATCH_RESULT_SIZE = 64 * 1024 * 1024;

/**
 * One RFC 6902 JSON Patch operation. `path` and `from` are JSON Pointers
 * (RFC 6901).
 *
 * - `add`: sets member `path` (replacing it if present), inserts into an
 *   array at an index (`-`: at the end), or replaces the whole document
 *   (`""`). The parent must exist.
 * - `remove`: removes the member or element at `path`, which must exist.
 * - `replace`: replaces the value at `path`, which must exist.
 * - `move`: removes the value at `from` and adds it at `path`; `path` must
 *   not be inside `from`.
 * - `copy`: adds a copy of the value at `from` at `path`.
 * - `test`: fails the patch unless the value at `path` equals `value`
 *   (deep equality; member order does not count, element order does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, type JsonPatchOperation } from "@carrier/p2p";
 * const ops: JsonPatchOperation[] = [
 *   { op: "test", path: "/version", value: 1 },
 *   { op: "replace", path: "/version", value: 2 },
 *   { op: "add", path: "/peers/-", value: "node-b" },
 * ];
 * const next = applyJsonPatch({ version: 1, peers: ["node-a"] }, ops);
 * assert.deepEqual(next, { version: 2, peers: ["node-a", "node-b"] });
 * ```
 */
export type JsonPatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "replace"; path: string; value: unknown }
  | { op: "move"; from: string; path: string }
  | { op: "copy"; from: string; path: string }
  | { op: "test"; path: string; value: unknown };

/**
 * One byte splice: delete `deleteCount` bytes at `offset`, then insert
 * `insert` there. In a list of splices, each offset counts in the value as
 * the previous splice left it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applySplices, type Splice } from "@carrier/p2p";
 * const splices: Splice[] = [
 *   { offset: 0, deleteCount: 1, insert: new Uint8Array([9, 9]) }, // [1, 2, 3] → [9, 9, 2, 3]
 *   { offset: 4, deleteCount: 0, insert: new Uint8Array([4]) }, // → [9, 9, 2, 3, 4]
 * ];
 * const out = applySplices(new Uint8Array([1, 2, 3]), splices);
 * assert.deepEqual(out, new Uint8Array([9, 9, 2, 3, 4]));
 * ```
 */
export interface Splice {
  /** Where to splice: 0 to the value's length. */
  offset: number;
  /** Bytes to delete at `offset`: 0 to the bytes after it. */
  deleteCount: number;
  /** Bytes to insert at `offset` (possibly none). */
  insert: Uint8Array;
}

/**
 * Applies JSON Patch operations in order to a copy of `document`, which is
 * never changed. Atomic: when any operation fails (a missing target, an index
 * out of range, a `test` whose value differs, a value that is not JSON), it
 * throws and nothing is returned. The result is made of fresh arrays and
 * plain objects, sharing nothing with `document` or `operations`.
 *
 * @throws {PatchError} when an operation is malformed or does not apply, when
 * `document` is not a JSON value, when there are more than
 * {@linkcode MAX_PATCH_OPERATIONS} operations, when JSON nests deeper than
 * {@linkcode MAX_JSON_DEPTH}, or when the document, or the values copied in
 * all, would exceed {@linkcode DEFAULT_MAX_PATCH_RESULT_SIZE} bytes as JSON
 * text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, PatchError } from "@carrier/p2p";
 * const doc = { a: { b: "c" } };
 * const next = applyJsonPatch(doc, [
 *   { op: "move", from: "/a/b", path: "/d" },
 *   { op: "add", path: "/a~1b", value: [1] },
 * ]);
 * assert.deepEqual(next, { a: {}, d: "c", "a/b": [1] });
 * assert.equal(doc.a.b, "c"); // unchanged
 *
 * assert.throws(
 *   () => applyJsonPatch(doc, [{ op: "remove", path: "/a/x" }]),
 *   (err) => err instanceof PatchError && err.message.includes("operation 0"),
 * );
 * ```
 */
export function applyJsonPatch(
  document: unknown,
  operations: readonly JsonPatchOperation[],
): unknown {
  return applyOperations(document, operations, DEFAULT_MAX_PATCH_RESULT_SIZE);
}

/**
 * Parses a JSON Patch document (its text, as a peer sent it) and checks the
 * shape of every operation: an `op` among the six, a `path` (and for `move`
 * and `copy` a `from`) that is a JSON Pointer, a `value` where the operation
 * needs one, at most {@linkcode MAX_PATCH_OPERATIONS} operations. Members an
 * operation does not define are ignored (RFC 6902, section 4). Whether the
 * operations apply is known only when they are applied.
 *
 * @throws {PatchError} when `text` is not JSON or not a valid patch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJsonPatch, PatchError } from "@carrier/p2p";
 * const ops = parseJsonPatch('[{"op":"add","path":"/a","value":1,"note":"ignored"}]');
 * assert.deepEqual(ops, [{ op: "add", path: "/a", value: 1 }]);
 * assert.throws(
 *   () => parseJsonPatch('[{"op":"add","path":"/a"}]'),
 *   (err) => err instanceof PatchError && err.message.includes('"value"'),
 * );
 * ```
 */
export function parseJsonPatch(text: string): JsonPatchOperation[] {
  if (typeof text !== "string") {
    throw new PatchError(`Cannot parse JSON Patch: expected text, got ${typeName(text)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PatchError(`Cannot parse JSON Patch: not JSON (${messageOf(err)})`, { cause: err });
  }
  let where = "";
  try {
    const list = checkList(parsed);
    const out: JsonPatchOperation[] = [];
    for (let i = 0; i < list.length; i++) {
      where = `operation ${i}`;
      const { op } = checkOperation(list[i]);
      if ("value" in op) op.value = importJson(op.value, 0, '"value"').value;
      out.push(op);
    }
    return out;
  } catch (err) {
    throw toPatchError(
      where ? `Cannot parse JSON Patch: ${where}` : "Cannot parse JSON Patch",
      err,
    );
  }
}

/**
 * A JSON Patch that turns `from` into `to`, so that
 * `applyJsonPatch(from, diffJson(from, to))` deep-equals `to`. Objects are
 * compared member by member (`remove` for members only in `from`, `add` for
 * those only in `to`), arrays element by element with the surplus removed
 * from the end or added at it, and any other difference is a `replace`.
 * A diff longer than {@linkcode MAX_PATCH_OPERATIONS} becomes one `replace`
 * of the whole document. Equal values give `[]`. The values in the patch are
 * copies: later changes to `to` do not reach it.
 *
 * The patched document equals `to` as JSON, not always as text: an added
 * member comes last. Where bytes count (the SHA-256 a DHT patch carries),
 * take them from the patched value ({@linkcode applyJsonPatchToBytes}), not
 * from serializing `to`.
 *
 * @throws {PatchError} when `from` or `to` is not a JSON value or nests
 * deeper than {@linkcode MAX_JSON_DEPTH}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatch, diffJson } from "@carrier/p2p";
 * const from = { name: "a", peers: [1, 2, 3], old: true };
 * const to = { name: "b", peers: [1, 2], "x/y": null };
 * const patch = diffJson(from, to);
 * assert.deepEqual(patch, [
 *   { op: "remove", path: "/old" },
 *   { op: "replace", path: "/name", value: "b" },
 *   { op: "remove", path: "/peers/2" },
 *   { op: "add", path: "/x~1y", value: null },
 * ]);
 * assert.deepEqual(applyJsonPatch(from, patch), to);
 * ```
 */
export function diffJson(from: unknown, to: unknown): JsonPatchOperation[] {
  try {
    const a = importJson(from, 0, "from").value;
    const b = importJson(to, 0, "to").value;
    const ops: JsonPatchOperation[] = [];
    try {
      diffInto(ops, a, b, "");
    } catch (err) {
      if (err !== TOO_LONG) throw err;
      return [{ op: "replace", path: "", value: b }];
    }
    return ops;
  } catch (err) {
    throw toPatchError("Cannot diff JSON", err);
  }
}

/**
 * Applies byte splices in order, each offset counted in the value as the
 * previous splice left it, and returns the result in a new array (`value`
 * is never changed). Runs in time linear in the result, whatever the number
 * of splices (at most {@linkcode MAX_PATCH_OPERATIONS}).
 *
 * @param maxSize The largest result accepted, in bytes. @default {DEFAULT_MAX_PATCH_RESULT_SIZE}
 * @throws {PatchError} when a splice is malformed or out of range (an offset
 * past the end, a deletion running past it), when there are too many splices,
 * or when the result would exceed `maxSize`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applySplices, PatchError } from "@carrier/p2p";
 * const value = new Uint8Array([1, 2, 3, 4]);
 * const out = applySplices(value, [{ offset: 1, deleteCount: 2, insert: new Uint8Array([7]) }]);
 * assert.deepEqual(out, new Uint8Array([1, 7, 4]));
 * assert.deepEqual(value, new Uint8Array([1, 2, 3, 4])); // unchanged
 * assert.throws(
 *   () => applySplices(value, [{ offset: 5, deleteCount: 0, insert: new Uint8Array() }]),
 *   (err) => err instanceof PatchError && err.message.includes("splice 0"),
 * );
 * ```
 */
export function applySplices(
  value: Uint8Array,
  splices: readonly Splice[],
  maxSize: number = DEFAULT_MAX_PATCH_RESULT_SIZE,
): Uint8Array {
  try {
    return spliceAll(value, splices, maxSize);
  } catch (err) {
    throw toPatchError("Cannot apply splices", err);
  }
}

function spliceAll(value: Uint8Array, splices: readonly Splice[], maxSize: number): Uint8Array {
  const prefix = "Cannot apply splices";
  checkMaxSize(prefix, maxSize);
  if (!(value instanceof Uint8Array)) {
    throw new PatchError(`${prefix}: expected a Uint8Array value, got ${typeName(value)}`);
  }
  if (!Array.isArray(splices)) {
    throw new PatchError(`${prefix}: expected an array of splices, got ${typeName(splices)}`);
  }
  if (splices.length > MAX_PATCH_OPERATIONS) {
    throw new PatchError(
      `${prefix}: ${splices.length} splices exceed MAX_PATCH_OPERATIONS ${MAX_PATCH_OPERATIONS}`,
    );
  }
  // A piece table: views of `value` and of the inserts, joined once at the end.
  const pieces: Uint8Array[] = value.length > 0 ? [value] : [];
  let length = value.length;
  for (let i = 0; i < splices.length; i++) {
    const splice: unknown = splices[i];
    const where = `${prefix}: splice ${i}`;
    if (typeof splice !== "object" || splice === null) {
      throw new PatchError(`${where}: expected an object, got ${typeName(splice)}`);
    }
    const { offset, deleteCount, insert } = splice as Record<string, unknown>;
    if (!isCount(offset)) {
      throw new PatchError(`${where}: offset ${show(offset)} is not a non-negative integer`);
    }
    if (!isCount(deleteCount)) {
      throw new PatchError(
        `${where}: deleteCount ${show(deleteCount)} is not a non-negative integer`,
      );
    }
    if (!(insert instanceof Uint8Array)) {
      throw new PatchError(`${where}: insert is ${typeName(insert)}, not a Uint8Array`);
    }
    if (offset > length) {
      throw new PatchError(
        `${where}: offset ${offset} is past the end of the ${length}-byte value`,
      );
    }
    if (deleteCount > length - offset) {
      throw new PatchError(
        `${where}: deleting ${deleteCount} bytes at offset ${offset} runs past the end of the ` +
          `${length}-byte value`,
      );
    }
    const start = splitAt(pieces, offset);
    const end = splitAt(pieces, offset + deleteCount);
    if (insert.length > 0) pieces.splice(start, end - start, insert);
    else pieces.splice(start, end - start);
    length += insert.length - deleteCount;
  }
  if (length > maxSize) {
    throw new PatchError(`${prefix}: the ${length}-byte result exceeds maxSize ${maxSize}`);
  }
  return concatBytes(pieces);
}

/**
 * The smallest single splice turning `from` into `to`: the bytes between
 * their common prefix and common suffix. `[]` when they are equal. The
 * splice's `insert` is a copy.
 *
 * @throws {PatchError} when `from` or `to` is not a Uint8Array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applySplices, diffBytes } from "@carrier/p2p";
 * const from = new Uint8Array([1, 2, 3, 4, 5]);
 * const to = new Uint8Array([1, 2, 9, 5]);
 * const splices = diffBytes(from, to);
 * assert.deepEqual(splices, [{ offset: 2, deleteCount: 2, insert: new Uint8Array([9]) }]);
 * assert.deepEqual(applySplices(from, splices), to);
 * assert.deepEqual(diffBytes(to, to), []);
 * ```
 */
export function diffBytes(from: Uint8Array, to: Uint8Array): Splice[] {
  if (!(from instanceof Uint8Array) || !(to instanceof Uint8Array)) {
    throw new PatchError(
      `Cannot diff bytes: expected two Uint8Arrays, got ${typeName(from)} and ${typeName(to)}`,
    );
  }
  const shorter = Math.min(from.length, to.length);
  let prefix = 0;
  while (prefix < shorter && from[prefix] === to[prefix]) prefix++;
  let suffix = 0;
  while (
    suffix < shorter - prefix && from[from.length - 1 - suffix] === to[to.length - 1 - suffix]
  ) suffix++;
  if (prefix === from.length && prefix === to.length) return [];
  return [{
    offset: prefix,
    deleteCount: from.length - prefix - suffix,
    insert: to.slice(prefix, to.length - suffix),
  }];
}

/**
 * Applies JSON Patch operations to a DHT value holding UTF-8 JSON: parses
 * the value, applies the operations as {@linkcode applyJsonPatch} does, and
 * returns the result serialized by `JSON.stringify` as UTF-8: without
 * whitespace, members in JavaScript's order (integer-like names first, the
 * others as added), so the bytes are the same wherever the same patch is
 * applied to the same value, but may differ from the value's even for `[]`.
 * The size bound is checked while the patch applies, on a lower bound of the
 * document's size as text (and of the values copied in all), and exactly on
 * the result.
 *
 * @param maxSize The largest result accepted, in bytes. @default {DEFAULT_MAX_PATCH_RESULT_SIZE}
 * @throws {PatchError} when the value is not UTF-8 JSON, when an operation is
 * malformed or does not apply, or when the result would exceed `maxSize`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyJsonPatchToBytes, PatchError } from "@carrier/p2p";
 * const value = new TextEncoder().encode('{ "count": 1 }');
 * const next = applyJsonPatchToBytes(value, [{ op: "replace", path: "/count", value: 2 }]);
 * assert.equal(new TextDecoder().decode(next), '{"count":2}');
 * assert.throws(
 *   () => applyJsonPatchToBytes(value, [{ op: "add", path: "/big", value: "x".repeat(100) }], 64),
 *   (err) => err instanceof PatchError && err.message.includes("maxSize 64"),
 * );
 * ```
 */
export function applyJsonPatchToBytes(
  value: Uint8Array,
  operations: readonly JsonPatchOperation[],
  maxSize: number = DEFAULT_MAX_PATCH_RESULT_SIZE,
): Uint8Array {
  const prefix = "Cannot apply JSON Patch";
  checkMaxSize(prefix, maxSize);
  if (!(value instanceof Uint8Array)) {
    throw new PatchError(`${prefix}: expected a Uint8Array value, got ${typeName(value)}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(value));
  } catch (err) {
    throw new PatchError(`${prefix}: the value is not UTF-8 JSON (${messageOf(err)})`, {
      cause: err,
    });
  }
  const result = applyOperations(document, operations, maxSize);
  let bytes: Uint8Array;
  try {
    bytes = new TextEncoder().encode(JSON.stringify(result));
  } catch (err) {
    throw new PatchError(`${prefix}: cannot serialize the result (${messageOf(err)})`, {
      cause: err,
    });
  }
  if (bytes.length > maxSize) {
    throw new PatchError(`${prefix}: the ${bytes.length}-byte result exceeds maxSize ${maxSize}`);
  }
  return bytes;
}

// --- Internals ---------------------------------------------------------------

/** A failure described without its context; the public function adds it. */
class Problem extends Error {}

/** Thrown by diffInto when the diff grows past MAX_PATCH_OPERATIONS. */
const TOO_LONG = Symbol("too long");

const OPERATIONS = new Set(["add", "remove", "replace", "move", "copy", "test"]);
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;
const BAD_ESCAPE = /~(?![01])/;

type JsonObject = { [key: string]: unknown };

/** An operation with its pointers parsed. */
interface CheckedOperation {
  op: JsonPatchOperation;
  path: string[];
  from: string[];
}

/** The document being patched, and its size as JSON text (a lower bound). */
interface PatchState {
  root: unknown;
  /** The document's size as JSON text, at least (as importJson counts). */
  size: number;
  /** The document's nesting, at most. */
  depth: number;
  /** Bytes of values copied (or traversed to check a move's depth) so far. */
  copied: number;
  /** The bound on `size` and on `copied`. */
  maxSize: number;
}

function applyOperations(
  document: unknown,
  operations: readonly JsonPatchOperation[],
  maxSize: number,
): unknown {
  let where = "";
  try {
    const list = checkList(operations);
    const imported = importJson(document, 0, "the document");
    const state: PatchState = {
      root: imported.value,
      size: imported.size,
      depth: imported.depth,
      copied: 0,
      maxSize,
    };
    for (let i = 0; i < list.length; i++) {
      where = `operation ${i}`;
      const checked = checkOperation(list[i]);
      where = describeOperation(i, checked.op);
      applyOperation(state, checked);
    }
    return state.root;
  } catch (err) {
    throw toPatchError(
      where ? `Cannot apply JSON Patch: ${where}` : "Cannot apply JSON Patch",
      err,
    );
  }
}

function applyOperation(state: PatchState, { op, path, from }: CheckedOperation): void {
  switch (op.op) {
    case "add": {
      const { value, size, depth } = importJson(op.value, path.length, "the value");
      addAt(state, path, value, size);
      state.depth = Math.max(state.depth, depth);
      return;
    }
    case "remove":
      if (path.length === 0) throw new Problem("cannot remove the whole document");
      state.size -= sizeOf(removeAt(state, path));
      return;
    case "replace": {
      const { value, size, depth } = importJson(op.value, path.length, "the value");
      replaceAt(state, path, value, size);
      state.depth = Math.max(state.depth, depth);
      return;
    }
    case "move": {
      if (isProperPrefix(from, path)) {
        throw new Problem("cannot move a value into one of its own children");
      }
      if (from.length === 0) return; // from "" to "": nothing moves
      const value = removeAt(state, from);
      if (path.length === 0) {
        // The value becomes the document: its size is worth a traversal, counted as a copy.
        const size = sizeOf(value);
        charge(state, size);
        addAt(state, path, value, size);
        return;
      }
      if (path.length > from.length) {
        // Deeper by `path.length - from.length`; the value nests at most `state.depth` from
        // the root. Only near MAX_JSON_DEPTH is its depth worth the traversal, counted as a copy.
        let depth = state.depth + path.length - from.length;
        if (depth > MAX_JSON_DEPTH) {
          charge(state, sizeOf(value));
          depth = path.length + depthOf(value);
          if (depth > MAX_JSON_DEPTH) {
            throw new Problem(
              `the moved value would nest deeper than MAX_JSON_DEPTH ${MAX_JSON_DEPTH}`,
            );
          }
        }
        state.depth = Math.max(state.depth, depth);
      }
      addAt(state, path, value, 0); // already counted in the size
      return;
    }
    case "copy": {
      const copy = importJson(getAt(state, from), path.length, "the copied value");
      addAt(state, path, copy.value, copy.size);
      charge(state, copy.size);
      state.depth = Math.max(state.depth, copy.depth);
      return;
    }
    case "test": {
      const { value } = importJson(op.value, 0, "the value");
      if (!jsonEqual(getAt(state, path), value)) {
        throw new Problem(`the value at ${quote(op.path)} differs from the test's value`);
      }
      return;
    }
  }
}

/** Adds `value` at `tokens`; `size` is what it adds to the document's size. */
function addAt(state: PatchState, tokens: string[], value: unknown, size: number): void {
  if (tokens.length === 0) {
    state.root = value;
    state.size = size;
  } else {
    const parent = containerAt(state.root, tokens, tokens.length - 1);
    const key = tokens[tokens.length - 1];
    if (Array.isArray(parent)) {
      const index = key === "-" ? parent.length : arrayIndex(parent, tokens, tokens.length, true);
      parent.splice(index, 0, value);
    } else if (Object.hasOwn(parent, key)) {
      state.size -= sizeOf(parent[key]);
      setMember(parent, key, value);
    } else {
      state.size += key.length + 3;
      setMember(parent, key, value);
    }
    state.size += size;
  }
  checkSize(state);
}

function replaceAt(state: PatchState, tokens: string[], value: unknown, size: number): void {
  if (tokens.length === 0) {
    state.root = value;
    state.size = size;
  } else {
    const parent = containerAt(state.root, tokens, tokens.length - 1);
    const key = tokens[tokens.length - 1];
    if (Array.isArray(parent)) {
      const index = arrayIndex(parent, tokens, tokens.length, false);
      state.size -= sizeOf(parent[index]);
      parent[index] = value;
    } else {
      if (!Object.hasOwn(parent, key)) throw missing(tokens);
      state.size -= sizeOf(parent[key]);
      setMember(parent, key, value);
    }
    state.size += size;
  }
  checkSize(state);
}

/** Removes the value at `tokens` (not the root) and returns it, still counted in the size. */
function removeAt(state: PatchState, tokens: string[]): unknown {
  const parent = containerAt(state.root, tokens, tokens.length - 1);
  const key = tokens[tokens.length - 1];
  let value: unknown;
  if (Array.isArray(parent)) {
    value = parent.splice(arrayIndex(parent, tokens, tokens.length, false), 1)[0];
  } else {
    if (!Object.hasOwn(parent, key)) throw missing(tokens);
    value = parent[key];
    delete parent[key];
    state.size -= key.length + 3;
  }
  return value;
}

function getAt(state: PatchState, tokens: string[]): unknown {
  if (tokens.length === 0) return state.root;
  const parent = containerAt(state.root, tokens, tokens.length - 1);
  if (Array.isArray(parent)) return parent[arrayIndex(parent, tokens, tokens.length, false)];
  const key = tokens[tokens.length - 1];
  if (!Object.hasOwn(parent, key)) throw missing(tokens);
  return parent[key];
}

/** The array or object at the first `count` tokens of `tokens`. */
function containerAt(root: unknown, tokens: string[], count: number): unknown[] | JsonObject {
  let node = root;
  for (let i = 0; i <= count; i++) {
    if (typeof node !== "object" || node === null) {
      throw new Problem(
        `${quote(toPointer(tokens.slice(0, i)))} is ${typeName(node)}, not an object or array`,
      );
    }
    if (i === count) break;
    if (Array.isArray(node)) {
      node = node[arrayIndex(node, tokens, i + 1, false)];
    } else {
      const key = tokens[i];
      if (!Object.hasOwn(node, key)) throw missing(tokens.slice(0, i + 1));
      node = (node as JsonObject)[key];
    }
  }
  return node as unknown[] | JsonObject;
}

/**
 * The array index named by `tokens[count - 1]`: below the array's length, or up to it with
 * `orEnd`.
 */
function arrayIndex(array: unknown[], tokens: string[], count: number, orEnd: boolean): number {
  const token = tokens[count - 1];
  const where = (): string => quote(toPointer(tokens.slice(0, count)));
  if (!ARRAY_INDEX.test(token)) {
    throw new Problem(
      `${where()}: ${quote(token)} is not an array index` +
        (token === "-" && !orEnd ? ` ("-" names no element)` : ""),
    );
  }
  const index = Number(token);
  if (orEnd ? index > array.length : index >= array.length) {
    throw new Problem(
      `${where()}: index ${token} is out of range (array length ${array.length})`,
    );
  }
  return index;
}

function missing(tokens: string[]): Problem {
  return new Problem(`${quote(toPointer(tokens))} does not exist`);
}

/** Sets an own, enumerable member, even one named `__proto__`. */
function setMember(object: JsonObject, key: string, value: unknown): void {
  // Only `__proto__` is an accessor of Object.prototype; assignment is faster for the others.
  if (key === "__proto__") {
    Object.defineProperty(object, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  } else {
    object[key] = value;
  }
}

/**
 * Counts `size` bytes copied (or traversed to move a value to the root or deeper in a deep
 * document). Copies are what can make a patch cost more than its text and its result: those
 * of a patch that never removes add up to at most the result, so the bound refuses only
 * patches that copy and discard, over and over.
 */
function charge(state: PatchState, size: number): void {
  state.copied += size;
  if (state.copied > state.maxSize) {
    throw new Problem(
      `the values copied by the patch add up to more than maxSize ${state.maxSize} bytes`,
    );
  }
}

function checkSize(state: PatchState): void {
  if (state.size > state.maxSize) {
    throw new Problem(
      `the document would exceed maxSize ${state.maxSize} bytes (at least ${state.size} as JSON)`,
    );
  }
}

function isProperPrefix(prefix: string[], tokens: string[]): boolean {
  return prefix.length < tokens.length && prefix.every((token, i) => token === tokens[i]);
}

/** The array of operations, or a Problem. */
function checkList(list: unknown): readonly unknown[] {
  if (!Array.isArray(list)) {
    throw new Problem(`expected an array of operations, got ${typeName(list)}`);
  }
  if (list.length > MAX_PATCH_OPERATIONS) {
    throw new Problem(
      `${list.length} operations exceed MAX_PATCH_OPERATIONS ${MAX_PATCH_OPERATIONS}`,
    );
  }
  return list;
}

/** A fresh, well-formed operation from `raw`, with its pointers parsed, or a Problem. */
function checkOperation(raw: unknown): CheckedOperation {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Problem(`expected an object, got ${typeName(raw)}`);
  }
  const member = (key: string): unknown =>
    Object.hasOwn(raw, key) ? (raw as JsonObject)[key] : undefined;
  const op = member("op");
  if (typeof op !== "string" || !OPERATIONS.has(op)) {
    throw new Problem(`"op" is ${show(op)}, not one of ${[...OPERATIONS].join(", ")}`);
  }
  const path = member("path");
  if (typeof path !== "string") throw new Problem(`"path" is ${show(path)}, not a string`);
  const pathTokens = parsePointer("path", path);
  switch (op) {
    case "add":
    case "replace":
    case "test": {
      if (!Object.hasOwn(raw, "value")) throw new Problem(`"value" is missing`);
      return { op: { op, path, value: member("value") }, path: pathTokens, from: [] };
    }
    case "remove":
      return { op: { op, path }, path: pathTokens, from: [] };
    default: {
      const from = member("from");
      if (typeof from !== "string") throw new Problem(`"from" is ${show(from)}, not a string`);
      const fromTokens = parsePointer("from", from);
      return {
        op: { op: op as "move" | "copy", from, path },
        path: pathTokens,
        from: fromTokens,
      };
    }
  }
}

/** The reference tokens of an RFC 6901 JSON Pointer, or a Problem. */
function parsePointer(name: string, pointer: string): string[] {
  if (pointer === "") return [];
  if (pointer[0] !== "/") {
    throw new Problem(
      `"${name}" ${quote(pointer)} is not a JSON Pointer: it must be empty or start with "/"`,
    );
  }
  return pointer.slice(1).split("/").map((token) => {
    if (BAD_ESCAPE.test(token)) {
      throw new Problem(
        `"${name}" ${quote(pointer)} is not a JSON Pointer: "~" must be followed by 0 or 1`,
      );
    }
    return token.replaceAll("~1", "/").replaceAll("~0", "~");
  });
}

function toPointer(tokens: readonly (string | number)[]): string {
  let pointer = "";
  for (const token of tokens) pointer += "/" + escapeToken(String(token));
  return pointer;
}

function escapeToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * A copy of `input` made of fresh arrays and plain objects, checked to be
 * JSON nesting at most MAX_JSON_DEPTH when placed `level` members deep, and
 * its size as JSON text (a lower bound: UTF-8 takes at least a byte per
 * UTF-16 code unit, a number at least one byte), and the nesting it reaches
 * from the root (`level` for a scalar).
 */
function importJson(
  input: unknown,
  level: number,
  what: string,
): { value: unknown; size: number; depth: number } {
  let size = 0;
  let nesting = level;
  const trail: (string | number)[] = [];
  const fail = (problem: string): never => {
    const at = trail.length > 0 ? ` at ${quote(toPointer(trail))}` : "";
    throw new Problem(`${what}${at} ${problem}`);
  };
  const visit = (value: unknown, depth: number): unknown => {
    switch (typeof value) {
      case "string":
        size += value.length + 2;
        return value;
      case "number":
        if (!Number.isFinite(value)) fail(`is ${value}, not a JSON number`);
        size += 1;
        return value;
      case "boolean":
        size += value ? 4 : 5;
        return value;
      case "object":
        break;
      default:
        return fail(`is ${typeName(value)}, not a JSON value`);
    }
    if (value === null) {
      size += 4;
      return null;
    }
    if (depth >= MAX_JSON_DEPTH) fail(`nests deeper than MAX_JSON_DEPTH ${MAX_JSON_DEPTH}`);
    if (depth >= nesting) nesting = depth + 1;
    size += 2;
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      for (let i = 0; i < value.length; i++) {
        trail.push(i);
        out.push(visit(value[i], depth + 1));
        trail.pop();
      }
      return out;
    }
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      fail(`is ${typeName(value)}, not a plain object`);
    }
    const out: JsonObject = {};
    for (const key of Object.keys(value)) {
      size += key.length + 3;
      trail.push(key);
      setMember(out, key, visit((value as JsonObject)[key], depth + 1));
      trail.pop();
    }
    return out;
  };
  try {
    const value = visit(input, level);
    return { value, size, depth: nesting };
  } catch (err) {
    if (err instanceof Problem) throw err;
    // A getter or a proxy of the caller's that throws: name where.
    const at = trail.length > 0 ? ` at ${quote(toPointer(trail))}` : "";
    throw new Problem(`${what}${at} cannot be read (${messageOf(err)})`, { cause: err });
  }
}

/** The size as JSON text (a lower bound, as importJson counts) of a value already imported. */
function sizeOf(value: unknown): number {
  switch (typeof value) {
    case "string":
      return value.length + 2;
    case "number":
      return 1;
    case "boolean":
      return value ? 4 : 5;
  }
  if (value === null) return 4;
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) size += sizeOf(item);
  } else {
    for (const key of Object.keys(value as JsonObject)) {
      size += key.length + 3 + sizeOf((value as JsonObject)[key]);
    }
  }
  return size;
}

/** Nesting of arrays and objects in a value already imported: 0 for a scalar. */
function depthOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let depth = 0;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    depth = Math.max(depth, depthOf(item));
  }
  return depth + 1;
}

/** JSON equality of two imported values: numbers by value, members in any order. */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) =>
    Object.hasOwn(b, key) && jsonEqual((a as JsonObject)[key], (b as JsonObject)[key])
  );
}

/** Appends to `ops` the operations turning `a` into `b` at `pointer`; throws TOO_LONG. */
function diffInto(ops: JsonPatchOperation[], a: unknown, b: unknown, pointer: string): void {
  const push = (op: JsonPatchOperation): void => {
    if (ops.length === MAX_PATCH_OPERATIONS) throw TOO_LONG;
    ops.push(op);
  };
  if (Array.isArray(a) && Array.isArray(b)) {
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i++) diffInto(ops, a[i], b[i], `${pointer}/${i}`);
    for (let i = a.length - 1; i >= b.length; i--) push({ op: "remove", path: `${pointer}/${i}` });
    for (let i = a.length; i < b.length; i++) {
      push({ op: "add", path: `${pointer}/${i}`, value: b[i] });
    }
  } else if (isObject(a) && isObject(b)) {
    for (const key of Object.keys(a)) {
      if (!Object.hasOwn(b, key)) push({ op: "remove", path: `${pointer}/${escapeToken(key)}` });
    }
    for (const key of Object.keys(b)) {
      const path = `${pointer}/${escapeToken(key)}`;
      if (Object.hasOwn(a, key)) diffInto(ops, a[key], b[key], path);
      else push({ op: "add", path, value: b[key] });
    }
  } else if (!Object.is(a, b)) {
    push({ op: "replace", path: pointer, value: b });
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Splits the piece holding byte `position` there; the index of the first piece after it. */
function splitAt(pieces: Uint8Array[], position: number): number {
  let start = 0;
  for (let i = 0; i < pieces.length; i++) {
    if (start === position) return i;
    const piece = pieces[i];
    if (position < start + piece.length) {
      const cut = position - start;
      pieces.splice(i, 1, piece.subarray(0, cut), piece.subarray(cut));
      return i + 1;
    }
    start += piece.length;
  }
  return pieces.length;
}

function checkMaxSize(prefix: string, maxSize: unknown): void {
  if (typeof maxSize !== "number" || !(maxSize >= 0)) {
    throw new PatchError(`${prefix}: maxSize ${show(maxSize)} is not a non-negative number`);
  }
}

function describeOperation(index: number, op: JsonPatchOperation): string {
  return op.op === "move" || op.op === "copy"
    ? `operation ${index} (${op.op} ${quote(op.from)} to ${quote(op.path)})`
    : `operation ${index} (${op.op} ${quote(op.path)})`;
}

/** A PatchError for `err` in the context `prefix`; other errors become its cause. */
function toPatchError(prefix: string, err: unknown): PatchError {
  if (err instanceof PatchError) return err;
  if (err instanceof Problem) {
    return new PatchError(`${prefix}: ${err.message}`, { cause: err.cause });
  }
  return new PatchError(`${prefix}: ${messageOf(err)}`, { cause: err });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A string for a message: JSON-quoted, shortened past 64 characters. */
function quote(text: string): string {
  return text.length > 64 ? `${JSON.stringify(text.slice(0, 64))}…` : JSON.stringify(text);
}

/** A short description of an untrusted value for a message. */
function show(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeName(value);
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    let name: unknown;
    try {
      name = Object.getPrototypeOf(value)?.constructor?.name;
    } catch {
      // A proxy or a throwing getter: not worth naming.
    }
    return typeof name === "string" && name !== "Object" ? `a ${name}` : "an object";
  }
  if (typeof value === "undefined") return "undefined";
  return `a ${typeof value}`;
}
