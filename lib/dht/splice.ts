/**
 * Byte splices, the DHT's patch format for binary values: each
 * {@linkcode Splice} deletes `deleteCount` bytes at `offset` and inserts
 * `insert` there, its offset counted in the value as the previous splice
 * left it. {@linkcode applySplices} applies them, {@linkcode diffBytes}
 * makes one.
 *
 * @module
 */
import { concatBytes } from "../_bytes.ts";
import { PatchError } from "./errors.ts";
import {
  checkMaxSize,
  DEFAULT_MAX_PATCH_RESULT_SIZE,
  MAX_PATCH_OPERATIONS,
  show,
  toPatchError,
  typeName,
} from "./patch_common.ts";

/**
 * One byte splice: delete `deleteCount` bytes at `offset`, then insert
 * `insert` there. In a list of splices, each offset counts in the value as
 * the previous splice left it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Splice } from "@carrier/p2p";
 * import { applySplices } from "@carrier/p2p/protocol";
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
 * import { PatchError } from "@carrier/p2p";
 * import { applySplices } from "@carrier/p2p/protocol";
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
 * import { diffBytes } from "@carrier/p2p";
 * import { applySplices } from "@carrier/p2p/protocol";
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
