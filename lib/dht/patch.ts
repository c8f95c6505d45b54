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
 * import { diffBytes, diffJson } from "@carrier/p2p";
 * import { applyJsonPatch, applySplices } from "@carrier/p2p/protocol";
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
 * The formats live in `json_patch.ts` (with `json_operations.ts` and
 * `json_value.ts`) and `splice.ts`, their shared bounds in
 * `patch_common.ts`; this module gathers them and applies a patch as the
 * wire carries it (a `Patch` message, either format).
 *
 * @module
 */
import { type ByteSplice, type Patch, PatchFormat } from "../../gen/carrier/v1/dht_pb.ts";
import { PatchError } from "./errors.ts";
import { applyJsonPatchToBytes, parseJsonPatch } from "./json_patch.ts";
import { applySplices, type Splice } from "./splice.ts";

export { DEFAULT_MAX_PATCH_RESULT_SIZE, MAX_PATCH_OPERATIONS } from "./patch_common.ts";
export { MAX_JSON_DEPTH } from "./json_value.ts";
export type { JsonPatchOperation } from "./json_operations.ts";
export { applyJsonPatch, applyJsonPatchToBytes, diffJson, parseJsonPatch } from "./json_patch.ts";
export { applySplices, diffBytes, type Splice } from "./splice.ts";

/** Applies a patch message to a value (either format); throws PatchError. */
export function applyPatch(value: Uint8Array, patch: Patch, maxSize: number): Uint8Array {
  switch (patch.format) {
    case PatchFormat.BYTE_SPLICE:
      return applySplices(value, splicesOf(patch.splices), maxSize);
    case PatchFormat.JSON_PATCH:
      return applyJsonPatchToBytes(value, parseJsonPatch(patch.jsonPatch), maxSize);
    default:
      throw new PatchError(`Unknown patch format ${patch.format}`);
  }
}

/** Splices from the wire; throws PatchError for an offset or length beyond 2^53 − 1. */
export function splicesOf(splices: readonly ByteSplice[]): Splice[] {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return splices.map((s) => {
    if (s.offset > max || s.deleteCount > max) {
      throw new PatchError(`Splice offset or length out of range`);
    }
    return { offset: Number(s.offset), deleteCount: Number(s.deleteCount), insert: s.insert };
  });
}
