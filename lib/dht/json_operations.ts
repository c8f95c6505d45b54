/**
 * JSON Patch operations (RFC 6902): their shape
 * ({@linkcode JsonPatchOperation}), the checks a peer's operation passes, and
 * how each applies to a document being patched, within the bounds of
 * `patch_common.ts` and {@linkcode MAX_JSON_DEPTH}.
 *
 * @module
 */
import {
  MAX_PATCH_OPERATIONS,
  Problem,
  quote,
  show,
  toPatchError,
  typeName,
} from "./patch_common.ts";
import {
  depthOf,
  importJson,
  jsonEqual,
  type JsonObject,
  MAX_JSON_DEPTH,
  parsePointer,
  setMember,
  sizeOf,
  toPointer,
} from "./json_value.ts";

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
 * import type { JsonPatchOperation } from "@carrier/p2p";
 * import { applyJsonPatch } from "@carrier/p2p/protocol";
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

const OPERATIONS = new Set(["add", "remove", "replace", "move", "copy", "test"]);
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/** An operation with its pointers parsed. */
export interface CheckedOperation {
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

/**
 * Applies `operations` in order to a copy of `document` (imported, so that it
 * is never changed), bounded by `maxSize`: the document patched.
 *
 * @throws {PatchError} naming the operation that failed.
 */
export function applyOperations(
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
export function checkList(list: unknown): readonly unknown[] {
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
export function checkOperation(raw: unknown): CheckedOperation {
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

function describeOperation(index: number, op: JsonPatchOperation): string {
  return op.op === "move" || op.op === "copy"
    ? `operation ${index} (${op.op} ${quote(op.from)} to ${quote(op.path)})`
    : `operation ${index} (${op.op} ${quote(op.path)})`;
}
