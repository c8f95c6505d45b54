/**
 * JSON Patch ([RFC 6902](https://www.rfc-editor.org/rfc/rfc6902)) for
 * values that are UTF-8 JSON: {@linkcode parseJsonPatch} reads a patch from
 * a peer, {@linkcode applyJsonPatch} applies it to a JSON value and
 * {@linkcode applyJsonPatchToBytes} to a DHT value, {@linkcode diffJson}
 * makes one. The operations are `json_operations.ts`'s; see `patch.ts` for
 * both formats and their bounds.
 *
 * @module
 */
import { PatchError } from "./errors.ts";
import {
  checkMaxSize,
  DEFAULT_MAX_PATCH_RESULT_SIZE,
  MAX_PATCH_OPERATIONS,
  messageOf,
  toPatchError,
  typeName,
} from "./patch_common.ts";
import {
  applyOperations,
  checkList,
  checkOperation,
  type JsonPatchOperation,
} from "./json_operations.ts";
import { escapeToken, importJson, isObject } from "./json_value.ts";

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
 * import { PatchError } from "@carrier/p2p";
 * import { applyJsonPatch } from "@carrier/p2p/protocol";
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
 * import { PatchError } from "@carrier/p2p";
 * import { parseJsonPatch } from "@carrier/p2p/protocol";
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
 * import { diffJson } from "@carrier/p2p";
 * import { applyJsonPatch } from "@carrier/p2p/protocol";
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
 * import { PatchError } from "@carrier/p2p";
 * import { applyJsonPatchToBytes } from "@carrier/p2p/protocol";
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

/** Thrown by diffInto when the diff grows past MAX_PATCH_OPERATIONS. */
const TOO_LONG = Symbol("too long");

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
