/**
 * What the two patch formats share: their bounds (operations per patch, the
 * size of a result) and how their failures are worded, a
 * {@linkcode PatchError} naming the operation and what was wrong with it.
 *
 * @module
 */
import { PatchError } from "./errors.ts";

/**
 * Operations in one patch at most: JSON Patch operations or byte splices. A
 * peer's longer patch is refused; {@linkcode diffJson} never makes one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PatchError } from "@carrier/p2p";
 * import { MAX_PATCH_OPERATIONS, parseJsonPatch } from "@carrier/p2p/protocol";
 * const tooLong = JSON.stringify(
 *   Array.from({ length: MAX_PATCH_OPERATIONS + 1 }, () => ({ op: "test", path: "", value: 1 })),
 * );
 * assert.throws(() => parseJsonPatch(tooLong), PatchError);
 * ```
 */
export const MAX_PATCH_OPERATIONS = 1024;

/**
 * The default bound on what a patch produces, in bytes (64 MiB, the largest
 * frame carrier carries): the `maxSize` of {@linkcode applySplices} and
 * {@linkcode applyJsonPatchToBytes}, and the bound of
 * {@linkcode applyJsonPatch} (on the document's size as JSON text).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_PATCH_RESULT_SIZE } from "@carrier/p2p/protocol";
 * assert.equal(DEFAULT_MAX_PATCH_RESULT_SIZE, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MAX_PATCH_RESULT_SIZE = 64 * 1024 * 1024;

/** A failure described without its context; the public function adds it. */
export class Problem extends Error {}

/** Refuses a `maxSize` that is not a non-negative number. */
export function checkMaxSize(prefix: string, maxSize: unknown): void {
  if (typeof maxSize !== "number" || !(maxSize >= 0)) {
    throw new PatchError(`${prefix}: maxSize ${show(maxSize)} is not a non-negative number`);
  }
}

/** A PatchError for `err` in the context `prefix`; other errors become its cause. */
export function toPatchError(prefix: string, err: unknown): PatchError {
  if (err instanceof PatchError) return err;
  if (err instanceof Problem) {
    return new PatchError(`${prefix}: ${err.message}`, { cause: err.cause });
  }
  return new PatchError(`${prefix}: ${messageOf(err)}`, { cause: err });
}

/** An error's message, or the thrown value as text. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A string for a message: JSON-quoted, shortened past 64 characters. */
export function quote(text: string): string {
  return text.length > 64 ? `${JSON.stringify(text.slice(0, 64))}…` : JSON.stringify(text);
}

/** A short description of an untrusted value for a message. */
export function show(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeName(value);
}

/** The kind of an untrusted value, for a message: `null`, `an array`, `a Map`, ... */
export function typeName(value: unknown): string {
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
