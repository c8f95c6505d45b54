/**
 * JSON values as a JSON Patch sees them: fresh copies of a caller's values
 * checked to be JSON ({@linkcode importJson}), their size as text and their
 * nesting, deep equality, and RFC 6901 JSON Pointers.
 *
 * @module
 */
import { messageOf, Problem, quote, typeName } from "./patch_common.ts";

/**
 * Nesting of arrays and objects at most, in a JSON document being patched,
 * in a patch's values and in what a patch produces (`[[1]]` nests 2 deep).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PatchError } from "@carrier/p2p";
 * import { applyJsonPatch, MAX_JSON_DEPTH } from "@carrier/p2p/protocol";
 * let deep: unknown = 0;
 * for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
 * assert.throws(
 *   () => applyJsonPatch(null, [{ op: "replace", path: "", value: deep }]),
 *   PatchError,
 * );
 * ```
 */
export const MAX_JSON_DEPTH = 256;

/** A JSON object, as a patch builds it: a plain object of own members. */
export type JsonObject = { [key: string]: unknown };

const BAD_ESCAPE = /~(?![01])/;

/** Sets an own, enumerable member, even one named `__proto__`. */
export function setMember(object: JsonObject, key: string, value: unknown): void {
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

/** The reference tokens of an RFC 6901 JSON Pointer, or a Problem. */
export function parsePointer(name: string, pointer: string): string[] {
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

/** The JSON Pointer of reference tokens. */
export function toPointer(tokens: readonly (string | number)[]): string {
  let pointer = "";
  for (const token of tokens) pointer += "/" + escapeToken(String(token));
  return pointer;
}

/** A member name as a reference token (`~` as `~0`, `/` as `~1`). */
export function escapeToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * A copy of `input` made of fresh arrays and plain objects, checked to be
 * JSON nesting at most MAX_JSON_DEPTH when placed `level` members deep, and
 * its size as JSON text (a lower bound: UTF-8 takes at least a byte per
 * UTF-16 code unit, a number at least one byte), and the nesting it reaches
 * from the root (`level` for a scalar).
 */
export function importJson(
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
export function sizeOf(value: unknown): number {
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
export function depthOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let depth = 0;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    depth = Math.max(depth, depthOf(item));
  }
  return depth + 1;
}

/** JSON equality of two imported values: numbers by value, members in any order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
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

/** Whether `value` is a JSON object (not an array, not null). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
